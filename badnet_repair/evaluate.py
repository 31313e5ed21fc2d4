"""The one evaluation routine: a model's outputs and classes on raw images, in batches,
through one compiled TensorFlow function per model."""
from __future__ import annotations

import weakref

import numpy as np

PREDICT_BATCH = 1024
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _compiled(model):
    """model(x) and argmax(model(x)) as tf.functions, built once per model and traced once for
    every batch size (the same outputs, bit for bit, as a trace per size).

    Faster than `Model.predict` on CPU (no per-batch callbacks), and the same ops."""
    if model not in _COMPILED:
        import tensorflow as tf

        images = [tf.TensorSpec((None,) + tuple(model.input_shape[1:]), tf.float32)]

        @tf.function(input_signature=images)
        def outputs(x):
            return model(x, training=False)

        @tf.function(input_signature=images)
        def classes(x):
            return tf.argmax(model(x, training=False), axis=-1, output_type=tf.int32)

        _COMPILED[model] = (outputs, classes)
    return _COMPILED[model]


def scale(x: np.ndarray, input_divisor: float, out=None) -> np.ndarray:
    """Raw 0-255 images as the model is fed them: float32 x / input_divisor. The one place
    input scaling happens, for training and evaluation alike (`out=x` scales in place)."""
    return np.divide(x, np.float32(input_divisor), out=out, dtype=np.float32)


def _batched(fn, x, input_divisor, batch_size):
    # batch by batch: uint8 images stay small until they are fed
    return [fn(scale(x[i:i + batch_size], input_divisor)).numpy() for i in range(0, len(x), batch_size)]


def predict(model, x: np.ndarray, input_divisor: float = 1.0, batch_size: int = PREDICT_BATCH) -> np.ndarray:
    """`model`'s outputs on `x`, fed as x / input_divisor."""
    parts = _batched(_compiled(model)[0], x, input_divisor, batch_size)
    return np.concatenate(parts) if parts else np.empty((0,) + tuple(model.output_shape[1:]), np.float32)


def predict_classes(model, x: np.ndarray, input_divisor: float = 1.0, batch_size: int = PREDICT_BATCH) -> np.ndarray:
    """Argmax class of `model` on raw 0-255 images `x`, fed as x / input_divisor."""
    parts = _batched(_compiled(model)[1], x, input_divisor, batch_size)
    return np.concatenate(parts).astype(np.int64) if parts else np.empty(0, np.int64)


def percent(pred: np.ndarray, labels: np.ndarray) -> float:
    """Share of predictions equal to the labels, in percent. For a poisoned file
    (labels = the attacker's target) this is the attack success rate."""
    if len(labels) == 0:
        return float("nan")
    return float(100.0 * np.mean(pred == labels))
