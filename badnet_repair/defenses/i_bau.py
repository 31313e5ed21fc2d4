"""I-BAU (Zeng et al., ICLR 2022): adversarial unlearning. Each round finds one universal
perturbation that most raises the net's loss on a seeded sample of the clean training share
(the scan's; within an L2 ball), then trains the net to classify clean images carrying the
perturbations found so far correctly. A backdoor is the strongest universal perturbation a BadNet has, so the first
round usually finds it (it sends most images to the target class) and the rounds unlearn it.

The perturbation lives on images scaled to [0, 1], whatever the model is fed: its bound and
step mean the same for a model fed x / 255 and one fed raw pixels.

With `targeted`, each round also seeks, for every target the clean-only scan finds on B
(docs/scan.md), a targeted universal perturbation towards it within the same ball, and
unlearns it beside the untargeted one. The untargeted search follows whichever direction
raises the loss fastest; on a large worn trigger (the sunglasses) that is a natural weak
spot of the net, round after round, and the backdoor is never unlearnt, although the scan
shows it reachable within the ball. Likewise, for every offset k the scan finds on B (an
all-to-all backdoor, y -> y + k), each round seeks one perturbation sending each image to
its own class + k, and unlearns it. Without a target or offset the defense is the paper's.
With `targeted_bound`, the perturbation towards a target that is unlearnt is sought in that
larger ball (a worn trigger lies outside `bound`'s); the one within `bound` still feeds the rule.

With `masked_epochs`, each round also unlearns, per target, the trigger Neural Cleanse
reverse-engineers (scan.masked_trigger: a mask and a pattern, the mask as small as will send
the sample to the target). A worn trigger is a patch: an L2 ball wide enough to hold it
holds a clean net's own classes too, and its dense perturbations are not the patch's shape;
unlearnt alone they left 23 % ASR on a tuning sunglasses BadNet (docs/defenses.md).

With `stop_share`, the scan is the stopping rule: the rounds go on until `stop_rounds` rounds
in a row show no backdoor in their perturbations (docs/defenses.md), so a net that needs few
rounds is not worn down by ten. With masks, a round shows none only where each target's mask
is also at least as large as the median of `masked_controls` other classes' masks on B: a
target that still needs a smaller mask than a typical class is still a shortcut (Neural
Cleanse's signal), whatever the L2 ball reads. The ball reads what its own unlearning clears
first, and stopped on sunglasses BadNets while their trigger still worked.

The rule watches the targets and offsets the scan names on B. Where it names none, nothing
tells a net with nothing to unlearn from a backdoor the scan cannot see (an all-to-all one
whose mapping is no offset, say): its B's untargeted perturbation moves nearly every image,
as a clean net's does.
So there every round runs, as the paper's; with `untargeted_stop`, the untargeted share alone
may stop the rounds there (a clean net is then left as it is, and an all-to-all BadNet too).

Two departures from the paper, both for DeepID (1283 classes, no BatchNorm, unnormalised
logits): the outer step is first-order (the paper's implicit hypergradient term is left
out), with gradients clipped, since a perturbed image's loss runs into the hundreds; and a
recovery at the end, the same training at a smaller learning rate without new
perturbations, which wins back the clean accuracy the rounds cost. Plain fine-tuning in its
place brings the backdoor back."""
from __future__ import annotations

import numpy as np

from .. import scan, training
from .base import strongest_within

PAPER = "Zeng et al., Adversarial Unlearning of Backdoors via Implicit Hypergradient, ICLR 2022"
PARAMS = {"learning_rates": [float], "rounds": int, "bound": float, "perturbation_lr": float,
          "perturbation_batch_size": int, "perturbed": int, "clipnorm": float, "batch_size": int,
          "recover_lr": float, "recover_epochs": int, "targeted": bool, "stop_share": float,
          "stop_rounds": int, "untargeted_stop": bool, "rounds_on_sample": bool,
          "targeted_bound": float, "masked_epochs": int, "masked_controls": int}
USES_SCAN = True  # base.settings adds the scan's params (cfg["scan"]) for the targeted search


def check(model, cfg: dict, prune_layer: str) -> dict:
    return cfg


def perturbation(model, x, labels, cfg: dict, rng, unit=np.float32(1.0)):
    """One universal perturbation of [0, 1] images: gradient ascent on the mean loss of
    (x + unit * delta, labels) (x as the model is fed, unit = 255 / input_divisor), one pass
    in batches, projected onto the L2 ball of radius cfg['bound'] after each step."""
    import tensorflow as tf

    bound, lr, ce = cfg["bound"], cfg["perturbation_lr"], training.cross_entropy(model)

    @tf.function(reduce_retracing=True)
    def ascend(delta, xb, yb):
        with tf.GradientTape() as tape:
            tape.watch(delta)
            loss = ce(yb, model(xb + delta * unit))
        delta = delta + lr * tape.gradient(loss, delta)
        return delta * tf.minimum(1.0, bound / (tf.norm(delta) + 1e-12))

    delta = tf.zeros((1,) + x.shape[1:])
    perm = rng.permutation(len(labels))
    for i in range(0, len(perm), cfg["perturbation_batch_size"]):
        idx = perm[i:i + cfg["perturbation_batch_size"]]
        delta = ascend(delta, tf.constant(x[idx]), tf.constant(labels[idx]))
    return delta.numpy()


def unlearn(model, clean, cfg: dict, learning_rate: float, log=print, targets=(), shifts=()) -> list:
    """Up to cfg['rounds'] rounds of (a new perturbation, found on the net's own classes; one
    epoch of training on each batch plus its first cfg['perturbed'] images carrying
    perturbations drawn from all those found so far, true labels), then cfg['recover_epochs']
    epochs of the same training at cfg['recover_lr'] without new perturbations: the recovery
    brings back clean accuracy, and the found perturbations keep it from bringing back the
    backdoor. Each round also adds, for every class of `targets`, a targeted perturbation
    towards it (scan.universal_perturbation, within cfg['bound']), and for every offset of
    `shifts` one sending each image to its own class + k (with cfg['targeted_bound'], a
    target's unlearnt perturbation comes from that larger ball instead). The searches run on the
    scan's seeded sample of the training share (scan.images), as the paper's on its small
    clean set; with cfg['rounds_on_sample'] the rounds' epochs train on that sample too (the
    paper unlearns on the set it searches), the recovery on the whole training share.

    With cfg['stop_share'] > 0 and a target or offset (or cfg['untargeted_stop']) a round shows
    no backdoor left when the untargeted perturbation sends less than scan.threshold of the
    sample to one class, and each targeted one less than stop_share of the holdout to its
    target (scan.holdout_share), or to each image's class + k, and (with cfg['masked_epochs'])
    each target's masked trigger, unlearnt too, has a mask at least natural_mask's median of
    other classes'. The rounds stop at the
    cfg['stop_rounds']-th such round in a row, or at round 1 if it is such a round; the round
    they stop at is not trained on (after a stop at round 1 the net is left as it is), the
    earlier ones of the run are. Without a
    target or offset, and without untargeted_stop, every round runs. Returns, per round, the
    untargeted perturbation's L2 norm, the class it sends most of the sample to and that
    share, the targeted ones' holdout shares (and the offsets', where there are offsets), and
    whether the round was trained on."""
    from ..evaluate import predict_classes, scale
    from ..model import keras

    p, bs, unit, classes = cfg["perturbed"], cfg["batch_size"], clean.unit, int(model.output_shape[-1])
    steps = int(np.ceil(len(clean.y) / bs))
    rng, found, pool, quiet, masks = np.random.default_rng([cfg["seed"], 23]), [], [], 0, {}
    ones = np.ones(clean.x.shape[1:3] + (1,), np.float32)
    chosen = scan.training_sample(clean, cfg["scan"]["images"], cfg["seed"])
    sample = clean.x[chosen]
    on = chosen if cfg["rounds_on_sample"] else slice(None)  # what each round's epoch trains on
    held = scale(clean.x_holdout, clean.input_divisor)

    def augment(xb, yb, rng):  # pool: (kept, added) pairs, x * kept + unit * added; kept is 1 for an additive one
        picks = rng.integers(len(pool), size=p)
        kept, added = np.stack([pool[i][0] for i in picks]), np.stack([pool[i][1] for i in picks])
        return np.concatenate([xb, xb[:p] * kept + added * unit]), np.concatenate([yb, yb[:p]])

    def train(optim, epochs, on=slice(None)):
        training.fit(model, clean.x[on], clean.y[on], epochs=epochs, batch_size=bs, seed=cfg["seed"], optim=optim,
                     augment=augment, rng=rng, log=lambda s: None)

    optim = keras.optimizers.Adam(learning_rate, clipnorm=cfg["clipnorm"])  # one for all rounds
    watched = cfg["stop_share"] > 0 and (len(targets) + len(shifts) > 0 or cfg["untargeted_stop"])  # a rule at all
    masked = cfg["masked_epochs"] and len(targets)
    natural = natural_mask(model, sample, targets, classes, cfg, unit, log) if masked else None
    for r in range(1, cfg["rounds"] + 1):
        own = predict_classes(model, sample)
        delta = perturbation(model, sample, own, cfg, rng, unit)
        sent = predict_classes(model, sample + delta * unit)
        top = np.bincount(sent).argmax()
        deltas, shares, shift_shares = [delta[0]], {}, {}
        before = predict_classes(model, held) if len(targets) + len(shifts) else None
        aims = [(shares, int(t), t, t) for t in targets] + [  # (record, key, aim on the sample, on the holdout)
            (shift_shares, int(k), scan.shifted(own, k, classes), scan.shifted(before, k, classes)) for k in shifts]
        for record, key, aim, held_aim in aims:  # sought anew on the net being unlearnt: the backdoor moves as it fades
            d = scan.universal_perturbation(model, sample, aim, cfg["bound"], cfg["scan"]["step"],
                                            cfg["scan"]["batch_size"], unit)
            record[key] = round(scan.holdout_share(model, held, before, d, held_aim, unit), 4)
            if cfg["targeted_bound"] and record is shares:  # a target's, from a larger ball; the rule reads bound's
                d = scan.universal_perturbation(model, sample, aim, cfg["targeted_bound"], cfg["scan"]["step"],
                                                cfg["scan"]["batch_size"], unit)
            deltas.append(d[0])
        pairs, sizes = [(ones, d) for d in deltas], {}
        for t in targets if natural is not None else ():  # Neural Cleanse's trigger, on from the last round's
            kept, added, masks[t] = scan.masked_trigger(model, sample, int(t), cfg["masked_epochs"],
                                                        cfg["scan"]["batch_size"], unit, masks.get(t))
            pairs.append((kept[0], added[0]))
            sizes[int(t)] = round(float(np.sum(1 - kept)), 1)
        found.append({"norm": round(float(np.linalg.norm(delta)), 4), "top_class": int(top),
                      "top_class_share": round(float(np.mean(sent == top)), 4), "target_shares": shares})
        if natural is not None:  # written only with masks: a run without keeps its bytes
            found[-1]["mask_sizes"] = sizes
        if shifts:  # written only where there are offsets: a run without any keeps its bytes
            found[-1]["shift_shares"] = shift_shares
        none_left = watched and (found[-1]["top_class_share"] < cfg["scan"]["threshold"]
                                 and all(s < cfg["stop_share"] for s in [*shares.values(), *shift_shares.values()])
                                 and all(v >= natural for v in sizes.values()))  # a target no easier than a class
        quiet = quiet + 1 if none_left else 0
        stop = none_left and (r == 1 or quiet >= cfg["stop_rounds"])
        found[-1]["trained"] = not stop
        log(f"  round {r}/{cfg['rounds']}: perturbation sends {100 * found[-1]['top_class_share']:.0f}% "
            f"to class {top}" + "".join(f"; towards {t}: {100 * s:.1f}%" for t, s in shares.items())
            + "".join(f"; towards own + {k}: {100 * s:.1f}%" for k, s in shift_shares.items())
            + "".join(f"; mask towards {t}: L1 {v:.0f} (classes' {natural:.0f})" for t, v in sizes.items())
            + ("; no backdoor left: the rounds stop" if stop else "; no backdoor left" if none_left else ""))
        if stop:
            break
        pool.extend(pairs)
        train(optim, 1, on)
    if pool and cfg["recover_epochs"]:
        schedule = keras.optimizers.schedules.CosineDecay(cfg["recover_lr"], cfg["recover_epochs"] * steps)
        train(keras.optimizers.Adam(schedule, clipnorm=cfg["clipnorm"]), cfg["recover_epochs"])
    return found


def natural_mask(model, sample, targets, classes: int, cfg: dict, unit, log=print) -> float:
    """How large a mask the net's natural classes need: the median L1 norm of Neural Cleanse's
    trigger (scan.masked_trigger, 2 * cfg['masked_epochs'] epochs) towards cfg['masked_controls']
    seeded classes that are not targets. A backdoor's target needs far less (its trigger is a
    shortcut: Neural Cleanse flags it so); a round whose target's mask is at least this large
    shows it no easier to reach than a typical class. Measured once, on B."""
    if not cfg["masked_controls"]:
        return 0.0  # no mask condition: the rule reads the L2 shares alone
    aims = set(int(t) for t in targets)
    others = [int(c) for c in np.random.default_rng([cfg["seed"], 37]).permutation(classes) if c not in aims]
    sizes = [float(np.sum(1 - scan.masked_trigger(model, sample, c, 2 * cfg["masked_epochs"],
                                                  cfg["scan"]["batch_size"], unit)[0]))
             for c in others[:cfg["masked_controls"]]]
    log(f"  the masks of classes {others[:cfg['masked_controls']]}: L1 {[round(v) for v in sizes]}")
    return float(np.median(sizes))


def defend(model, clean, cfg: dict, floor: float, log=print):
    """The largest unlearning learning rate of cfg['learning_rates'] whose net keeps the
    holdout floor. Without rounds, the recovery is plain fine-tuning. With cfg['targeted'],
    the scan of B (clean data alone) names the targets and offsets each round also unlearns."""
    found, targets, shifts = {}, [], []
    if cfg["targeted"] and cfg["rounds"]:
        verdict = scan.scan(model, clean, dict(cfg["scan"], seed=cfg["seed"]), log=log)
        targets, shifts = verdict["targets"], verdict["shifts"]
        log(f"  the scan of B finds {'targets ' + str(targets) if targets else 'no target'}"
            + (f", offsets {shifts}" if shifts else ""))

    def make(lr):
        tuned = training.copy(model)
        found[lr] = unlearn(tuned, clean, cfg, lr, log, targets, shifts)
        if not found[lr]:
            training.fit(tuned, clean.x, clean.y, epochs=cfg["recover_epochs"], batch_size=cfg["batch_size"],
                         learning_rate=cfg["recover_lr"], seed=cfg["seed"], log=lambda s: None)
        return tuned

    tuned, lr, tried = strongest_within(sorted(cfg["learning_rates"], reverse=True), make, clean, floor,
                                        log, "learning_rate")
    facts = {"learning_rate": lr, "scan_targets": targets, "perturbations": found[lr], "tried": tried}
    return tuned, dict(facts, scan_shifts=shifts) if shifts else facts  # the key only where there are offsets
