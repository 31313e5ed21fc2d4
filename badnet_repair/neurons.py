"""Masks on neurons, for the pruning defenses (ANP, RNP): one scale per output channel of
every Conv2D and per unit of every Dense layer but the classifier. The masked net is B run
with scaled weights (Keras' stateless_call), so any Conv2D/Dense model works, with or
without BatchNormalization. A mask scales a neuron's incoming weights, not its bias, and
pruning zeroes those weights: as ANP and RNP mask and prune BatchNorm's weight and keep
its bias, a pruned neuron outputs a constant."""
from __future__ import annotations

import numpy as np

from .model import keras


class Neurons:
    def __init__(self, model):
        self.model = model
        last = model.layers[-1]
        self.layers = [l for l in model.layers
                       if isinstance(l, (keras.layers.Conv2D, keras.layers.Dense)) and l is not last]
        index = {id(v): i for i, v in enumerate(model.trainable_variables)}
        self.slots = [(index[id(l.kernel)], index[id(l.bias)] if l.use_bias else None) for l in self.layers]
        self.sizes = [int(l.kernel.shape[-1]) for l in self.layers]

    def variables(self, value: float, name: str):
        return [keras.Variable(np.full(n, value, np.float32), name=f"{name}_{l.name}")
                for l, n in zip(self.layers, self.sizes)]

    def __call__(self, x, kernel_scale, bias_scale=None):
        """B's outputs with each neuron's kernel scaled by kernel_scale (and its bias by
        bias_scale, ANP's perturbation; default unscaled)."""
        values = [v.value for v in self.model.trainable_variables]
        for i, ((k, b), ks) in enumerate(zip(self.slots, kernel_scale)):
            values[k] = values[k] * ks
            if b is not None and bias_scale is not None:
                values[b] = values[b] * bias_scale[i]
        out, _ = self.model.stateless_call(values, [v.value for v in self.model.non_trainable_variables], x,
                                           training=False)
        return out

    def prune(self, below: list, model=None):
        """A copy of `model` (default B) with the neurons in `below` (per layer, a boolean
        array) pruned: their incoming weights zeroed."""
        from .defense import copy

        pruned = copy(model or self.model)
        for layer, cut in zip(self.layers, below):
            twin = pruned.get_layer(layer.name)
            value = np.array(twin.kernel.numpy())
            value[..., cut] = 0.0
            twin.kernel.assign(value)
        return pruned


def prune_by_threshold(neurons: Neurons, masks, clean, floor: float, thresholds, log=print):
    """The clean-only rule for a mask: the highest threshold (most neurons pruned) whose
    pruned B keeps the holdout floor; candidates strongest first."""
    from .defense import strongest_within

    values = [np.asarray(m) for m in masks]

    def make(t):
        return neurons.prune([v < t for v in values])

    pruned, t, tried = strongest_within(sorted(thresholds, reverse=True), make, clean, floor, log, "threshold")
    count = int(sum((v < t).sum() for v in values))
    for row in tried:
        row["neurons_pruned"] = int(sum((v < row["threshold"]).sum() for v in values))
    return pruned, {"threshold": t, "neurons_pruned": count, "neurons": int(sum(neurons.sizes)), "tried": tried}
