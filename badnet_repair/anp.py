"""ANP (Wu and Wang, NeurIPS 2021): learn a mask in [0, 1] on every neuron such that B stays
accurate on clean data even when each neuron's weight and bias are perturbed adversarially
by up to eps; backdoor neurons are the sensitive ones, their masks fall, and neurons whose
mask is below a threshold are pruned."""
from __future__ import annotations

import numpy as np

from . import defense
from .neurons import Neurons, prune_by_threshold


def masks(model, clean: defense.Clean, cfg: dict, log=print):
    """ANP's mask optimisation (its Algorithm 1): per batch, one ascent step on the
    perturbations (lr eps / steps, clipped to [-eps, eps]), then one SGD step on the masks
    of alpha * clean loss + (1 - alpha) * perturbed loss, masks clipped to [0, 1]."""
    import tensorflow as tf

    from .model import keras

    neurons = Neurons(model)
    keras.utils.set_random_seed(cfg["seed"])
    m = neurons.variables(1.0, "mask")
    d, xi = neurons.variables(0.0, "noise"), neurons.variables(0.0, "noise_bias")
    eps, alpha = cfg["eps"], cfg["alpha"]
    mask_opt = keras.optimizers.SGD(cfg["mask_lr"], momentum=0.9)
    mask_opt.build(m)

    def ce(out, yb):
        return tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(yb, out))

    @tf.function(reduce_retracing=True)
    def step(xb, yb, seed):
        for i, v in enumerate(d + xi):
            v.assign(tf.random.stateless_uniform(v.shape, tf.stack([seed, i]), -eps, eps))
        with tf.GradientTape() as tape:
            rob = -ce(neurons(xb, [a + b for a, b in zip(m, d)], [1 + b for b in xi]), yb)
        for v, g in zip(d + xi, tape.gradient(rob, d + xi)):
            v.assign(tf.clip_by_value(v - eps * g, -eps, eps))  # descent on -CE: ascent on CE
        with tf.GradientTape() as tape:
            nat = ce(neurons(xb, m), yb)
            per = ce(neurons(xb, [a + b for a, b in zip(m, d)], [1 + b for b in xi]), yb)
            loss = alpha * nat + (1 - alpha) * per
        mask_opt.apply_gradients(zip(tape.gradient(loss, m), m))
        for v in m:
            v.assign(tf.clip_by_value(v, 0.0, 1.0))
        return loss

    rng = np.random.default_rng([cfg["seed"], 13])
    for it in range(cfg["iterations"]):
        idx = rng.choice(len(clean.y), cfg["batch_size"], replace=False)
        loss = step(tf.constant(clean.x[idx]), tf.constant(clean.y[idx]), tf.constant(it, tf.int32))
        if (it + 1) % 200 == 0:
            log(f"  iteration {it + 1}/{cfg['iterations']}: loss {float(loss):.4f}")
    return neurons, [v.numpy() for v in m]


def defend(model, clean: defense.Clean, cfg: dict, floor: float, log=print):
    neurons, values = masks(model, clean, cfg, log)
    pruned, facts = prune_by_threshold(neurons, values, clean, floor, cfg["thresholds"], log)
    return pruned, facts
