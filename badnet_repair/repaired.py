"""The repaired net G: B's class where B and B' agree, class N ("poisoned") where they don't."""
from __future__ import annotations

import numpy as np

from .model import keras


def decide(badnet_classes, pruned_classes, num_classes: int):
    """G's decision, the one rule: B's class where B and B' agree, `num_classes` (N) where
    they don't. On class indices, so it holds for any output (probabilities or logits);
    takes numpy arrays or tensors."""
    ops = keras.ops
    return ops.where(ops.equal(badnet_classes, pruned_classes), badnet_classes,
                     ops.cast(num_classes, badnet_classes.dtype))


@keras.saving.register_keras_serializable(package="badnet_repair")
class AgreementGate(keras.layers.Layer):
    """From the outputs of B and B' (N classes each), G's class as a one-hot over N + 1
    outputs. Only classes are kept: B's scores say nothing about class N, and may be
    logits of any sign."""

    def call(self, inputs):
        ops = keras.ops
        b, b_pruned = inputs
        n = b.shape[-1]
        classes = decide(ops.argmax(b, axis=-1), ops.argmax(b_pruned, axis=-1), n)
        return ops.one_hot(classes, n + 1, dtype=b.dtype)

    def compute_output_shape(self, input_shapes):
        shape = input_shapes[0]
        return tuple(shape[:-1]) + (shape[-1] + 1,)


def build_repaired(badnet: keras.Model, pruned: keras.Model) -> keras.Model:
    """G as one Keras model over the same input, with B and B' as named sub-models."""
    inp = keras.Input(badnet.input_shape[1:], name="image")
    b = keras.Model(badnet.inputs, badnet.outputs[0], name="badnet")
    bp = keras.Model(pruned.inputs, pruned.outputs[0], name="pruned")
    return keras.Model(inp, AgreementGate(name="agreement")([b(inp), bp(inp)]), name="repaired")


def repaired_classes(badnet_pred: np.ndarray, pruned_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """G's classes from B's and B''s predicted classes (the sweep's cached predictions)."""
    return np.asarray(decide(np.asarray(badnet_pred), np.asarray(pruned_pred), num_classes))


def flagged(badnet_pred: np.ndarray, pruned_pred: np.ndarray) -> float:
    """Share (percent) of inputs G sends to class N: where B and B' disagree. On poisoned
    inputs this is G's detection rate, on clean ones its false-positive rate."""
    from .evaluate import percent

    flag = -1  # stands for N: no real class
    return percent(repaired_classes(badnet_pred, pruned_pred, flag), np.full(len(badnet_pred), flag))
