"""I-BAU (Zeng et al., ICLR 2022): adversarial unlearning. Each round finds one universal
perturbation that most raises the net's loss on the clean training share (within an L2 ball),
then trains the net to classify clean images carrying the perturbations found so far
correctly. A backdoor is the strongest universal perturbation a BadNet has, so the first
round usually finds it (it sends most images to the target class) and the rounds unlearn it.

Two departures from the paper, both for DeepID (1283 classes, no BatchNorm, unnormalised
logits): the outer step is first-order (the paper's implicit hypergradient term is left
out), with gradients clipped, since a perturbed image's loss runs into the hundreds; and a
recovery at the end, the same training at a smaller learning rate without new
perturbations, which wins back the clean accuracy the rounds cost. Plain fine-tuning in its
place brings the backdoor back."""
from __future__ import annotations

import numpy as np

from . import defense


def perturbation(model, x, labels, cfg: dict, rng):
    """One universal perturbation: gradient ascent on the mean loss of (x + delta, labels),
    one pass in batches, projected onto the L2 ball of radius cfg['bound'] after each step."""
    import tensorflow as tf

    from .model import keras

    bound, lr = cfg["bound"], cfg["perturbation_lr"]

    @tf.function(reduce_retracing=True)
    def ascend(delta, xb, yb):
        with tf.GradientTape() as tape:
            tape.watch(delta)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(yb, model(xb + delta)))
        delta = delta + lr * tape.gradient(loss, delta)
        return delta * tf.minimum(1.0, bound / (tf.norm(delta) + 1e-12))

    delta = tf.zeros((1,) + x.shape[1:])
    perm = rng.permutation(len(labels))
    for i in range(0, len(perm), cfg["perturbation_batch_size"]):
        idx = perm[i:i + cfg["perturbation_batch_size"]]
        delta = ascend(delta, tf.constant(x[idx]), tf.constant(labels[idx]))
    return delta.numpy()


def unlearn(model, clean: defense.Clean, cfg: dict, learning_rate: float, log=print) -> list:
    """cfg['rounds'] rounds of (a new perturbation, found on the net's own classes; one epoch
    of training on each batch plus its first cfg['perturbed'] images carrying perturbations
    drawn from all those found so far, true labels), then cfg['recover_epochs'] epochs of the
    same training at cfg['recover_lr'] without new perturbations: the recovery brings back
    clean accuracy, and the found perturbations keep it from bringing back the backdoor.
    Returns each perturbation's L2 norm, the class it sends most images to and that share
    (the backdoor's target, when it finds one)."""
    import tensorflow as tf

    from .evaluate import predict_classes
    from .model import keras

    keras.utils.set_random_seed(cfg["seed"])
    tf.config.experimental.enable_op_determinism()
    variables = model.trainable_variables
    p, bs = cfg["perturbed"], cfg["batch_size"]
    steps = int(np.ceil(len(clean.y) / bs))

    def trainer(lr):
        optim = keras.optimizers.Adam(lr, clipnorm=cfg["clipnorm"])
        optim.build(variables)

        @tf.function(reduce_retracing=True)
        def step(xb, yb, deltas):
            xs, ys = tf.concat([xb, xb[:p] + deltas], 0), tf.concat([yb, yb[:p]], 0)
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(ys, model(xs, training=True)))
            optim.apply_gradients(zip(tape.gradient(loss, variables), variables))
            return loss
        return step

    def epoch(step, pool):
        perm = rng.permutation(len(clean.y))
        for i in range(0, len(perm), bs):
            idx = perm[i:i + bs]
            step(tf.constant(clean.x[idx]), tf.constant(clean.y[idx]), tf.constant(pool[rng.integers(len(pool), size=p)]))

    rng, found, pool = np.random.default_rng([cfg["seed"], 23]), [], []
    step = trainer(learning_rate)
    for r in range(1, cfg["rounds"] + 1):
        delta = perturbation(model, clean.x, predict_classes(model, clean.x), cfg, rng)
        sent = predict_classes(model, clean.x + delta)
        top = np.bincount(sent).argmax()
        found.append({"norm": round(float(np.linalg.norm(delta)), 4), "top_class": int(top),
                      "top_class_share": round(float(np.mean(sent == top)), 4)})
        pool.append(delta[0])
        epoch(step, np.stack(pool))
        log(f"  round {r}/{cfg['rounds']}: perturbation sends {100 * found[-1]['top_class_share']:.0f}% "
            f"to class {top}")
    if pool and cfg["recover_epochs"]:
        step = trainer(keras.optimizers.schedules.CosineDecay(cfg["recover_lr"], cfg["recover_epochs"] * steps))
        for _ in range(cfg["recover_epochs"]):
            epoch(step, np.stack(pool))
    return found


def defend(model, clean: defense.Clean, cfg: dict, floor: float, log=print):
    """The largest unlearning learning rate of cfg['learning_rates'] whose net keeps the
    holdout floor. Without rounds, the recovery is plain fine-tuning."""
    found = {}

    def make(lr):
        tuned = defense.copy(model)
        found[lr] = unlearn(tuned, clean, cfg, lr, log)
        if not found[lr]:
            defense.fit(tuned, clean.x, clean.y, epochs=cfg["recover_epochs"], batch_size=cfg["batch_size"],
                        learning_rate=cfg["recover_lr"], seed=cfg["seed"], log=lambda s: None)
        return tuned

    tuned, lr, tried = defense.strongest_within(sorted(cfg["learning_rates"], reverse=True), make, clean, floor,
                                                log, "learning_rate")
    return tuned, {"learning_rate": lr, "perturbations": found[lr], "tried": tried}
