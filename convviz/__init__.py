"""ConvViz: an interactive visualizer that teaches how a CNN works, built from scratch in TensorFlow.

Modules, from the math up (nothing here imports Streamlit except ``convviz.ui``; ``docs/ARCHITECTURE.md`` has one
row per module, checked by ``tests/test_structure.py``):

* ``geometry`` — where a window goes: sizes, strides, dilation, the one meaning of padding.
* ``ops``, ``backprop``, ``descent`` — the sliding window, its gradients and learning from them, in numpy.
* ``tensor_ops``, ``layers`` — the from-scratch TensorFlow ops with hand-written gradients, and Keras-shaped
  ``tf.Module`` layers on them (Dense, Conv2D, MaxPool2D, Flatten, Dropout, the ConvPool block).
* ``model``, ``train``, ``data`` — the CNN, its training engine and MNIST; ``runs``, ``jobs`` — saved runs and
  training on Dask workers.
* ``preprocess``, ``images``, ``npzfile`` — image preparation and the guarded readers of outside files.
* ``figures*``, ``figure_parts``, ``figure_animation`` — Plotly figure builders; ``explain``, ``atlas*``,
  ``export`` — what the network sees, what its filters learned, and the model taken to Keras.
* ``ui`` — the Streamlit glue used by the pages (``app_pages/``).
"""

__version__ = "0.1.0"
