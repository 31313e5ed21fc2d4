"""RNP (Li et al., ICML 2023): unlearn B on clean data (gradient ascent until its clean
accuracy falls to a floor), then recover the unlearned net by learning neuron masks alone
on clean data; neurons the recovery leaves low are the backdoor's, and are pruned from B."""
from __future__ import annotations

import numpy as np

from .. import training
from .neurons import Neurons, prune_by_threshold

PAPER = "Li et al., Reconstructive Neuron Pruning, ICML 2023"
PARAMS = {"unlearn_lr": float, "unlearn_epochs": int, "unlearn_floor": float, "recover_lr": float,
          "recover_epochs": int, "batch_size": int, "thresholds": [float]}


def check(model, cfg: dict, prune_layer: str) -> dict:
    Neurons(model)  # refuses a model without maskable neurons
    return cfg


def masks(model, clean, cfg: dict, log=print):
    import tensorflow as tf

    from ..model import keras

    unlearned, ce = training.copy(model), training.cross_entropy(model)

    def ascent(xb, yb):
        out = unlearned(xb, training=True)
        return -ce(yb, out), out

    # RNP stops unlearning once clean accuracy falls to the floor; with many batches per
    # epoch that happens within the first, so the running batch accuracy is checked
    floor, last = cfg["unlearn_floor"], []
    hist = training.fit(unlearned, clean.x, clean.y, epochs=cfg["unlearn_epochs"], batch_size=cfg["batch_size"],
                        seed=cfg["seed"], optim=keras.optimizers.SGD(cfg["unlearn_lr"], momentum=0.9), loss=ascent,
                        stop=lambda value, acc: last.append(acc) or acc <= floor,
                        rng=np.random.default_rng([cfg["seed"], 19]), log=lambda s: None)
    log(f"  unlearning: {hist['steps']} steps, batch accuracy {last[-1]:.2f}%")

    neurons = Neurons(unlearned)
    m = neurons.variables(1.0, "mask")

    def masked(xb, yb):
        out = neurons(xb, m)
        return ce(yb, out), out

    training.fit(unlearned, clean.x, clean.y, epochs=cfg["recover_epochs"], batch_size=cfg["batch_size"],
                 seed=cfg["seed"], optim=keras.optimizers.SGD(cfg["recover_lr"], momentum=0.9), variables=m,
                 loss=masked, after_step=[lambda v=v: v.assign(tf.clip_by_value(v, 0.0, 1.0)) for v in m],
                 rng=np.random.default_rng([cfg["seed"], 17]), log=log, what="recovering ")
    return Neurons(model), [v.numpy() for v in m], hist["steps"]


def defend(model, clean, cfg: dict, floor: float, log=print):
    neurons, values, _ = masks(model, clean, cfg, log)
    return prune_by_threshold(neurons, values, clean, floor, cfg["thresholds"], log)
