"""SAU (Wei et al., NeurIPS 2023): shared adversarial unlearning. For every batch, a PGD
search finds per-image perturbations that fool both the net being unlearnt and B (kept
frozen as the reference) into the same wrong class: shared adversarial examples, the ones a
backdoor makes. The step then trains the net to classify the clean batch correctly and to
stop giving the class B gives each perturbed image it fools.

Unlike I-BAU's universal perturbations, SAU's are per image, so it assumes no one trigger
for every image (the paper's point against I-BAU on sample-specific and dynamic triggers).

As the paper's code does (BackdoorBench's defense/sau.py and its config): L-infinity
perturbations started at +bound, `pgd_steps` signed-gradient steps minimising
beta_1 * L_adv + beta_2 * L_share (L_adv the negated cross-entropy of the images not yet
fooled, on both nets; L_share the Jensen-Shannon divergence of the two nets' outputs on the
images not yet shared), the search stopping once every image is shared; then one step on
lambda_1 * L_clean + lambda_2 * L_adversarial + lambda_3 * L_shared, with Adam on a cosine.
The perturbation lives on images scaled to [0, 1] whatever the model is fed, and perturbed
images are not clipped to [0, 1] (as in the paper's code). The net is called in inference
mode throughout, as the paper's runs (its default keeps BatchNorm fixed)."""
from __future__ import annotations

from .. import training
from ..errors import BadInput
from ..params import PARAMS_FILE
from .base import strongest_within

PAPER = ("Wei, Zhang, Zha and Wu, Shared Adversarial Unlearning: Backdoor Mitigation by Unlearning "
         "Shared Adversarial Examples, NeurIPS 2023")
PARAMS = {"learning_rates": [float], "rounds": int, "bound": float, "pgd_lr": float, "pgd_steps": int,
          "beta_1": float, "beta_2": float, "lambda_1": float, "lambda_2": float, "lambda_3": float,
          "batch_size": int}
TINY = 1e-6  # the paper's guard inside the shared loss's logarithms


def check(model, cfg: dict, prune_layer: str) -> dict:
    """base's ranges hold (no negative weight, a positive bound and rate); the search also needs a step."""
    for key in ("pgd_lr", "pgd_steps"):
        if cfg[key] <= 0:
            raise BadInput(f"{PARAMS_FILE}: 'defend.sau.{key}' has an out-of-range value {cfg[key]}")
    return cfg


def _probabilities(model):
    """outputs -> class probabilities, for a model that outputs either (training.outputs_logits)."""
    import tensorflow as tf

    return tf.nn.softmax if training.outputs_logits(model) else (lambda out: out)


def shared_perturbation(net, ref, xb, yb, cfg: dict, unit, own_ref=None):
    """Per-image perturbations of [0, 1] images (x as the model is fed + unit * delta),
    within the L-infinity ball of cfg['bound']: the paper's shared PGD against `net` and `ref`.
    own_ref: ref's classes of the clean batch, where the caller has them already."""
    import tensorflow as tf

    from ..model import keras

    bound, n = cfg["bound"], tf.cast(tf.shape(xb)[0], tf.float32)
    p_net, p_ref = _probabilities(net), _probabilities(ref)

    def per_image_ce(model):
        logits = training.outputs_logits(model)
        return lambda out: keras.losses.sparse_categorical_crossentropy(yb, out, from_logits=logits)

    ce_net, ce_ref = per_image_ce(net), per_image_ce(ref)
    orig = tf.argmax(net(xb, training=False), -1)
    orig_ref = tf.argmax(ref(xb, training=False), -1) if own_ref is None else tf.cast(own_ref, tf.int64)
    delta = tf.fill(tf.shape(xb), tf.constant(bound, tf.float32))  # 'max' start, inside the ball
    done = tf.constant(False)
    for _ in range(cfg["pgd_steps"]):
        with tf.GradientTape() as tape:
            tape.watch(delta)
            out, out_ref = net(xb + delta * unit, training=False), ref(xb + delta * unit, training=False)
            lab, lab_ref = tf.argmax(out, -1), tf.argmax(out_ref, -1)
            fooled, fooled_ref = lab != orig, lab_ref != orig_ref
            shared = fooled & fooled_ref & (lab == lab_ref)
            adv = -(tf.reduce_sum(tf.where(fooled, 0.0, ce_net(out)))
                    + tf.reduce_sum(tf.where(fooled_ref, 0.0, ce_ref(out_ref)))) / 2 / n
            p = tf.maximum(p_net(out), 1e-8)
            q = tf.maximum(p_ref(out_ref), 1e-8)
            m = (p + q) / 2
            js = tf.reduce_sum(0.5 * (p * tf.math.log(p) + q * tf.math.log(q))
                               - 0.5 * (p * tf.math.log(m) + q * tf.math.log(m)), -1)
            loss = cfg["beta_1"] * adv + cfg["beta_2"] * tf.reduce_sum(tf.where(shared, 0.0, js)) / n
        step = tf.clip_by_value(delta - cfg["pgd_lr"] * tf.sign(tape.gradient(loss, delta)), -bound, bound)
        delta = tf.where(done, delta, step)  # the paper's loop breaks once every image is shared
        done = done | tf.reduce_all(shared)
    return tf.stop_gradient(delta)


def shared_loss(probs, ref_labels, suspect):
    """The paper's L_shared: on the images `suspect` (B, on the perturbed image, gives a class
    neither the true nor its own on the clean image), push the net's probability of B's class
    down, as (-sum log(1 - p) - sum log(1 - p)) / 2 over the batch, in its clamped form."""
    import tensorflow as tf

    pos = tf.gather(probs, ref_labels, batch_dims=1)
    neg = tf.reduce_sum(probs, -1) - pos
    terms = -tf.math.log(TINY + tf.minimum(neg, 0.999)) - tf.math.log(1 + TINY - tf.maximum(pos, 0.001))
    return tf.reduce_sum(tf.where(suspect, terms, 0.0)) / 2 / tf.cast(tf.shape(probs)[0], tf.float32)


def unlearn(net, ref, clean, cfg: dict, learning_rate: float) -> None:
    """cfg['rounds'] passes over the clean training share, each batch one shared PGD search
    and one step of the SAU loss (Adam, cosine-decayed to 0 over the run)."""
    import tensorflow as tf

    ce, probs_of = training.cross_entropy(net), _probabilities(net)
    unit = clean.unit

    def sau_step(optim, variables, xb, yb, i):
        own_ref = tf.argmax(ref(xb, training=False), -1, output_type=tf.int32)  # B on the clean batch, once
        delta = shared_perturbation(net, ref, xb, yb, cfg, unit, own_ref)
        xp = xb + delta * unit
        labels_ref = tf.argmax(ref(xp, training=False), -1, output_type=tf.int32)
        y = tf.cast(yb, tf.int32)
        suspect = (labels_ref != y) & (labels_ref != own_ref)
        with tf.GradientTape() as tape:
            out, out_p = net(xb, training=False), net(xp, training=False)
            loss = (cfg["lambda_1"] * ce(yb, out) + cfg["lambda_2"] * ce(yb, out_p)
                    + cfg["lambda_3"] * shared_loss(probs_of(out_p), labels_ref, suspect))
        optim.apply_gradients(zip(tape.gradient(loss, variables), variables))
        hit = tf.equal(tf.argmax(out, -1, output_type=tf.int32), y)
        return loss, tf.reduce_mean(tf.cast(hit, tf.float32))

    training.fit(net, clean.x, clean.y, epochs=cfg["rounds"], batch_size=cfg["batch_size"],
                 learning_rate=learning_rate, seed=cfg["seed"], step_fn=sau_step, log=lambda s: None)


def defend(model, clean, cfg: dict, floor: float, log=print):
    """The largest learning rate of cfg['learning_rates'] whose unlearnt net keeps the floor."""
    ref = training.copy(model)  # B, frozen: never trained

    def make(lr):
        tuned = training.copy(model)
        unlearn(tuned, ref, clean, cfg, lr)
        return tuned

    tuned, lr, tried = strongest_within(sorted(cfg["learning_rates"], reverse=True), make, clean, floor,
                                        log, "learning_rate")
    return tuned, {"learning_rate": lr, "rounds": cfg["rounds"], "tried": tried}
