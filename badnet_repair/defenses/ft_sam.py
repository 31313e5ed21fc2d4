"""FT-SAM (Zhu et al., ICCV 2023): fine-tuning with adaptive sharpness-aware minimisation
(ASAM, Kwon et al. 2021). Each step moves the weights to the worst point of a ball of
radius rho scaled by |w|, takes the gradient there, and applies it at the original weights."""
from __future__ import annotations

from .. import training
from .base import strongest_within

PAPER = "Zhu et al., Fine-Tuning with Sharpness-Aware Minimization, ICCV 2023"
PARAMS = {"learning_rates": [float], "rho": float, "epochs": int, "batch_size": int}
ETA = 0.01  # ASAM's floor on |w| in the scaling: zero weights are still perturbed


def check(model, cfg: dict, prune_layer: str) -> dict:
    return cfg


def defend(model, clean, cfg: dict, floor: float, log=print):
    """The largest learning rate of cfg['learning_rates'] whose tuned net keeps the floor."""
    import tensorflow as tf

    rho, ce = cfg["rho"], training.cross_entropy(model)

    def make(lr):
        tuned = training.copy(model)

        def sam_step(optim, variables, xb, yb, i):
            with tf.GradientTape() as tape:
                value = ce(yb, tuned(xb, training=True))
            grads = tape.gradient(value, variables)
            scaled = [(tf.abs(w) + ETA) * g for w, g in zip(variables, grads)]
            norm = tf.sqrt(tf.add_n([tf.reduce_sum(tf.square(s)) for s in scaled])) + 1e-12
            shifts = [rho * (tf.abs(w) + ETA) * s / norm for w, s in zip(variables, scaled)]
            for w, e in zip(variables, shifts):
                w.assign_add(e)
            with tf.GradientTape() as tape:
                sharp = ce(yb, tuned(xb, training=True))
            grads = tape.gradient(sharp, variables)
            for w, e in zip(variables, shifts):
                w.assign_sub(e)
            optim.apply_gradients(zip(grads, variables))
            return value

        training.fit(tuned, clean.x, clean.y, epochs=cfg["epochs"], batch_size=cfg["batch_size"], learning_rate=lr,
                     seed=cfg["seed"], step_fn=sam_step, log=lambda s: None)
        return tuned

    tuned, lr, tried = strongest_within(sorted(cfg["learning_rates"], reverse=True), make, clean, floor,
                                        log, "learning_rate")
    return tuned, {"learning_rate": lr, "rho": rho, "tried": tried}
