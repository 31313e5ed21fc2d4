"""Pruning after Fine-Pruning: rank the channels of one layer, remove them one at a time.

A channel is removed by zeroing the filter (kernel and bias) of the conv layer that
produces it. The sweep does not re-run the whole network for every step: the front
of the network (input -> pruned layer) runs once, and each step runs only the head
on those cached activations with the removed channels set to the value a zeroed
filter gives them. Nothing here assumes DeepID's layer names.
"""
from __future__ import annotations

import numpy as np

from .errors import BadInput
from .graph import Graph
from .model import keras

# Layers that act on each channel separately, the same way for every input: channel c of
# their output comes from channel c of their input alone.
_CHANNELWISE = (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D, keras.layers.Activation,
                keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.ELU, keras.layers.PReLU,
                keras.layers.Dropout, keras.layers.SpatialDropout2D, keras.layers.GaussianNoise,
                keras.layers.GaussianDropout, keras.layers.ZeroPadding2D, keras.layers.Cropping2D,
                keras.layers.UpSampling2D, keras.layers.BatchNormalization, keras.layers.Identity)
_ACROSS_CHANNELS = ("softmax", "log_softmax")  # activations that mix a position's channels


def _activation(layer) -> str:
    act = getattr(layer, "activation", None)
    return getattr(act, "__name__", str(act))


def _why_not_channelwise(graph, layer) -> str | None:
    """Why channel c of `layer`'s output is not channel c of its one input alone, or None."""
    name, kind = layer.name, type(layer).__name__
    parents = graph.parents(name)
    if graph.call_count(name) != 1:
        return f"{name!r} is called {graph.call_count(name)} times in the model (a shared layer)"
    if len(parents) > 1:
        return (f"{name!r} ({kind}) combines {len(parents)} inputs ({', '.join(parents)}): a channel "
                f"summed or merged with another path (a skip connection) cannot be removed by zeroing one filter")
    if not parents:
        return f"{name!r} is the model input"
    if not isinstance(layer, _CHANNELWISE):
        return f"{name!r} is a {kind}, which does not act on each channel alone"
    if _activation(layer) in _ACROSS_CHANNELS:
        return f"{name!r} applies {_activation(layer)}, which mixes the channels"
    if isinstance(layer, keras.layers.BatchNormalization) and layer.axis not in (-1, 3):
        return f"{name!r} normalises axis {layer.axis}, not the channel axis"
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        return f"{name!r} is channels_first"
    return None


def _trace(graph, layer_name: str):
    """[conv, ..., layer] or the reason the channels of `layer_name` do not come from one conv."""
    layer = graph.layers[layer_name]
    path = [layer]
    while not isinstance(layer, keras.layers.Conv2D):
        why = _why_not_channelwise(graph, layer)
        if why:
            return None, why
        layer = graph.layers[graph.parents(layer.name)[0]]
        path.append(layer)
    return path[::-1], None


def prunable_layers(model) -> list[str]:
    """The layers whose channels trace back to one conv layer's filters, in model order."""
    graph = Graph(model)
    return [name for name in graph.layers if _trace(graph, name)[0] is not None]


def conv_blocks(model) -> list[str]:
    """Each Conv2D's block output, in model order: the last of the channel-wise layers
    (activation, BatchNorm, pooling) that follow it, one child each; the conv if none."""
    graph = Graph(model)
    blocks = []
    for name, layer in graph.layers.items():
        if not isinstance(layer, keras.layers.Conv2D):
            continue
        while len(graph.children(name)) == 1 and _why_not_channelwise(graph, graph.layers[graph.children(name)[0]]) is None:
            name = graph.children(name)[0]
        blocks.append(name)
    return blocks


def channel_path(model, layer_name: str, param: str = "prune.layer") -> list:
    """[conv, ..., layer]: the Conv2D whose filters make `layer_name`'s channels, then the
    channel-wise layers up to it. BadInput naming `param`, the layer that breaks the path,
    and the layers that would do."""
    graph = Graph(model)
    graph.layer(layer_name, param, would_do=prunable_layers(model))
    path, why = _trace(graph, layer_name)
    if why:
        raise BadInput(f"params.yaml: the channels of '{param}' {layer_name!r} cannot be traced back "
                       f"to one conv layer's filters: {why} (layers that would do: "
                       f"{', '.join(prunable_layers(model))})")
    layer = path[0]
    if _activation(layer) in _ACROSS_CHANNELS or layer.data_format != "channels_last":
        raise BadInput(f"params.yaml: the channels of '{param}' {layer_name!r} come from conv layer "
                       f"{layer.name!r}, whose {_activation(layer)} activation or {layer.data_format} layout "
                       f"mixes or moves the channels, so zeroing a filter does not remove one")
    return path


def source_conv(model, layer_name: str, param: str = "prune.layer"):
    """The Conv2D layer whose filters produce the channels of `layer_name`."""
    return channel_path(model, layer_name, param)[0]


def channel_weights(model, layer_name: str) -> list:
    """The variables that hold each channel's own parameters along the path, channel last:
    the conv's kernel and bias, and each BatchNormalization's gamma and beta (and its
    moving mean where it has no gamma). Zeroing channel c in all of them makes the
    channel exactly 0 after the conv and every BatchNormalization."""
    found = []
    for layer in channel_path(model, layer_name):
        if isinstance(layer, keras.layers.Conv2D):
            found += [layer.kernel] + ([layer.bias] if layer.use_bias else [])
        elif isinstance(layer, keras.layers.BatchNormalization):
            found += [w for w in (layer.gamma, layer.beta) if w is not None]
            if layer.gamma is None:
                found.append(layer.moving_mean)
    return found


def split(model, layer_name: str):
    """(front, head): input -> layer output, and layer output -> model output."""
    graph = Graph(model)
    graph.layer(layer_name)
    return (graph.submodel([], [layer_name], name="front"),
            graph.submodel([layer_name], graph.outputs, name="head"))


def prune(model, layer_name: str, channels) -> keras.Model:
    """A copy of `model` with the filters behind `channels` of `layer_name` zeroed (and the
    matching BatchNormalization parameters: see channel_weights)."""
    from .training import copy

    pruned = copy(model)
    channels = np.asarray(list(channels), dtype=np.int64)
    for w in channel_weights(pruned, layer_name):
        value = np.array(w.numpy())
        value[..., channels] = 0.0
        w.assign(value)
    return pruned


def removed_values(model, layer_name: str) -> np.ndarray:
    """What `layer_name` holds, position by position, once every filter is zeroed: shape
    (H, W, C). A removed channel's value does not depend on the input (0 after ReLU and
    pooling, sigmoid(0) after a sigmoid, 0 in a zero-padded border), so running the fully
    pruned front on one input gives it exactly."""
    n = channel_count(model, layer_name)
    front, _ = split(prune(model, layer_name, range(n)), layer_name)
    return np.asarray(front(np.zeros((1,) + tuple(model.input_shape[1:]), np.float32), training=False))[0]


def channel_count(model, layer_name: str) -> int:
    return int(source_conv(model, layer_name).filters)


def channel_scores(activations: np.ndarray) -> np.ndarray:
    """Mean activation of each channel over images and spatial positions (float64 sums)."""
    n = activations.shape[-1]
    return activations.reshape(-1, n).astype(np.float64).mean(axis=0)


def prune_order(scores: np.ndarray, order: str) -> np.ndarray:
    """Channels in the order they are removed; ties broken by channel index."""
    idx = np.arange(len(scores))
    if order == "ascending":
        return np.lexsort((idx, scores))
    if order == "descending":
        return np.lexsort((idx, -scores))
    raise BadInput(f"params.yaml: 'prune.order' is {order!r}, expected {' or '.join(ORDERS)}")


def sweep_predictions(model, layer_name: str, activations: np.ndarray, order: np.ndarray,
                      fill: np.ndarray, batch_size: int = 4096, progress=None) -> np.ndarray:
    """Predicted classes after removing 0, 1, ..., n channels in `order`: shape (n + 1, N).

    Step k sets the first k channels of `order` to `fill` (their value once pruned) and
    runs the head (the layers after `layer_name`) on the cached activations: the full
    pruned model's predictions, without re-running the front of the net."""
    _, head = split(model, layer_name)
    run = _compiled_argmax(head)
    fill = np.broadcast_to(np.asarray(fill, np.float32), activations.shape[1:])
    n = activations.shape[-1]
    out = np.empty((n + 1, len(activations)), np.int32)
    for k in range(n + 1):
        keep = np.ones(n, np.float32)
        keep[np.asarray(order[:k], np.int64)] = 0.0
        shift = ((1.0 - keep) * fill).astype(np.float32)
        out[k] = np.concatenate([run(activations[i:i + batch_size] * keep + shift)
                                 for i in range(0, len(activations), batch_size)] or [np.empty(0, np.int32)])
        if progress:
            progress(k)
    return out


ORDERS = ("ascending", "descending")
SWEEP_SPLITS = (("valid", "clean_accuracy"), ("bd_valid", "attack_success_rate"),
                ("test", "clean_accuracy"), ("bd_test", "attack_success_rate"))


def sweep_table(model, layer_name: str, activations: dict, labels: dict, order: np.ndarray, fill: np.ndarray,
                progress=None):
    """The sweep in `order`: ({column: values} with the steps and each split's score at every
    step, rounded as the CSVs hold them; {split: sweep_predictions})."""
    from .evaluate import percent

    n = len(order)
    table = {"channels_pruned": list(range(n + 1)), "fraction_pruned": [round(k / n, 6) for k in range(n + 1)],
             "channel_removed": [-1] + [int(c) for c in order]}
    preds = {}
    for split, kind in SWEEP_SPLITS:
        preds[split] = sweep_predictions(model, layer_name, activations[split], order, fill, progress=progress)
        table[f"{kind}_{split.removeprefix('bd_')}"] = [round(percent(p, labels[split]), 4) for p in preds[split]]
    return table, preds


def _compiled_argmax(model):
    from .evaluate import predict_classes

    return lambda a: predict_classes(model, a, batch_size=len(a) or 1)


def choose_step(valid_accuracy: np.ndarray, threshold: float, keep: str, drop: str):
    """The sweep step kept as B' for one threshold X, or None if the drop never happens.

    `valid_accuracy[k]` is the clean validation accuracy (percent) with k channels
    removed; only it decides. The limit is `acc0 - X` for drop=absolute (points) and
    `acc0 * (1 - X / 100)` for drop=relative.
      first_past:  the first step whose accuracy is at least X below the original.
      last_within: the step just before that first crossing (the last step, if the
                   drop never happens). Later steps can be within X again; they are not
                   considered: pruning stops at the first crossing.
    """
    acc0 = valid_accuracy[0]
    limit = acc0 - threshold if drop == "absolute" else acc0 * (1.0 - threshold / 100.0)
    past = np.flatnonzero(valid_accuracy <= limit + 1e-9)
    first = int(past[0]) if len(past) else None
    if keep == "first_past":
        return first
    return (first - 1) if first is not None else len(valid_accuracy) - 1
