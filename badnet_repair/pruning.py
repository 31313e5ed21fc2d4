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
from .model import keras

# Layers that act on each channel separately, so channel c of their output comes
# from channel c of their input alone.
_CHANNELWISE = (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D, keras.layers.Activation,
                keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.Dropout, keras.layers.ZeroPadding2D,
                keras.layers.Cropping2D)


def _get_layer(model, name: str):
    try:
        return model.get_layer(name)
    except ValueError:
        raise BadInput(f"params.yaml: 'prune.layer' is {name!r}, but the model has no such layer "
                       f"(layers: {', '.join(layer.name for layer in model.layers)})") from None


def source_conv(model, layer_name: str):
    """The Conv2D layer whose filters produce the channels of `layer_name`."""
    layer = _get_layer(model, layer_name)
    while True:
        if isinstance(layer, keras.layers.Conv2D):
            return layer
        nodes = layer._inbound_nodes
        parents = nodes[0].parent_nodes if nodes else []
        if not isinstance(layer, _CHANNELWISE) or len(nodes) != 1 or len(parents) != 1:
            raise BadInput(f"params.yaml: the channels of layer {layer_name!r} cannot be traced back to "
                           f"one conv layer's filters (stopped at {layer.name!r}, a {type(layer).__name__})")
        layer = parents[0].operation


def split(model, layer_name: str):
    """(front, head): input -> layer output, and layer output -> model output."""
    layer = _get_layer(model, layer_name)
    return keras.Model(model.input, layer.output), keras.Model(layer.output, model.output)


def prune(model, layer_name: str, channels) -> keras.Model:
    """A copy of `model` with the filters behind `channels` of `layer_name` zeroed."""
    conv_name = source_conv(model, layer_name).name
    pruned = keras.models.clone_model(model)
    pruned.set_weights(model.get_weights())
    conv = pruned.get_layer(conv_name)
    kernel, *bias = conv.get_weights()
    channels = np.asarray(list(channels), dtype=np.int64)
    kernel[..., channels] = 0.0
    if bias:
        bias[0][channels] = 0.0
    conv.set_weights([kernel, *bias])
    return pruned


def removed_values(model, layer_name: str) -> np.ndarray:
    """What each channel of `layer_name` holds once its filter is zeroed (0 for ReLU + pooling).

    Found by running the fully pruned front on one input, so any channel-wise
    activation is handled exactly.
    """
    n = channel_count(model, layer_name)
    front, _ = split(prune(model, layer_name, range(n)), layer_name)
    out = np.asarray(front(np.zeros((1,) + tuple(model.input_shape[1:]), np.float32), training=False))
    return out.reshape(-1, n)[0]


def channel_count(model, layer_name: str) -> int:
    return int(_get_layer(model, layer_name).output.shape[-1])


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
    raise BadInput(f"params.yaml: 'prune.order' is {order!r}, expected ascending or descending")


def sweep_predictions(head, activations: np.ndarray, order: np.ndarray, fill: np.ndarray,
                      batch_size: int = 4096, progress=None) -> np.ndarray:
    """Predicted classes after removing 0, 1, ..., n channels in `order`: shape (n + 1, N).

    Step k sets the first k channels of `order` to `fill` (their value once pruned)
    and runs only the head.
    """
    n = activations.shape[-1]
    run = _compiled(head)
    out = np.empty((n + 1, len(activations)), np.int32)
    keep = np.ones(n, np.float32)
    for k in range(n + 1):
        if k:
            keep[order[k - 1]] = 0.0
        shift = ((1.0 - keep) * fill).astype(np.float32)
        for i in range(0, len(activations), batch_size):
            out[k, i:i + batch_size] = run(activations[i:i + batch_size] * keep + shift)
        if progress:
            progress(k)
    return out


def _compiled(head):
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def argmax(a):
        return tf.argmax(head(a, training=False), axis=-1, output_type=tf.int32)

    return lambda a: argmax(a).numpy()


def choose_step(valid_accuracy: np.ndarray, threshold: float, keep: str, drop: str):
    """The sweep step kept as B' for one threshold X, or None if the drop never happens.

    `valid_accuracy[k]` is the clean validation accuracy (percent) with k channels
    removed; only it decides. The limit is `acc0 - X` for drop=absolute (points) and
    `acc0 * (1 - X / 100)` for drop=relative.
      first_past:  the first step whose accuracy is at least X below the original.
      last_within: the step just before that, the most-pruned net still within X
                   (all steps, if the drop never happens).
    """
    acc0 = valid_accuracy[0]
    limit = acc0 - threshold if drop == "absolute" else acc0 * (1.0 - threshold / 100.0)
    past = np.flatnonzero(valid_accuracy <= limit + 1e-9)
    first = int(past[0]) if len(past) else None
    if keep == "first_past":
        return first
    return (first - 1) if first is not None else len(valid_accuracy) - 1
