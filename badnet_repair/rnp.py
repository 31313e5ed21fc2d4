"""RNP (Li et al., ICML 2023): unlearn B on clean data (gradient ascent until its clean
accuracy falls to a floor), then recover the unlearned net by learning neuron masks alone
on clean data; neurons the recovery leaves low are the backdoor's, and are pruned from B."""
from __future__ import annotations

import numpy as np

from . import defense
from .neurons import Neurons, prune_by_threshold


def masks(model, clean: defense.Clean, cfg: dict, log=print):
    import tensorflow as tf

    from .model import keras

    unlearned = defense.copy(model)
    variables = unlearned.trainable_variables
    unlearn_opt = keras.optimizers.SGD(cfg["unlearn_lr"], momentum=0.9)
    unlearn_opt.build(variables)

    @tf.function(reduce_retracing=True)
    def ascend(xb, yb):
        with tf.GradientTape() as tape:
            out = unlearned(xb, training=True)
            loss = -tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(yb, out))
        unlearn_opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return tf.reduce_mean(tf.cast(tf.equal(tf.argmax(out, -1, output_type=tf.int32), tf.cast(yb, tf.int32)),
                                      tf.float32))

    # RNP stops unlearning once clean accuracy falls to the floor; with many batches per
    # epoch that happens within the first, so the running batch accuracy is checked
    rng, steps, done = np.random.default_rng([cfg["seed"], 19]), 0, False
    for epoch in range(1, cfg["unlearn_epochs"] + 1):
        perm = rng.permutation(len(clean.y))
        for i in range(0, len(perm), cfg["batch_size"]):
            idx = perm[i:i + cfg["batch_size"]]
            acc = 100.0 * float(ascend(tf.constant(clean.x[idx]), tf.constant(clean.y[idx])))
            steps += 1
            if acc <= cfg["unlearn_floor"]:
                done = True
                break
        if done:
            break
    log(f"  unlearning: {steps} steps, batch accuracy {acc:.2f}%")

    neurons = Neurons(unlearned)
    m = neurons.variables(1.0, "mask")
    opt = keras.optimizers.SGD(cfg["recover_lr"], momentum=0.9)
    opt.build(m)

    @tf.function(reduce_retracing=True)
    def step(xb, yb):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(yb, neurons(xb, m)))
        opt.apply_gradients(zip(tape.gradient(loss, m), m))
        for v in m:
            v.assign(tf.clip_by_value(v, 0.0, 1.0))
        return loss

    rng = np.random.default_rng([cfg["seed"], 17])
    for epoch in range(1, cfg["recover_epochs"] + 1):
        perm = rng.permutation(len(clean.y))
        for i in range(0, len(perm), cfg["batch_size"]):
            idx = perm[i:i + cfg["batch_size"]]
            loss = step(tf.constant(clean.x[idx]), tf.constant(clean.y[idx]))
        log(f"  recovering epoch {epoch}/{cfg['recover_epochs']}: loss {float(loss):.4f}")
    return Neurons(model), [v.numpy() for v in m], steps


def defend(model, clean: defense.Clean, cfg: dict, floor: float, log=print):
    neurons, values, _ = masks(model, clean, cfg, log)
    return prune_by_threshold(neurons, values, clean, floor, cfg["thresholds"], log)
