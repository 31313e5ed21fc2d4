"""Masks on neurons, for the pruning defenses (ANP, RNP): one scale per output channel of
every Conv2D and per unit of every Dense layer, nested sub-models and frozen layers
included, but not the classifier (the weighted layer that makes the output, found in the
graph). The masked net is B run with scaled weights (Keras' stateless_call), so any
Conv2D/Dense model works, with or without BatchNormalization. A mask scales a neuron's
incoming weights, not its bias, and pruning zeroes those weights: as ANP and RNP mask and
prune BatchNorm's weight and keep its bias, a pruned neuron outputs a constant."""
from __future__ import annotations

import numpy as np

from ..errors import BadInput
from ..model import keras

_PASS = (keras.layers.Activation, keras.layers.Softmax, keras.layers.Flatten, keras.layers.Reshape,
         keras.layers.Dropout, keras.layers.Identity)  # weightless layers between the classifier and the output


def _all_layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)
        else:
            yield layer


def classifier(model):
    """The Conv2D or Dense layer that makes `model`'s class scores: from the output back
    through weightless layers (a separate softmax, a flatten), in the graph."""
    from ..graph import Graph

    graph = Graph(model)
    layer = graph.layers[graph.outputs[0][0]]
    while True:
        if isinstance(layer, keras.Model):
            return classifier(layer)
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            return layer
        parents = graph.parents(layer.name)
        if not isinstance(layer, _PASS) or len(parents) != 1:
            raise BadInput(f"model {model.name!r}: no Dense or Conv2D classifier makes its output ({layer.name!r}, a "
                           f"{type(layer).__name__}, comes first), so neuron masks cannot leave the classifier out")
        layer = graph.layers[parents[0]]


class Neurons:
    def __init__(self, model):
        self.model = model
        last = classifier(model)
        self.layers = [l for l in _all_layers(model)
                       if isinstance(l, (keras.layers.Conv2D, keras.layers.Dense)) and l is not last]
        if not self.layers:
            raise BadInput(f"model {model.name!r}: no Conv2D or Dense layer besides the classifier "
                           f"{last.name!r}, so there is no neuron to mask")
        index = {id(v): ("t", i) for i, v in enumerate(model.trainable_variables)}
        index.update({id(v): ("n", i) for i, v in enumerate(model.non_trainable_variables)})  # frozen layers
        self.slots = [(index[id(l.kernel)], index[id(l.bias)] if l.use_bias else None) for l in self.layers]
        self.weight_index = [next(i for i, w in enumerate(model.weights) if w is l.kernel) for l in self.layers]
        self.sizes = [int(l.kernel.shape[-1]) for l in self.layers]

    def variables(self, value: float, name: str):
        return [keras.Variable(np.full(n, value, np.float32), name=f"{name}_{l.name}")
                for l, n in zip(self.layers, self.sizes)]

    def __call__(self, x, kernel_scale, bias_scale=None):
        """B's outputs with each neuron's kernel scaled by kernel_scale (and its bias by
        bias_scale, ANP's perturbation; default unscaled)."""
        values = {"t": [v.value for v in self.model.trainable_variables],
                  "n": [v.value for v in self.model.non_trainable_variables]}
        for i, ((k, b), ks) in enumerate(zip(self.slots, kernel_scale)):
            values[k[0]][k[1]] = values[k[0]][k[1]] * ks
            if b is not None and bias_scale is not None:
                values[b[0]][b[1]] = values[b[0]][b[1]] * bias_scale[i]
        out, _ = self.model.stateless_call(values["t"], values["n"], x, training=False)
        return out

    def prune(self, below: list, model=None):
        """A copy of `model` (default B) with the neurons in `below` (per layer, a boolean
        array) pruned: their incoming weights zeroed. Kernels are found by their place in
        the model's weights, which a copy keeps, so nested layers are pruned too."""
        from ..training import copy

        pruned = copy(model or self.model)
        for i, cut in zip(self.weight_index, below):
            kernel = pruned.weights[i]
            value = np.array(kernel.numpy())
            value[..., cut] = 0.0
            kernel.assign(value)
        return pruned


def prune_by_threshold(neurons: Neurons, masks, clean, floor: float, thresholds, log=print):
    """The clean-only rule for a mask: the highest threshold (most neurons pruned) whose
    pruned B keeps the holdout floor; candidates strongest first."""
    from .base import strongest_within

    values = [np.asarray(m) for m in masks]

    def make(t):
        return neurons.prune([v < t for v in values])

    pruned, t, tried = strongest_within(sorted(thresholds, reverse=True), make, clean, floor, log, "threshold")
    count = int(sum((v < t).sum() for v in values))
    for row in tried:
        row["neurons_pruned"] = int(sum((v < row["threshold"]).sum() for v in values))
    return pruned, {"threshold": t, "neurons_pruned": count, "neurons": int(sum(neurons.sizes)), "tried": tried}
