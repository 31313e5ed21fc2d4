"""The one evaluation routine: predicted classes, and the scores built from them."""
from __future__ import annotations

import numpy as np

PREDICT_BATCH = 1024


def predict_classes(model, x: np.ndarray, input_divisor: float, batch_size: int = PREDICT_BATCH) -> np.ndarray:
    """Argmax class of `model` on raw 0-255 images `x`, fed as x / input_divisor."""
    out = np.empty(len(x), np.int64)
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size] / np.float32(input_divisor)
        out[i:i + batch_size] = np.argmax(model(xb, training=False), axis=1)
    return out


def percent(pred: np.ndarray, labels: np.ndarray) -> float:
    """Share of predictions equal to the labels, in percent. For a poisoned file
    (labels = the attacker's target) this is the attack success rate."""
    if len(labels) == 0:
        return float("nan")
    return float(100.0 * np.mean(pred == labels))
