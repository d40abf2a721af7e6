"""ConvViz: an interactive visualizer that teaches how a CNN works, built from scratch in TensorFlow.

Modules, from the math up (nothing here imports Streamlit except ``convviz.ui``):

* ``ops`` — the sliding-window convolution in numpy, step by step (no TensorFlow).
* ``layers`` — from-scratch ``tf.Module`` layers: Dense, Conv2D, MaxPool2D, Flatten, Dropout.
* ``model``, ``train``, ``data`` — the CNN, its training engine and MNIST.
* ``preprocess``, ``figures`` — image preparation and Plotly figure builders.
* ``ui`` — the Streamlit glue used by the pages.
"""

__version__ = "0.1.0"
