"""The repaired net G: B's class where B and B' agree, class N ("poisoned") where they don't."""
from __future__ import annotations

import numpy as np

from .model import keras


@keras.saving.register_keras_serializable(package="badnet_repair")
class AgreementGate(keras.layers.Layer):
    """From the outputs of B and B' (N classes each), N + 1 outputs.

    Where the argmaxes agree: B's probabilities and a 0 for class N. Where they
    don't: a one-hot on class N. So argmax(G) is B's class or N.
    """

    def call(self, inputs):
        ops = keras.ops
        b, b_pruned = inputs
        agree = ops.equal(ops.argmax(b, axis=-1), ops.argmax(b_pruned, axis=-1))
        agree = ops.expand_dims(ops.cast(agree, b.dtype), -1)
        zero = ops.zeros_like(b[:, :1])
        kept = ops.concatenate([b, zero], axis=-1)
        flagged = ops.concatenate([ops.zeros_like(b), ops.ones_like(zero)], axis=-1)
        return agree * kept + (1.0 - agree) * flagged

    def compute_output_shape(self, input_shapes):
        shape = input_shapes[0]
        return tuple(shape[:-1]) + (shape[-1] + 1,)


def build_repaired(badnet: keras.Model, pruned: keras.Model) -> keras.Model:
    """G as one Keras model over the same input, with B and B' as named sub-models."""
    inp = keras.Input(badnet.input_shape[1:], name="image")
    b = keras.Model(badnet.input, badnet.output, name="badnet")
    bp = keras.Model(pruned.input, pruned.output, name="pruned")
    return keras.Model(inp, AgreementGate(name="agreement")([b(inp), bp(inp)]), name="repaired")


def repaired_classes(badnet_pred: np.ndarray, pruned_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """G's classes from B's and B''s predicted classes (the sweep's cached predictions)."""
    return np.where(badnet_pred == pruned_pred, badnet_pred, num_classes)


def flagged(badnet_pred: np.ndarray, pruned_pred: np.ndarray) -> float:
    """Share (percent) of inputs G sends to class N: where B and B' disagree. On poisoned
    inputs this is G's detection rate, on clean ones its false-positive rate."""
    from .evaluate import percent

    flag = -1  # stands for N: no real class
    return percent(repaired_classes(badnet_pred, pruned_pred, flag), np.full(len(badnet_pred), flag))
