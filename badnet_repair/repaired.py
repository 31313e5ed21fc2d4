"""The repaired net G: B's class where B and B' agree, class N ("poisoned") where they don't.
The scan-gated detector is the same rule with fewer suspects: it flags a disagreement only
where B's class is a target the clean-only scan found, or B''s class + an offset it found (an
all-to-all backdoor, y -> y + k; docs/scan.md); G suspects every class."""
from __future__ import annotations

import numpy as np

from .model import keras


def decide(badnet_classes, pruned_classes, num_classes: int, targets=None, shifts=()):
    """The one rule: `num_classes` (N) where B and B' disagree and B's class is a suspect,
    B's class elsewhere. Suspects: every class (G), or the detector's: B's class is one of
    `targets`, or is B''s class + k (mod N) for an offset k of `shifts` (targets and shifts
    empty: it never flags). On class indices, so it holds for any output (probabilities or
    logits); takes numpy arrays or tensors."""
    ops = keras.ops
    flag = ops.not_equal(badnet_classes, pruned_classes)
    if targets is not None:
        suspect, dtype = ops.zeros_like(flag), badnet_classes.dtype
        for t in targets:  # a handful of classes: no lookup table over N
            suspect = ops.logical_or(suspect, ops.equal(badnet_classes, ops.cast(t, dtype)))
        for k in shifts:
            aim = ops.mod(ops.add(ops.cast(pruned_classes, dtype), ops.cast(k, dtype)), ops.cast(num_classes, dtype))
            suspect = ops.logical_or(suspect, ops.equal(badnet_classes, aim))
        flag = ops.logical_and(flag, suspect)
    return ops.where(flag, ops.cast(num_classes, badnet_classes.dtype), badnet_classes)


@keras.saving.register_keras_serializable(package="badnet_repair")
class AgreementGate(keras.layers.Layer):
    """From the outputs of B and B' (N classes each), G's class as a one-hot over N + 1
    outputs. Only classes are kept: B's scores say nothing about class N, and may be
    logits of any sign. `targets` and `shifts`: the detector's suspects (targets None: G,
    every class)."""

    def __init__(self, targets=None, shifts=(), **kwargs):
        super().__init__(**kwargs)
        self.targets = None if targets is None else [int(t) for t in targets]
        self.shifts = [int(k) for k in shifts]

    def get_config(self):  # shifts only where there are some: a file without keeps its bytes
        return {**super().get_config(), "targets": self.targets, **({"shifts": self.shifts} if self.shifts else {})}

    def call(self, inputs):
        ops = keras.ops
        b, b_pruned = inputs
        n = b.shape[-1]
        classes = decide(ops.argmax(b, axis=-1), ops.argmax(b_pruned, axis=-1), n, self.targets, self.shifts)
        return ops.one_hot(classes, n + 1, dtype=b.dtype)

    def compute_output_shape(self, input_shapes):
        shape = input_shapes[0]
        return tuple(shape[:-1]) + (shape[-1] + 1,)


def build_repaired(badnet: keras.Model, pruned: keras.Model, targets=None, name="repaired", shifts=()) -> keras.Model:
    """G (or, given `targets` and `shifts`, the detector) as one Keras model over the same
    input, with B and B' as named sub-models."""
    inp = keras.Input(badnet.input_shape[1:], name="image")
    b = keras.Model(badnet.inputs, badnet.outputs[0], name="badnet")
    bp = keras.Model(pruned.inputs, pruned.outputs[0], name="pruned")
    return keras.Model(inp, AgreementGate(targets, shifts, name="agreement")([b(inp), bp(inp)]), name=name)


def repaired_classes(badnet_pred: np.ndarray, pruned_pred: np.ndarray, num_classes: int, targets=None,
                     shifts=()) -> np.ndarray:
    """G's (or the detector's) classes from B's and B''s predicted classes."""
    return np.asarray(decide(np.asarray(badnet_pred), np.asarray(pruned_pred), num_classes, targets, shifts))


def flagged(badnet_pred: np.ndarray, pruned_pred: np.ndarray, targets=None, shifts=(), num_classes=None) -> float:
    """Share (percent) of inputs G (or the detector) sends to class N. On poisoned inputs
    this is the detection rate, on clean ones the false-positive rate. N (`num_classes`) is
    needed with offsets; without, any class above the predicted ones stands for it."""
    from .evaluate import percent

    if shifts and num_classes is None:
        raise ValueError("flagged: offsets are taken mod N; give num_classes")
    b, p = np.asarray(badnet_pred), np.asarray(pruned_pred)
    n = num_classes if num_classes is not None else 1 + max(np.max(b, initial=-1), np.max(p, initial=-1))
    return percent(repaired_classes(b, p, n, targets, shifts), np.full(len(b), n))
