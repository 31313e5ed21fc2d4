"""ANP (Wu and Wang, NeurIPS 2021): learn a mask in [0, 1] on every neuron such that B stays
accurate on clean data even when each neuron's weight and bias are perturbed adversarially
by up to eps; backdoor neurons are the sensitive ones, their masks fall, and neurons whose
mask is below a threshold are pruned."""
from __future__ import annotations

import numpy as np

from .. import training
from .neurons import Neurons, prune_by_threshold

PAPER = "Wu and Wang, Adversarial Neuron Pruning, NeurIPS 2021"
PARAMS = {"eps": float, "alpha": float, "mask_lr": float, "iterations": int, "batch_size": int,
          "thresholds": [float]}


def check(model, cfg: dict, prune_layer: str) -> dict:
    Neurons(model)  # refuses a model without maskable neurons
    return cfg


def masks(model, clean, cfg: dict, log=print):
    """ANP's mask optimisation (its Algorithm 1): per batch, one ascent step on the
    perturbations (lr eps / steps, clipped to [-eps, eps]), then one SGD step on the masks
    of alpha * clean loss + (1 - alpha) * perturbed loss, masks clipped to [0, 1]."""
    import tensorflow as tf

    from ..model import keras

    neurons, ce = Neurons(model), training.cross_entropy(model)
    keras.utils.set_random_seed(cfg["seed"])
    m = neurons.variables(1.0, "mask")
    d, xi = neurons.variables(0.0, "noise"), neurons.variables(0.0, "noise_bias")
    eps, alpha = cfg["eps"], cfg["alpha"]

    def step(optim, variables, xb, yb, i):
        for j, v in enumerate(d + xi):
            v.assign(tf.random.stateless_uniform(v.shape, tf.stack([i, j]), -eps, eps))
        with tf.GradientTape() as tape:
            rob = -ce(yb, neurons(xb, [a + b for a, b in zip(m, d)], [1 + b for b in xi]))
        for v, g in zip(d + xi, tape.gradient(rob, d + xi)):
            if g is not None:  # None: the noise on the bias of a layer that has none
                v.assign(tf.clip_by_value(v - eps * g, -eps, eps))  # descent on -CE: ascent on CE
        with tf.GradientTape() as tape:
            nat = ce(yb, neurons(xb, m))
            per = ce(yb, neurons(xb, [a + b for a, b in zip(m, d)], [1 + b for b in xi]))
            loss = alpha * nat + (1 - alpha) * per
        optim.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    def batches(rng):  # the paper's iterations: batches drawn at random, not epochs
        return (rng.choice(len(clean.y), cfg["batch_size"], replace=False) for _ in range(cfg["iterations"]))

    training.fit(model, clean.x, clean.y, epochs=1, batch_size=cfg["batch_size"], seed=cfg["seed"],
                 optim=keras.optimizers.SGD(cfg["mask_lr"], momentum=0.9), variables=m, step_fn=step,
                 after_step=[lambda v=v: v.assign(tf.clip_by_value(v, 0.0, 1.0)) for v in m], batches=batches,
                 rng=np.random.default_rng([cfg["seed"], 13]), log=log, what="mask ")
    return neurons, [v.numpy() for v in m]


def defend(model, clean, cfg: dict, floor: float, log=print):
    neurons, values = masks(model, clean, cfg, log)
    return prune_by_threshold(neurons, values, clean, floor, cfg["thresholds"], log)
