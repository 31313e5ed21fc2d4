"""scan: a clean-only verdict on a net. Is it backdoored, and towards which classes?

It reads the clean validation images alone, split as the defenses split them (defend.holdout,
defend.seed): it searches on the training share and measures on the holdout. Three steps:

1. Candidates, after K-Arm's pre-screening (Shen et al., ICML 2021). A backdoor raises its
   target's score on every input, so the target is among the top `top_k` classes (after the
   image's own) of far more clean images than any other class. Its `pull` is that count over
   what a uniform draw would give; the `candidates` classes of highest pull go on.
2. Verification, by a targeted universal perturbation (Moosavi-Dezfooli et al., CVPR 2017):
   one perturbation of the [0, 1] images, L2 norm <= `bound`, that sends as many training
   images as it can to the candidate. Its `share` is the holdout images it sends there. A
   trigger inside the ball is such a perturbation, so a target takes nearly all; a natural
   class takes far fewer.
3. Offsets, for an all-to-all backdoor (y -> y + k mod N, as in Gu et al.'s BadNets). It has
   no one target, but it raises y + k's score on clean images of y too, so K-Arm's count
   runs again on offsets, (runner-up - own class) mod N, and the `shifts`
   offsets of highest pull are verified by one universal perturbation that sends each image
   to its own class + k (same bound, same threshold).

Targeted, the search does not compete with the net's natural weak spots. An untargeted
one (I-BAU's) follows whichever direction raises the loss fastest, and on a worn trigger that
can be a natural class: on the suite's eyebrows BadNet it sent 93 % of the images to class
795, not to the target. The verdict is "backdoor found" where a candidate's (or an
offset's) share reaches `threshold`; the bound and the threshold are calibrated on clean nets alone (`calibrate`)."""
from __future__ import annotations

import weakref

import numpy as np

from .errors import BadInput
from .params import PARAMS_FILE

FOUND, NONE = "backdoor found", "none found"


def check(cfg: dict) -> dict:
    """scan's params, range-checked before any work; BadInput naming the param."""
    for key in ("top_k", "candidates", "images", "batch_size"):
        if cfg[key] < 1:
            raise BadInput(f"{PARAMS_FILE}: 'scan.{key}' must be >= 1, got {cfg[key]}")
    if cfg["shifts"] < 0:
        raise BadInput(f"{PARAMS_FILE}: 'scan.shifts' must be >= 0 (0: no offset search), got {cfg['shifts']}")
    if not cfg["bound"] > 0:
        raise BadInput(f"{PARAMS_FILE}: 'scan.bound' must be > 0, got {cfg['bound']}")
    if not 0 < cfg["step"] <= 1:
        raise BadInput(f"{PARAMS_FILE}: 'scan.step' must be in (0, 1] (a share of the bound), got {cfg['step']}")
    if not 0 < cfg["threshold"] <= 1:
        raise BadInput(f"{PARAMS_FILE}: 'scan.threshold' must be in (0, 1], got {cfg['threshold']}")
    return cfg


def _runners_up(outputs: np.ndarray, top_k: int):
    """Each image's own class (argmax) and its next min(top_k, N - 1) classes."""
    order = np.argsort(-outputs, axis=1, kind="stable")
    return order[:, 0], order[:, 1:min(top_k, outputs.shape[1] - 1) + 1]


def pull(outputs: np.ndarray, top_k: int) -> np.ndarray:
    """Per class: how often it is among each image's top `top_k` classes after the image's
    own (its argmax), over the count a uniform draw of the other classes would give."""
    (n, classes), (_, top) = outputs.shape, _runners_up(outputs, top_k)
    return np.bincount(top.ravel(), minlength=classes) / (n * top.shape[1] / (classes - 1))


def shift_pull(outputs: np.ndarray, top_k: int) -> np.ndarray:
    """`pull` on offsets: per k, how often (own + k) mod N is among an image's top `top_k`
    after its own, over a uniform draw's count. Offset 0 (the own class) is never counted."""
    (n, classes), (own, top) = outputs.shape, _runners_up(outputs, top_k)
    offsets = (top - own[:, None]) % classes
    return np.bincount(offsets.ravel(), minlength=classes) / (n * top.shape[1] / (classes - 1))


def shifted(own, k: int, classes: int) -> np.ndarray:
    """Each image's own class moved by offset k: the all-to-all attack's aim."""
    return (np.asarray(own) + k) % classes


def candidates(p: np.ndarray, count: int) -> list[int]:
    """The `count` classes of highest pull (ties: the lower class first)."""
    return [int(c) for c in np.argsort(-p, kind="stable")[:count]]


_DESCENTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _descent(model):
    """The search's step as one tf.function per model, traced once for every batch size, its
    sizes fed as tensors: a function per search was traced anew for each candidate and round,
    and again for its last batch."""
    if model not in _DESCENTS:
        import tensorflow as tf

        from .training import cross_entropy

        ce, net = cross_entropy(model), weakref.ref(model)  # weak: the entry goes with the model
        image, scalar = tf.TensorSpec((None,) + tuple(model.input_shape[1:]), tf.float32), tf.TensorSpec((), tf.float32)

        @tf.function(input_signature=[image, image, tf.TensorSpec((None,), tf.int64), scalar, scalar, scalar])
        def descend(delta, xb, tb, size, bound, unit):
            with tf.GradientTape() as tape:
                tape.watch(delta)
                loss = ce(tb, net()(xb + delta * unit, training=False))
            g = tape.gradient(loss, delta)
            delta = delta - size * g / (tf.norm(g) + 1e-12)
            return delta * tf.minimum(1.0, bound / (tf.norm(delta) + 1e-12))

        _DESCENTS[model] = descend
    return _DESCENTS[model]


def universal_perturbation(model, x, target, bound: float, step: float, batch_size: int, unit=np.float32(1.0)):
    """One perturbation delta of [0, 1] images, ||delta||_2 <= bound, that sends x + unit * delta
    (x as the model is fed) to `target` (one class, or one per image): one pass over x in batches, each a step of
    `step * bound` along the normalised gradient of the cross-entropy to the target, then a
    projection onto the ball. Normalised steps make it independent of the loss's scale."""
    import tensorflow as tf

    descend, sizes = _descent(model), [tf.constant(np.float32(v)) for v in (step * bound, bound, unit)]
    delta, aims = tf.zeros((1,) + tuple(x.shape[1:])), np.broadcast_to(np.asarray(target, np.int64), (len(x),))
    for i in range(0, len(x), batch_size):
        delta = descend(delta, tf.constant(x[i:i + batch_size]), tf.constant(aims[i:i + batch_size]), *sizes)
    return delta.numpy()


def masked_trigger(model, x, target, epochs: int, batch_size: int, unit=np.float32(1.0), state=None):
    """A trigger as Neural Cleanse reverse-engineers one (Wang et al., S&P 2019): a mask m and a
    pattern p on [0, 1] images, (1 - m) * x + m * p, that send x (as the model is fed) to
    `target`, with the mask's L1 norm as small as that allows. Adam on their logits; NC's
    adaptive cost: each epoch that sends 99 % of x there raises the L1 term's weight by 1.5,
    any other lowers it. A patch trigger is a small mask; an L2 ball does not hold one (a worn
    trigger's L2 norm is larger than a clean net's own classes need). `state`, as returned,
    goes on from an earlier search's mask, pattern and cost (Adam's moments start anew). Returns (keep = 1 - m, add = m * p, state)."""
    import tensorflow as tf

    from .training import cross_entropy

    if state is None:
        state = {"mask": np.full((1,) + tuple(x.shape[1:3]) + (1,), -2.0, np.float32),
                 "pattern": np.zeros((1,) + tuple(x.shape[1:]), np.float32), "cost": np.float32(1e-3)}
    a, b = tf.Variable(state["mask"]), tf.Variable(state["pattern"])
    cost, ce, optim = tf.Variable(state["cost"]), cross_entropy(model), tf.keras.optimizers.Adam(0.1)
    size = tf.constant(np.float32(unit))

    @tf.function(reduce_retracing=True)
    def step(xb, tb):
        with tf.GradientTape() as tape:
            m = tf.sigmoid(a)
            out = model((1 - m) * xb + m * tf.sigmoid(b) * size, training=False)
            loss = ce(tb, out) + cost * tf.reduce_sum(m)
        optim.apply_gradients(zip(tape.gradient(loss, [a, b]), [a, b]))
        return tf.reduce_sum(tf.cast(tf.argmax(out, -1) == tb, tf.float32))

    aims = np.broadcast_to(np.asarray(target, np.int64), (len(x),))
    for _ in range(epochs):
        hits = sum(float(step(tf.constant(x[i:i + batch_size]), tf.constant(aims[i:i + batch_size])))
                   for i in range(0, len(x), batch_size))
        cost.assign(cost * 1.5 if hits >= 0.99 * len(x) else cost / 1.5)
    state = {"mask": a.numpy(), "pattern": b.numpy(), "cost": np.float32(cost.numpy())}
    m = tf.sigmoid(a).numpy()
    return 1 - m, m * tf.sigmoid(b).numpy(), state


def training_sample(clean, images: int, seed: int) -> np.ndarray:
    """The seeded share of the defender's training images that the searches run on."""
    rng = np.random.default_rng([seed, 31])
    return np.sort(rng.permutation(len(clean.y))[:images])


def holdout_share(model, held, before, delta, target, unit=np.float32(1.0)) -> float:
    """The share of the holdout images `held` (as the model is fed) not already in `target`
    (one class, or one per image; by `before`, the model's own classes on them) that `delta`
    sends there: an attack success rate of delta."""
    from .evaluate import predict_classes

    aims = np.broadcast_to(np.asarray(target), before.shape)
    keep = before != aims
    sent = predict_classes(model, held + delta * unit)[keep]
    return float(np.mean(sent == aims[keep])) if len(sent) else 0.0


def scan(model, clean, cfg: dict, log=print) -> dict:
    """The scan of one net on the defender's clean data (defenses.base.Clean): its candidates
    with their pull and share, the targets (candidates whose share reaches the threshold),
    its offset candidates and the offsets found likewise, and the verdict."""
    from .evaluate import predict, predict_classes, scale

    x = clean.x[training_sample(clean, cfg["images"], cfg["seed"])]  # as the model is fed
    out = predict(model, x)
    p = pull(out, cfg["top_k"])
    rows, shift_rows = [], []
    held = scale(clean.x_holdout, clean.input_divisor)
    before = predict_classes(model, held)
    for c in candidates(p, cfg["candidates"]):
        delta = universal_perturbation(model, x, c, cfg["bound"], cfg["step"], cfg["batch_size"], clean.unit)
        share = holdout_share(model, held, before, delta, c, clean.unit)
        rows.append({"class": c, "pull": round(float(p[c]), 4), "share": round(share, 4),
                     "norm": round(float(np.linalg.norm(delta)), 4)})
        log(f"  class {c}: pull {p[c]:.2f}, a perturbation of L2 {rows[-1]['norm']:.2f} sends "
            f"{100 * rows[-1]['share']:.1f}% of the holdout there")
    own, classes = out.argmax(axis=1), out.shape[1]
    ps = shift_pull(out, cfg["top_k"])
    for k in candidates(ps, cfg["shifts"]):
        delta = universal_perturbation(model, x, shifted(own, k, classes), cfg["bound"], cfg["step"],
                                       cfg["batch_size"], clean.unit)
        share = holdout_share(model, held, before, delta, shifted(before, k, classes), clean.unit)
        shift_rows.append({"shift": k, "pull": round(float(ps[k]), 4), "share": round(share, 4),
                           "norm": round(float(np.linalg.norm(delta)), 4)})
        log(f"  offset +{k}: pull {ps[k]:.2f}, a perturbation of L2 {shift_rows[-1]['norm']:.2f} sends "
            f"{100 * shift_rows[-1]['share']:.1f}% of the holdout to its own class + {k}")
    targets = [r["class"] for r in rows if r["share"] >= cfg["threshold"]]
    shifts = [r["shift"] for r in shift_rows if r["share"] >= cfg["threshold"]]
    return {"verdict": FOUND if targets or shifts else NONE, "targets": targets,
            "share": max((r["share"] for r in rows + shift_rows), default=0.0), "candidates": rows,
            "shifts": shifts, "shift_candidates": shift_rows}


def calibrate(rows, threshold: float, margin: float = 2.0) -> float:
    """The bound, from clean nets alone: the largest bound at which no candidate of any clean
    net gets more than threshold / margin of the holdout. `rows`: dicts with kind ("clean"
    or not), bound and share, one per candidate (benchmarks/scan_calibration.py writes them);
    rows of other kinds are not read."""
    clean = [r for r in rows if r["kind"] == "clean"]
    if not clean:
        raise BadInput("scan calibration: no clean net's rows; the bound is chosen on clean nets only")
    worst = {}
    for r in clean:
        b = float(r["bound"])
        worst[b] = max(worst.get(b, 0.0), float(r["share"]))
    ok = [b for b, s in worst.items() if s <= threshold / margin]
    if not ok:
        raise BadInput(f"scan calibration: at every bound some clean net's candidate gets more than "
                       f"{threshold / margin:g} of the holdout; try smaller bounds")
    return max(ok)
