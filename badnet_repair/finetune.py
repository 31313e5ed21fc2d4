"""Fine-pruning (Liu et al. 2018): fine-tune a pruned net B' on clean data, keeping its
pruned filters exactly zero, and choose the epoch on a clean holdout."""
from __future__ import annotations

import numpy as np


def fine_prune(pruned, layer: str, channels, x, y, holdout_accuracy, cfg: dict, log=print, first_epoch: int = 0):
    """Fine-tune a copy of `pruned` on (x, y), x as the model is fed; return (model, history).

    The parameters of `channels` of the pruned layer `layer` (the conv filters, and any
    BatchNormalization's gamma and beta: pruning.channel_weights) are masked after every
    step, so they stay exactly zero. The learning rate decays along a cosine to 0; the
    weights kept are those of the epoch with the best `holdout_accuracy(model)`, from
    `first_epoch` on (epoch 0 = B' itself). `history`: chosen_epoch, holdout_accuracy and
    one dict per epoch (loss, holdout accuracy)."""
    import tensorflow as tf

    from .pruning import channel_weights, source_conv
    from .training import copy, fit

    model = copy(pruned)
    keep = np.ones(source_conv(model, layer).filters, np.float32)
    keep[np.asarray(list(channels), np.int64)] = 0.0
    masked = [(w, tf.constant(np.broadcast_to(keep, w.shape))) for w in channel_weights(model, layer)]
    hist = fit(model, x, y, epochs=cfg["epochs"], batch_size=cfg["batch_size"], learning_rate=cfg["learning_rate"],
               optim=cfg["optimizer"], seed=cfg["seed"], masks=masked, select=lambda: holdout_accuracy(model),
               first_epoch=first_epoch, log=log)
    return model, {k: hist[k] for k in ("chosen_epoch", "holdout_accuracy", "epochs")}


def pruned_channels(model, layer: str) -> np.ndarray:
    """Channels of the pruned layer whose conv filter (kernel and bias) is all zero."""
    from .pruning import source_conv

    kernel, *bias = source_conv(model, layer).get_weights()
    zero = np.all(kernel.reshape(-1, kernel.shape[-1]) == 0, axis=0)
    if bias:
        zero &= bias[0] == 0
    return np.flatnonzero(zero)

