"""Numbers computed from a training run and a model's answers (numpy only: no TensorFlow, no Plotly, no Streamlit).

* :func:`ema`: the smoothed training curve (TensorBoard's bias-corrected exponential moving average);
* :func:`confusion_matrix`: counts of (true class, predicted class);
* :func:`misclassified`: the test digits a model got wrong, most confident first.

The Train page draws them (:mod:`convviz.figures_training`); the loss and accuracy themselves are
:func:`convviz.train.evaluate`'s.
"""

from __future__ import annotations

import numpy as np

__all__ = ["confusion_matrix", "ema", "misclassified"]


def ema(values, weight: float = 0.9) -> np.ndarray:
    """Exponential moving average with bias correction (as TensorBoard's smoothing).

    ``s_t = weight * s_{t-1} + (1 - weight) * v_t`` from ``s_0 = 0``, divided by
    ``1 - weight**t`` so the first values are not pulled towards zero.

    Args:
        values: 1-D sequence of numbers.
        weight: smoothing in ``[0, 1)``; 0 returns the values unchanged.

    Returns:
        float64 ``(len(values),)``.

    Raises:
        ValueError: ``weight`` outside ``[0, 1)``, echoing it.

    Example:
        >>> ema([1.0, 1.0, 1.0], 0.9).round(6).tolist()
        [1.0, 1.0, 1.0]
    """
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"weight must be in [0, 1), got weight={weight!r}")
    v = np.asarray(values, np.float64)
    out = np.empty_like(v)
    s = 0.0
    for t, x in enumerate(v, start=1):
        s = weight * s + (1.0 - weight) * x
        out[t - 1] = s / (1.0 - weight ** t)
    return out


def confusion_matrix(y_true, y_pred, classes: int = 10) -> np.ndarray:
    """Counts of (true class, predicted class) pairs.

    Args:
        y_true: ``(n,)`` integer labels in ``[0, classes)``.
        y_pred: ``(n,)`` integer predictions in ``[0, classes)``.
        classes: number of classes.

    Returns:
        int64 ``(classes, classes)``; row = true class, column = predicted class.

    Raises:
        ValueError: mismatched lengths or labels out of range, echoing them.

    Example:
        >>> confusion_matrix([0, 1, 1], [0, 1, 0], classes=2).tolist()
        [[1, 0], [1, 1]]
    """
    t, p = np.asarray(y_true).astype(np.int64).ravel(), np.asarray(y_pred).astype(np.int64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred must have the same length, got {t.shape[0]} and {p.shape[0]}")
    for name, v in (("y_true", t), ("y_pred", p)):
        if v.size and (v.min() < 0 or v.max() >= classes):
            raise ValueError(f"{name} must be in [0, {classes}), got min={v.min()} max={v.max()}")
    return np.bincount(t * classes + p, minlength=classes * classes).reshape(classes, classes)


def misclassified(y_true, y_pred, probabilities, limit: int = 24) -> list[dict]:
    """The test digits the model got wrong, most confident mistakes first.

    Args:
        y_true: ``(n,)`` labels.
        y_pred: ``(n,)`` predictions.
        probabilities: ``(n, classes)``.
        limit: at most this many records.

    Returns:
        Records ``{"index", "true", "predicted", "confidence"}`` (confidence = probability of the
        predicted class, in [0, 1]).

    Raises:
        ValueError: mismatched lengths, echoing them.
    """
    t, p = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    probs = np.asarray(probabilities)
    if not (t.shape == p.shape and probs.ndim == 2 and probs.shape[0] == t.shape[0]):
        raise ValueError(f"lengths differ: y_true {t.shape}, y_pred {p.shape}, probabilities {probs.shape}")
    wrong = np.flatnonzero(t != p)
    conf = probs[wrong, p[wrong]] if wrong.size else np.zeros(0)
    order = wrong[np.argsort(-conf, kind="stable")][:limit]
    return [{"index": int(i), "true": int(t[i]), "predicted": int(p[i]), "confidence": float(probs[i, p[i]])}
            for i in order]
