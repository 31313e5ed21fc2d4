"""Fine-pruning (Liu et al. 2018): fine-tune a pruned net B' on clean data, keeping its
pruned filters exactly zero, and choose the epoch on a clean holdout."""
from __future__ import annotations

import time

import numpy as np

from .errors import BadInput
from .params import PARAMS_FILE


def split_holdout(n: int, fraction: float, seed: int, param: str = "finetune.holdout") -> tuple[np.ndarray, np.ndarray]:
    """(train, holdout) indices of n clean images: a seeded shuffle, holdout = fraction of n."""
    if not 0 < fraction < 1:
        raise BadInput(f"{PARAMS_FILE}: '{param}' must be in (0, 1), got {fraction}")
    perm = np.random.default_rng([seed, 7]).permutation(n)
    k = int(round(fraction * n))
    if k < 1 or k > n - 1:
        raise BadInput(f"{PARAMS_FILE}: '{param}' {fraction} leaves no images to train on "
                       f"or to hold out ({n} clean validation images)")
    return np.sort(perm[k:]), np.sort(perm[:k])


def optimizer(name: str, learning_rate, keras, param: str = "finetune.optimizer"):
    """Adam, or SGD with Nesterov momentum 0.9 (every fine-tuning in the package)."""
    if name == "adam":
        return keras.optimizers.Adam(learning_rate)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True)
    raise BadInput(f"{PARAMS_FILE}: '{param}' is {name!r}, expected adam or sgd")


def fine_prune(pruned, layer: str, channels, x, y, holdout, cfg: dict, input_divisor: float, log=print,
               first_epoch: int = 0):
    """Fine-tune a copy of `pruned` on (x[train], y[train]); return (model, history).

    The parameters of `channels` of the pruned layer `layer` (the conv filters, and any
    BatchNormalization's gamma and beta: pruning.channel_weights) are masked after every
    step, so they stay exactly zero. The learning rate decays along a cosine to 0; the weights kept are
    those of the epoch with the best holdout accuracy, from `first_epoch` on (epoch 0 = B' itself).
    `history`: one dict per epoch (loss, holdout accuracy).
    """
    import tensorflow as tf

    from .evaluate import percent, predict_classes, scale
    from .model import keras, quiet_stderr
    from .pruning import channel_weights, source_conv

    train = np.setdiff1d(np.arange(len(y)), holdout)
    keras.utils.set_random_seed(cfg["seed"])
    tf.config.experimental.enable_op_determinism()
    model = keras.models.clone_model(pruned)
    model.set_weights(pruned.get_weights())
    keep = np.ones(source_conv(model, layer).filters, np.float32)
    keep[np.asarray(list(channels), np.int64)] = 0.0
    masked = [(w, tf.constant(np.broadcast_to(keep, w.shape))) for w in channel_weights(model, layer)]

    steps = cfg["epochs"] * int(np.ceil(len(train) / cfg["batch_size"]))
    schedule = keras.optimizers.schedules.CosineDecay(cfg["learning_rate"], max(steps, 1))
    model.compile(optimizer(cfg["optimizer"], schedule, keras), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])

    class Mask(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            for w, m in masked:
                w.assign(w * m)

    xs = scale(x[train], input_divisor)
    ys = y[train]

    def holdout_accuracy():
        return percent(predict_classes(model, x[holdout], input_divisor), y[holdout])

    best_acc, best_weights, best_epoch = holdout_accuracy(), model.get_weights(), 0
    history = [{"epoch": 0, "loss": None, "holdout_accuracy": round(best_acc, 4)}]
    start = time.perf_counter()
    for epoch in range(1, cfg["epochs"] + 1):
        with quiet_stderr():
            hist = model.fit(xs, ys, batch_size=cfg["batch_size"], epochs=epoch, initial_epoch=epoch - 1,
                             shuffle=True, verbose=0, callbacks=[Mask()])
        acc = holdout_accuracy()
        history.append({"epoch": epoch, "loss": round(float(hist.history["loss"][-1]), 6),
                        "holdout_accuracy": round(acc, 4)})
        if acc > best_acc or epoch == first_epoch:
            best_acc, best_weights, best_epoch = acc, model.get_weights(), epoch
        spent = time.perf_counter() - start
        log(f"  epoch {epoch}/{cfg['epochs']}: loss {history[-1]['loss']:.4f}, holdout accuracy {acc:.2f}% "
            f"[{spent:.0f}s, ETA {spent / epoch * (cfg['epochs'] - epoch):.0f}s]")
    model.set_weights(best_weights)
    for w, m in masked:  # best_weights were masked already; make it explicit
        w.assign(w * m)
    return model, {"chosen_epoch": best_epoch, "holdout_accuracy": round(best_acc, 4), "epochs": history}


def pruned_channels(model, layer: str) -> np.ndarray:
    """Channels of the pruned layer whose conv filter (kernel and bias) is all zero."""
    from .pruning import source_conv

    kernel, *bias = source_conv(model, layer).get_weights()
    zero = np.all(kernel.reshape(-1, kernel.shape[-1]) == 0, axis=0)
    if bias:
        zero &= bias[0] == 0
    return np.flatnonzero(zero)

