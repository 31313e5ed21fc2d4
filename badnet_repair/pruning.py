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


def channel_path(model, layer_name: str) -> list:
    """[conv, ..., layer]: the Conv2D whose filters make `layer_name`'s channels, then the
    channel-wise layers up to it. BadInput naming the layer that breaks the path."""
    graph = Graph(model)
    layer = graph.layer(layer_name)
    path = [layer]
    while not isinstance(layer, keras.layers.Conv2D):
        why = _why_not_channelwise(graph, layer)
        if why:
            raise BadInput(f"params.yaml: the channels of 'prune.layer' {layer_name!r} cannot be traced back "
                           f"to one conv layer's filters: {why}")
        layer = graph.layers[graph.parents(layer.name)[0]]
        path.append(layer)
    if _activation(layer) in _ACROSS_CHANNELS or layer.data_format != "channels_last":
        raise BadInput(f"params.yaml: the channels of 'prune.layer' {layer_name!r} come from conv layer "
                       f"{layer.name!r}, whose {_activation(layer)} activation or {layer.data_format} layout "
                       f"mixes or moves the channels, so zeroing a filter does not remove one")
    return path[::-1]


def source_conv(model, layer_name: str):
    """The Conv2D layer whose filters produce the channels of `layer_name`."""
    return channel_path(model, layer_name)[0]


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
    pruned = keras.models.clone_model(model)
    pruned.set_weights(model.get_weights())
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
    raise BadInput(f"params.yaml: 'prune.order' is {order!r}, expected ascending or descending")


def sweep_predictions(model, layer_name: str, activations: np.ndarray, order: np.ndarray,
                      fill: np.ndarray, batch_size: int = 4096, progress=None) -> np.ndarray:
    """Predicted classes after removing 0, 1, ..., n channels in `order`: shape (n + 1, N).

    Step k sets the first k channels of `order` to `fill` (their value once pruned).
    When every layer reading `layer_name` is linear before its activation (Conv2D, or
    Flatten then Dense, as in DeepID) the incremental path is used; otherwise each step
    runs the whole head. Both give the full pruned model's predictions.
    """
    linear = _linear_split(model, layer_name)
    fill = np.broadcast_to(np.asarray(fill, np.float32), activations.shape[1:])
    if linear is None:
        _, head = split(model, layer_name)
        return _sweep_head(_compiled_argmax(head), activations, order, fill, batch_size, progress)
    return _sweep_incremental(model, layer_name, *linear, activations, order, fill, batch_size, progress)


def _sweep_head(run, activations, order, fill, batch_size, progress):
    """Every step runs the head on all the masked activations."""
    n = activations.shape[-1]
    out = np.empty((n + 1, len(activations)), np.int32)
    for k in range(n + 1):
        out[k] = _step(run, activations, order[:k], fill, batch_size)
        if progress:
            progress(k)
    return out


def _step(run, activations, removed, fill, batch_size):
    """The head's classes with the `removed` channels set to their pruned value."""
    keep, shift = _mask(removed, fill)
    return np.concatenate([run(activations[i:i + batch_size] * keep + shift)
                           for i in range(0, len(activations), batch_size)] or [np.empty(0, np.int32)])


def _mask(removed, fill):
    """Channel multipliers (C,) and what to add (H, W, C): removed channels take `fill`."""
    keep = np.ones(fill.shape[-1], np.float32)
    keep[np.asarray(removed, np.int64)] = 0.0
    return keep, ((1.0 - keep) * fill).astype(np.float32)


class _Linear:
    """A layer that reads the pruned layer directly and is linear before its activation,
    so removing channel c subtracts c's own contribution from its pre-activation."""

    def __init__(self, layer, flattened: bool):
        self.layer, self.flattened = layer, flattened
        kernel, *bias = layer.get_weights()
        self.kernel = kernel.astype(np.float32)
        self.bias = bias[0].astype(np.float32) if bias else np.float32(0)

    def pre_activation(self, a: np.ndarray) -> np.ndarray:
        a = a.astype(np.float32, copy=False)
        if self.flattened:
            return a.reshape(len(a), -1) @ self.kernel + self.bias
        return self._patches(a) @ self.kernel.reshape(-1, self.kernel.shape[-1]) + self.bias

    def contribution(self, d: np.ndarray, c: int, channels: int) -> np.ndarray:
        """The part of the pre-activation that channel c's map `d` (N, H, W) makes."""
        k = self.kernel
        if self.flattened:  # channels-last flatten: channel c sits at every `channels`-th row
            return d.reshape(len(d), -1) @ k[c::channels]
        return self._patches(d[..., None]) @ k[:, :, c, :].reshape(-1, k.shape[-1])

    def _patches(self, x: np.ndarray) -> np.ndarray:
        """im2col for the conv: (N, OH, OW, kh * kw * C), in the kernel's (i, j, c) order."""
        (kh, kw), (sh, sw), (dh, dw) = self.layer.kernel_size, self.layer.strides, self.layer.dilation_rate
        _, h, w, _ = x.shape
        if self.layer.padding == "same":  # TF's SAME: the extra pixel goes after
            oh, ow = -(-h // sh), -(-w // sw)
            ph = max((oh - 1) * sh + (kh - 1) * dh + 1 - h, 0)
            pw = max((ow - 1) * sw + (kw - 1) * dw + 1 - w, 0)
            x = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
        else:
            oh, ow = (h - (kh - 1) * dh - 1) // sh + 1, (w - (kw - 1) * dw - 1) // sw + 1
        return np.concatenate([x[:, i * dh:i * dh + (oh - 1) * sh + 1:sh, j * dw:j * dw + (ow - 1) * sw + 1:sw]
                               for i in range(kh) for j in range(kw)], axis=-1)


def _linear_split(model, layer_name):
    """(readers, tail, last) if every reader of the layer is Conv2D or Flatten -> Dense; else None.

    readers: [_Linear]. tail maps those readers' outputs (after their activations) to the
    model output, or, when the model ends in a Dense softmax (`last`), to that Dense's
    input: a softmax is monotone, so its logits decide."""
    graph = Graph(model)
    readers = []
    for name in graph.children(layer_name):
        op = graph.layers[name]
        if graph.call_count(name) != 1 or graph.parents(name) != [layer_name]:
            return None
        after = graph.children(name)
        if isinstance(op, keras.layers.Conv2D) and op.data_format == "channels_last" and op.groups == 1:
            readers.append(_Linear(op, flattened=False))
        elif (isinstance(op, keras.layers.Flatten) and op.data_format == "channels_last" and len(after) == 1
              and isinstance(graph.layers[after[0]], keras.layers.Dense)
              and graph.call_count(after[0]) == 1 and graph.parents(after[0]) == [name]):
            readers.append(_Linear(graph.layers[after[0]], flattened=True))
        else:
            return None
    if not readers or len(graph.outputs) != 1 or any(graph.is_output(r.layer.name) for r in readers):
        return None
    last = graph.layers[graph.outputs[0][0]]
    if not (isinstance(last, keras.layers.Dense) and _activation(last) == "softmax"
            and graph.call_count(last.name) == 1 and graph.output_arg(last.name)):
        last = None
    try:
        tail = graph.submodel([r.layer.name for r in readers],
                              [graph.output_arg(last.name) if last else graph.outputs[0]], name="tail")
    except BadInput:  # a path around the readers: the whole head runs instead
        return None
    return readers, tail, last


TIE = 1e-3  # top-2 scores closer than this (relative) are re-decided by the exact head


def _sweep_incremental(model, layer_name, readers, tail, last, activations, order, fill, batch_size, progress):
    """Keep every reader's pre-activation per image, side by side in one matrix Z;
    removing channel c subtracts c's contribution, a (H*W -> Z's width) linear map,
    and only the tail runs. Images whose channel c already equals its pruned value
    are untouched, so their prediction carries over.

    The running float32 sums drift from the model's own by about 1e-6 relative, far
    inside TIE: a prediction whose top two scores are within TIE is re-decided by the
    whole head on the masked activations, so rounding never picks another class."""
    import tensorflow as tf

    n_img, *spatial, n_ch = activations.shape
    hw = int(np.prod(spatial))
    _, head = split(model, layer_name)
    exact = _compiled_argmax(head)
    acts = [keras.activations.get(r.layer.activation) for r in readers]

    # A softmax is monotone: when the model ends in Dense + softmax, decide on its logits
    # and skip the exponentials. A near-tie is then a logit gap under TIE (scaled).
    logits = last is not None
    if logits:
        w, b = last.kernel, last.bias  # the bias is None for Dense(use_bias=False)

    pre = [np.concatenate([r.pre_activation(activations[i:i + batch_size])
                           for i in range(0, n_img, batch_size)]) for r in readers]
    shapes = [z.shape[1:] for z in pre]
    widths = [int(np.prod(s)) for s in shapes]
    z_all = tf.Variable(np.concatenate([z.reshape(n_img, -1) for z in pre], axis=1), trainable=False)
    del pre

    @tf.function(reduce_retracing=True)
    def decide(rows, d, m):
        """Subtract the removed channel's map `d` through `m` from Z's `rows`; their classes
        and near-ties. Z stays in TensorFlow: no copies to and from numpy at every step."""
        z = tf.gather(z_all, rows) - tf.matmul(d, m)
        z_all.scatter_nd_update(rows[:, None], z)
        parts = tf.split(z, widths, axis=1)
        ins = [act(tf.reshape(p, (-1,) + tuple(s))) for act, p, s in zip(acts, parts, shapes)]
        out = tail(ins if len(ins) > 1 else ins[0], training=False)
        if logits:
            out = tf.matmul(out, w) if b is None else tf.matmul(out, w) + b
        best = tf.reduce_max(out, axis=-1, keepdims=True)
        gap = TIE * (tf.maximum(tf.abs(best), 1.0) if logits else best)
        rivals = tf.reduce_sum(tf.cast(out >= best - gap, tf.int32), axis=-1)  # cheaper than top_k
        return tf.argmax(out, axis=-1, output_type=tf.int32), rivals > 1

    basis = np.eye(hw, dtype=np.float32).reshape(hw, *spatial)

    def contribution_map(c):
        """(H*W, Z's width): what a unit value at each position of channel c adds to Z."""
        return np.concatenate([r.contribution(basis, c, n_ch).reshape(hw, -1) for r in readers], axis=1)

    def remove(c, removed):
        """Subtract channel c from Z and decide again, batch by batch while the rows are in cache.
        Returns (rows that changed, their classes)."""
        d = by_channel[c] - fill[..., c].reshape(-1)
        rows = np.flatnonzero(d.any(axis=1)).astype(np.int32)
        if not len(rows):
            return rows, rows
        m = contribution_map(c)
        pred, tie = [], []
        for i in range(0, len(rows), batch_size):
            # the subtraction runs in the same TensorFlow call: BLAS threads of numpy
            # and TensorFlow's own, interleaved, would fight over the cores
            pick = rows[i:i + batch_size]
            p, t = decide(pick, d[pick], m)
            pred.append(p.numpy())
            tie.append(t.numpy())
        pred, tie = np.concatenate(pred), np.concatenate(tie)
        if tie.any():
            pred[tie] = _step(exact, activations[rows[tie]], removed, fill, batch_size)
        return rows, pred

    out = np.empty((n_ch + 1, n_img), np.int32)
    out[0] = _step(exact, activations, [], fill, batch_size)
    by_channel = np.ascontiguousarray(np.moveaxis(activations, -1, 0)).reshape(n_ch, n_img, hw)
    if progress:
        progress(0)
    for k in range(1, n_ch + 1):
        out[k] = out[k - 1]
        rows, pred = remove(int(order[k - 1]), order[:k])
        out[k, rows] = pred
        if progress:
            progress(k)
    return out


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
