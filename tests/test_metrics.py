"""Tests of convviz.metrics (smoothing, confusion counts, mistakes: numbers the Train page draws)."""

import numpy as np
import pytest

from convviz import metrics


def test_ema():
    np.testing.assert_allclose(metrics.ema([3.0, 3.0, 3.0, 3.0]), 3.0)  # bias correction: no pull towards 0
    np.testing.assert_allclose(metrics.ema([1.0, 2.0, 3.0], 0.0), [1.0, 2.0, 3.0])
    out = metrics.ema([0.0, 10.0], 0.5)
    assert out[0] == 0.0 and out[1] == pytest.approx(0.5 * 10 / (1 - 0.25))
    assert metrics.ema([]).shape == (0,)
    with pytest.raises(ValueError, match="weight=1.0"):
        metrics.ema([1.0], 1.0)


def test_misclassified_most_confident_first():
    y_true = np.array([1, 2, 3, 4])
    y_pred = np.array([1, 5, 6, 7])
    probs = np.zeros((4, 10))
    probs[0, 1], probs[1, 5], probs[2, 6], probs[3, 7] = 0.9, 0.4, 0.8, 0.6
    out = metrics.misclassified(y_true, y_pred, probs, limit=2)
    assert out == [{"index": 2, "true": 3, "predicted": 6, "confidence": 0.8},
                   {"index": 3, "true": 4, "predicted": 7, "confidence": 0.6}]
    assert metrics.misclassified(y_true[:1], y_pred[:1], probs[:1]) == []
    with pytest.raises(ValueError, match="lengths differ"):
        metrics.misclassified(y_true, y_pred[:2], probs)
