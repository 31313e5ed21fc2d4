"""The defense suite on the small preset: each defense run by its real stage script on a
small-preset BadNet. The tests check properties, not lucky numbers: what a defense prunes
stays exactly zero, no defense reads a poisoned file, G obeys its rule, the scores equal a
plain recomputation, and the clean-only choice rule does what it says."""
import contextlib
import json
import os
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from badnet_repair import defenses, h5data, params, training
from badnet_repair.defenses import base, nad
from badnet_repair.errors import BadInput
from badnet_repair.model import build_deepid, keras, load_badnet
from badnet_repair.defenses.neurons import Neurons
from badnet_repair.repaired import decide
from badnet_repair.variants import load_repaired
from stagerun import run_stage

ROOT = Path(__file__).resolve().parents[1]
DEFENSES = defenses.names()


# The files a defender must never read, and every file opened while the defenses and the scan ran.
UNSEEN = ("data/bd/bd_valid.h5", "data/bd/bd_test.h5", "data/cl/test.h5", "metrics/attack.json")
OPENED = {"recording": False, "paths": set()}


def _record(event, args):
    if OPENED["recording"] and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        OPENED["paths"].add(os.path.realpath(os.fsdecode(args[0])))


@contextlib.contextmanager
def _opens_recorded():
    """Record every path opened meanwhile: Python's own opens (an audit hook: open, io.open,
    os.open) and h5py's, which open in C and raise no audit event."""
    if not OPENED.get("hooked"):
        sys.addaudithook(_record)  # audit hooks stay for the process: this one is idle unless recording
        OPENED["hooked"] = True
    init = h5py.File.__init__

    def opening(self, name, *args, **kwargs):
        if isinstance(name, (str, bytes, os.PathLike)):
            OPENED["paths"].add(os.path.realpath(os.fsdecode(name)))
        init(self, name, *args, **kwargs)

    h5py.File.__init__, OPENED["recording"] = opening, True
    try:
        yield OPENED["paths"]
    finally:
        h5py.File.__init__, OPENED["recording"] = init, False


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A small-preset BadNet (fetch-data and baseline), then every defense, the scan and their
    scores. The defenses and the scan run with the poisoned files, the clean test file and the
    attack's facts in place, and every file they open is recorded (root / "opened.json")."""
    root = tmp_path_factory.mktemp("defenses") / "proj"
    root.mkdir()
    doc = yaml.safe_load((ROOT / "presets/small.yaml").read_text())
    doc["defend"]["names"] = DEFENSES
    (root / "params.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    for stage, *args in [("fetch_data",), ("baseline",)]:
        code, err = run_stage(stage, root, *args)
        assert code == 0, (stage, args, err)
    assert all((root / rel).is_file() for rel in UNSEEN)
    with _opens_recorded() as opened:
        for stage, *args in [*(("defend", d) for d in DEFENSES), ("scan",)]:
            code, err = run_stage(stage, root, *args)
            assert code == 0, (stage, args, err)
    (root.parent / "opened.json").write_text(json.dumps(sorted(opened)))
    code, err = run_stage("evaluate_defenses", root)
    assert code == 0, err
    return root


def _defended(root, name):
    return load_badnet(root / "models/defenses" / name / base.DEFENDED)


def test_every_defense_keeps_the_badnets_interface_and_reports_its_clean_only_choice(small):
    b = load_badnet(small / "models/badnet.h5")
    cfg = params.load("defend", small / "params.yaml")
    for name in DEFENSES:
        net = _defended(small, name)
        assert net.input_shape == b.input_shape and net.output_shape == b.output_shape, name
        entry = json.loads((small / "models/defenses" / name / base.INDEX).read_text())
        assert entry["defense"] == name
        assert json.loads((small / "models/defenses" / name / base.TIME).read_text())["seconds"] > 0
        assert entry["floor"] == pytest.approx(entry["badnet_holdout_accuracy"] - cfg["budget"], abs=1e-3)
        tried = entry["tried"]
        key = next(k for k in tried[0] if k not in ("holdout_accuracy", "neurons_pruned"))
        # strongest first; every candidate before the chosen one missed the floor
        assert [t[key] for t in tried] == sorted(cfg[name][key + "s"], reverse=True)[:len(tried)]
        assert all(t["holdout_accuracy"] < entry["floor"] for t in tried[:-1])
        kept = tried[-1] if tried[-1]["holdout_accuracy"] >= entry["floor"] else \
            max(tried, key=lambda t: t["holdout_accuracy"])  # none kept the floor: the best
        assert kept["holdout_accuracy"] == pytest.approx(entry["holdout_accuracy"], abs=1e-3)
        assert entry[{"fraction": "fraction_pruned"}.get(key, key)] == kept[key]


def test_fine_pruning_keeps_its_pruned_filters_exactly_zero(small):
    entry = json.loads((small / "models/defenses/fine_pruning" / base.INDEX).read_text())
    kernel, bias = _defended(small, "fine_pruning").get_layer("conv_3").get_weights()
    zero = np.all(kernel.reshape(-1, kernel.shape[-1]) == 0, axis=0) & (bias == 0)
    assert zero.sum() == entry["channels_pruned"] == round(entry["fraction_pruned"] * 60)
    assert entry["chosen_epoch"] >= 1  # fine-pruning fine-tunes: B' alone is never the answer


@pytest.mark.parametrize("name", ["anp", "rnp"])
def test_mask_pruning_zeroes_exactly_the_pruned_neurons_and_nothing_else_moves(small, name):
    entry = json.loads((small / "models/defenses" / name / base.INDEX).read_text())
    b, net = load_badnet(small / "models/badnet.h5"), _defended(small, name)
    zeroed = 0
    for layer in Neurons(b).layers:
        k0, *rest0 = b.get_layer(layer.name).get_weights()
        k1, *rest1 = net.get_layer(layer.name).get_weights()
        cut = np.all(k1.reshape(-1, k1.shape[-1]) == 0, axis=0) & ~np.all(k0.reshape(-1, k0.shape[-1]) == 0, axis=0)
        zeroed += int(cut.sum())
        assert np.array_equal(k1[..., ~cut], k0[..., ~cut])  # the rest untouched
        assert all(np.array_equal(a, c) for a, c in zip(rest0, rest1))  # biases kept (a pruned neuron is constant)
    assert zeroed == entry["neurons_pruned"]
    out = b.layers[-1].name  # the classifier is never masked
    assert all(np.array_equal(a, c) for a, c in zip(b.get_layer(out).get_weights(), net.get_layer(out).get_weights()))


def test_g_of_every_defense_obeys_the_rule_and_the_scores_equal_a_plain_recount(small):
    b = load_badnet(small / "models/badnet.h5")
    test, bd = h5data.read(small / h5data.FILES["test"]), h5data.read(small / h5data.FILES["bd_test"])
    scores = json.loads((small / "metrics/defenses.json").read_text())
    n = b.output_shape[-1]
    assert scores["default_defense"] == params.load("defend", small / "params.yaml")["default"]
    for name in DEFENSES:
        net = _defended(small, name)
        g = load_repaired(small / "models/defenses" / name / base.REPAIRED)
        for ds, clean in ((test, True), (bd, False)):
            x = ds.x / 255.0
            b_cls, d_cls = np.argmax(b.predict(x, verbose=0), 1), np.argmax(net.predict(x, verbose=0), 1)
            g_cls = np.argmax(g.predict(x, verbose=0), 1)
            assert np.array_equal(g_cls, np.where(b_cls == d_cls, b_cls, n)), name
            assert np.array_equal(np.asarray(decide(b_cls, d_cls, n)), g_cls)
            right = sum(int(p == t) for p, t in zip(d_cls, ds.y))
            flagged = sum(int(a != c) for a, c in zip(b_cls, d_cls))
            # the detector: a disagreement counts only where B's class is a target the scan found on B
            suspects = json.loads((small / "metrics/scan.json").read_text())["badnet"]["targets"]
            gated = sum(int(a != c and a in suspects) for a, c in zip(b_cls, d_cls))
            rate = "false_positive_rate" if clean else "detection_rate"
            assert scores[f"{name}_{rate}_test"] == pytest.approx(100 * flagged / len(ds.y))
            assert scores[f"{name}_detector_{rate}_test"] == pytest.approx(100 * gated / len(ds.y))
            acc = "clean_accuracy" if clean else "attack_success_rate"
            assert scores[f"{name}_{acc}_test"] == pytest.approx(100 * right / len(ds.y))


def test_no_defense_and_not_the_scan_reads_a_poisoned_file_the_test_file_or_the_attacks_facts(small):
    """Every defense stage and the scan ran with the poisoned files, the clean test file and the
    attack's facts beside them (the fixture), and opened none of them; the recorder saw the
    clean validation file and B's files opened, so it sees both h5py's and Python's opens. And
    dvc.yaml gives the defense stages and the scan the clean validation file alone of the data,
    and no metrics to read."""
    opened, real = set(json.loads((small.parent / "opened.json").read_text())), small.resolve()  # tmp may be a link
    assert {str(real / rel) for rel in ("data/cl/valid.h5", "models/badnet.h5", "models/badnet.json")} <= opened
    assert not {str(real / rel) for rel in UNSEEN} & opened
    assert set(json.loads((small / "metrics/scan.json").read_text())) == {"badnet", *DEFENSES}
    info = json.loads((small / "models/badnet.json").read_text())  # how to feed B, nothing of the attack
    assert set(info) == {"source", "input_divisor", "num_classes"}
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for deps in (stages["defend"]["do"]["deps"], stages["scan"]["deps"]):
        assert [d for d in deps if d.startswith("data/")] == ["data/cl/valid.h5"]
        assert not [d for d in deps if d.startswith("metrics/")]
    for script in ("stages/defend.py", "stages/suite_defend.py", "stages/scan.py"):
        assert "bd_" not in (ROOT / script).read_text()


def test_the_choice_rule_takes_the_first_candidate_that_keeps_the_floor():
    class Clean:
        def holdout_accuracy(self, model):
            return model

    accs = {5: 90.0, 4: 95.0, 3: 99.0, 2: 99.5}
    made = []

    def make(c):
        made.append(c)
        return accs[c]

    model, c, tried = base.strongest_within([5, 4, 3, 2], make, Clean(), 98.0, log=lambda s: None)
    assert (model, c, made) == (99.0, 3, [5, 4, 3])
    assert [t["holdout_accuracy"] for t in tried] == [90.0, 95.0, 99.0]
    made.clear()  # none keeps the floor: the best holdout accuracy, whatever its strength
    accs.update({5: 96.0, 4: 95.0})
    assert base.strongest_within([5, 4], make, Clean(), 99.9, log=lambda s: None)[:2] == (96.0, 5)
    assert made == [5, 4]


def test_dropping_candidates_stronger_than_the_kept_one_changes_no_choice():
    """Why a ladder may lose a strong end that no net keeps (params.yaml's ft and ft_sam
    ladders): on any holdout accuracies and floor, the ladder cut to start at the kept
    candidate keeps the same candidate."""
    class Clean:
        def holdout_accuracy(self, model):
            return model

    rng = np.random.default_rng(0)
    for _ in range(500):
        ladder = [0.005, 0.003, 0.002, 0.001]
        accs = dict(zip(ladder, rng.choice([94.0, 95.0, 96.0, 97.0, 98.0], 4)))
        floor = float(rng.choice([95.0, 96.5, 99.0]))
        _, kept, _ = base.strongest_within(ladder, accs.get, Clean(), floor, log=lambda s: None)
        cut = ladder[ladder.index(kept):]
        assert base.strongest_within(cut, accs.get, Clean(), floor, log=lambda s: None)[1] == kept


def test_neuron_masks_of_one_are_b_and_a_zero_mask_is_the_pruned_net():
    keras.utils.set_random_seed(3)
    b = build_deepid(7)
    x = np.random.default_rng(0).random((6, 55, 47, 3)).astype(np.float32)
    neurons = Neurons(b)
    assert sorted(layer.name for layer in neurons.layers) == ["conv_1", "conv_2", "conv_3", "conv_4", "fc_1", "fc_2"]
    ones = [np.ones(n, np.float32) for n in neurons.sizes]
    assert np.allclose(np.asarray(neurons(x, ones)), b.predict(x, verbose=0), atol=1e-6)
    rng = np.random.default_rng(1)
    cut = [rng.random(n) < 0.3 for n in neurons.sizes]
    masked = neurons(x, [(~c).astype(np.float32) for c in cut])
    assert np.allclose(np.asarray(masked), neurons.prune(cut).predict(x, verbose=0), atol=1e-6)


def test_nad_attention_map_is_the_normalised_channel_mean_of_squares():
    f = np.random.default_rng(2).normal(size=(3, 4, 5, 6)).astype(np.float32)
    expected = []
    for img in f:
        a = np.array([[sum(img[i, j, c] ** 2 for c in range(6)) / 6 for j in range(5)] for i in range(4)]).ravel()
        expected.append(a / np.sqrt(sum(v * v for v in a)))
    assert np.allclose(np.asarray(nad.attention(f)), np.array(expected), atol=1e-6)


def test_ft_sam_with_rho_zero_is_plain_fine_tuning():
    from badnet_repair.defenses import ft, ft_sam

    keras.utils.set_random_seed(0)
    b = build_deepid(5)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 55, 47, 3)).astype(np.float32)
    y = np.arange(40) % 5
    clean = base.Clean(x, y, 0.25, 1, 255.0)
    cfg = {"learning_rates": [0.001], "epochs": 1, "batch_size": 10, "seed": 1}
    plain, _ = ft.defend(b, clean, cfg, -1.0, log=lambda s: None)
    sam, _ = ft_sam.defend(b, clean, dict(cfg, rho=0.0), -1.0, log=lambda s: None)
    assert all(np.allclose(p, s, atol=1e-6) for p, s in zip(plain.get_weights(), sam.get_weights()))
    sharp, _ = ft_sam.defend(b, clean, dict(cfg, rho=0.5), -1.0, log=lambda s: None)
    assert not all(np.allclose(p, s, atol=1e-6) for p, s in zip(plain.get_weights(), sharp.get_weights()))


SAU = {"learning_rates": [0.001], "rounds": 1, "bound": 0.2, "pgd_lr": 0.2, "pgd_steps": 5, "beta_1": 0.01,
       "beta_2": 1.0, "lambda_1": 1.0, "lambda_2": 0.0, "lambda_3": 1.0, "batch_size": 10, "seed": 1}


def test_sau_with_only_its_clean_loss_is_plain_fine_tuning_and_with_its_shared_loss_is_not():
    """lambda_2 = lambda_3 = 0 leaves the clean loss alone: FT with SAU's learning rate and
    rounds as epochs, weight for weight; the paper's lambda_3 = 1 moves the weights elsewhere."""
    from badnet_repair.defenses import ft, sau

    b, clean = _tiny()
    plain, _ = ft.defend(b, clean, {"learning_rates": [0.001], "epochs": 1, "batch_size": 10, "seed": 1}, -1.0,
                         log=lambda s: None)
    alone, _ = sau.defend(b, clean, dict(SAU, lambda_3=0.0), -1.0, log=lambda s: None)
    assert all(np.allclose(p, s, atol=1e-6) for p, s in zip(plain.get_weights(), alone.get_weights()))
    shared, facts = sau.defend(b, clean, SAU, -1.0, log=lambda s: None)
    assert facts["learning_rate"] == 0.001 and facts["rounds"] == 1
    assert not all(np.allclose(p, s, atol=1e-6) for p, s in zip(plain.get_weights(), shared.get_weights()))
    assert all(np.array_equal(w, v) for w, v in zip(b.get_weights(), _tiny()[0].get_weights()))  # B untouched


def test_sau_search_stays_in_its_box_moves_by_signed_steps_and_starts_at_the_bound():
    """Every image's perturbation lies in [-bound, bound], on a grid of the start (+bound) and
    pgd_lr steps; with no steps it is +bound everywhere, the paper's 'max' start."""
    import tensorflow as tf

    from badnet_repair.defenses import sau

    b, clean = _tiny()
    ref = training.copy(b)
    xb, yb = tf.constant(clean.x[:10]), tf.constant(clean.y[:10])
    start = sau.shared_perturbation(b, ref, xb, yb, dict(SAU, pgd_steps=0), clean.unit).numpy()
    assert np.all(start == np.float32(0.2))
    own = tf.argmax(ref(xb), -1, output_type=tf.int32)  # B's clean classes handed in, as the step does
    assert np.array_equal(sau.shared_perturbation(b, ref, xb, yb, SAU, clean.unit, own).numpy(),
                          sau.shared_perturbation(b, ref, xb, yb, SAU, clean.unit).numpy())
    for bound, lr in ((0.2, 0.2), (0.3, 0.07)):
        d = sau.shared_perturbation(b, ref, xb, yb, dict(SAU, bound=bound, pgd_lr=lr, pgd_steps=3), clean.unit).numpy()
        assert d.shape == clean.x[:10].shape and np.all(np.abs(d) <= np.float32(bound) + 1e-7)
        steps = (bound - d) / lr  # whole steps down from the start, unless clipped at -bound
        assert np.all(np.isclose(steps, np.round(steps), atol=1e-4) | np.isclose(d, -bound, atol=1e-6)), (bound, lr)


@pytest.mark.parametrize("key", ["pgd_lr", "pgd_steps"])
def test_sau_refuses_a_search_without_a_step_naming_the_param(key):
    from badnet_repair.defenses import sau

    cfg = params.load("defend", ROOT / "params.yaml")["sau"]
    assert sau.check(None, cfg, "pool_3") is cfg
    with pytest.raises(BadInput, match=rf"'defend.sau.{key}' has an out-of-range value 0"):
        sau.check(None, dict(cfg, **{key: 0}), "pool_3")


def test_sau_shared_loss_is_the_papers_formula_computed_by_hand():
    from badnet_repair.defenses import sau

    rng = np.random.default_rng(4)
    probs = rng.dirichlet(np.ones(6), size=8).astype(np.float32)
    probs[0] = [0.9995, 0.0001, 0.0001, 0.0001, 0.0001, 0.0001]  # the clamps at work
    labels = rng.integers(0, 6, 8).astype(np.int32)
    labels[0] = 0
    suspect = np.array([True, True, False, True, False, True, True, False])
    total = 0.0
    for p, l, s in zip(probs, labels, suspect):
        if s:
            pos, neg = float(p[l]), float(sum(p) - p[l])
            total += -np.log(1e-6 + min(neg, 0.999)) - np.log(1 + 1e-6 - max(pos, 0.001))
    got = float(sau.shared_loss(probs, labels, suspect))
    assert got == pytest.approx(total / 2 / len(probs), rel=1e-5)


SCAN = {"top_k": 3, "candidates": 2, "shifts": 1, "images": 20, "batch_size": 10, "bound": 3.0, "step": 0.1,
        "threshold": 0.5}
I_BAU = {"learning_rates": [0.001], "rounds": 2, "bound": 3.0, "perturbation_lr": 1.0, "perturbation_batch_size": 16,
         "perturbed": 2, "clipnorm": 1.0, "batch_size": 10, "recover_lr": 0.001, "recover_epochs": 1, "seed": 1,
         "targeted": False, "stop_share": 0.0, "stop_rounds": 1, "untargeted_stop": True, "rounds_on_sample": False,
         "targeted_bound": 0.0, "masked_epochs": 0, "masked_controls": 3, "scan": SCAN}


def _tiny(classes=5, n=40):
    keras.utils.set_random_seed(0)
    b = build_deepid(classes)
    x = np.random.default_rng(0).integers(0, 256, (n, 55, 47, 3)).astype(np.float32)
    return b, base.Clean(x, np.arange(n) % classes, 0.25, 1, 255.0)


def test_i_bau_perturbation_stays_in_its_ball_and_raises_the_loss():
    """One batch: the perturbation is the loss gradient at zero, scaled onto the ball (or
    left inside it); several batches: it stays inside and raises the mean loss."""
    import tensorflow as tf

    from badnet_repair.defenses import i_bau

    b, clean = _tiny()
    labels = np.argmax(b.predict(clean.x, verbose=0), 1)

    def loss(delta):
        return float(np.mean(keras.losses.sparse_categorical_crossentropy(labels, b(clean.x + delta))))

    zero = tf.zeros((1,) + clean.x.shape[1:])
    with tf.GradientTape() as tape:
        tape.watch(zero)
        value = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, b(clean.x + zero)))
    g = tape.gradient(value, zero).numpy()
    for bound in (1e-3, 1e6):  # on the sphere, and inside the ball
        cfg = dict(I_BAU, bound=bound, perturbation_batch_size=len(labels), perturbation_lr=0.5)
        delta = i_bau.perturbation(b, clean.x, labels, cfg, np.random.default_rng(0))
        step = 0.5 * g * min(1.0, bound / np.linalg.norm(0.5 * g))
        assert np.allclose(delta, step, rtol=1e-4, atol=1e-9), bound
    cfg = dict(I_BAU, bound=2.0)
    delta = i_bau.perturbation(b, clean.x, labels, cfg, np.random.default_rng(0))
    assert np.linalg.norm(delta) <= 2.0 * (1 + 1e-5)
    assert loss(delta) > loss(0.0)


def test_i_bau_without_rounds_is_its_recovery_fine_tuning_and_with_rounds_reports_them():
    from badnet_repair.defenses import i_bau

    b, clean = _tiny()
    plain = training.copy(b)
    training.fit(plain, clean.x, clean.y, epochs=1, batch_size=10, learning_rate=0.001, seed=1, log=lambda s: None)
    none, facts = i_bau.defend(b, clean, dict(I_BAU, rounds=0), -1.0, log=lambda s: None)
    assert all(np.array_equal(p, q) for p, q in zip(plain.get_weights(), none.get_weights()))
    assert facts["perturbations"] == []
    some, facts = i_bau.defend(b, clean, I_BAU, -1.0, log=lambda s: None)
    assert not all(np.allclose(p, q, atol=1e-6) for p, q in zip(plain.get_weights(), some.get_weights()))
    assert len(facts["perturbations"]) == 2
    assert all(r["norm"] <= 3.0 * (1 + 1e-5) and 0 < r["top_class_share"] <= 1 for r in facts["perturbations"])


def test_targeted_i_bau_unlearns_a_perturbation_towards_each_target_the_scan_names_and_is_the_paper_without_one(
        monkeypatch):
    """targeted: the scan of B names the targets (here forced to [1, 3]); each round adds one
    targeted perturbation per target, sought on the net being unlearnt, to the pool it trains
    on. Where the scan finds none, the defense is the paper's, weight for weight."""
    from badnet_repair import scan
    from badnet_repair.defenses import i_bau

    b, clean = _tiny()
    paper, facts0 = i_bau.defend(b, clean, I_BAU, -1.0, log=lambda s: None)
    monkeypatch.setattr(scan, "scan", lambda *a, **k: {"targets": [], "shifts": []})
    same, facts1 = i_bau.defend(b, clean, dict(I_BAU, targeted=True), -1.0, log=lambda s: None)
    assert all(np.array_equal(p, q) for p, q in zip(paper.get_weights(), same.get_weights()))
    assert facts1["scan_targets"] == [] and facts1["perturbations"] == facts0["perturbations"]

    sought, real = [], scan.universal_perturbation

    def spy(model, x, target, bound, step, batch_size, unit):
        sought.append((target, bound, len(x), model is not b))
        return real(model, x, target, bound, step, batch_size, unit)

    monkeypatch.setattr(scan, "scan", lambda *a, **k: {"targets": [1, 3], "shifts": []})
    monkeypatch.setattr(scan, "universal_perturbation", spy)
    aimed, facts2 = i_bau.defend(b, clean, dict(I_BAU, targeted=True), -1.0, log=lambda s: None)
    # per round, each target once, within I-BAU's own ball, on the scan's training sample, on the copy being unlearnt
    assert sought == [(1, 3.0, 20, True), (3, 3.0, 20, True)] * I_BAU["rounds"]
    assert facts2["scan_targets"] == [1, 3] and len(facts2["perturbations"]) == I_BAU["rounds"]
    assert not all(np.array_equal(p, q) for p, q in zip(paper.get_weights(), aimed.get_weights()))


def test_i_bau_unlearns_a_perturbation_sending_each_image_to_its_own_class_plus_each_offset_the_scan_names(
        monkeypatch):
    """An offset k the scan names (all-to-all): each round seeks one perturbation aimed, image
    by image, at the class the net being unlearnt gives it + k (mod N), and measures it on
    the holdout by the same aims; the rounds' records and the facts say so. The stopping rule
    watches the offset as it watches a target: quiet from round 1, the net is left as it is."""
    from badnet_repair import evaluate, scan
    from badnet_repair.defenses import i_bau

    b, clean = _tiny()
    sought, shared, real = [], [], scan.universal_perturbation

    def spy(model, x, target, *a):
        own = evaluate.predict_classes(model, x)
        sought.append(np.array_equal(np.asarray(target), (own + 2) % 5) and len(x) == 20 and model is not b)
        return real(model, x, target, *a)

    real_share = scan.holdout_share

    def share_spy(model, held, before, delta, target, unit):
        shared.append(np.array_equal(np.asarray(target), (before + 2) % 5) and len(held) == len(clean.y_holdout))
        return real_share(model, held, before, delta, target, unit)

    monkeypatch.setattr(scan, "scan", lambda *a, **k: {"targets": [], "shifts": [2]})
    monkeypatch.setattr(scan, "universal_perturbation", spy)
    monkeypatch.setattr(scan, "holdout_share", share_spy)
    net, facts = i_bau.defend(b, clean, dict(I_BAU, targeted=True), -1.0, log=lambda s: None)
    assert sought == [True] * I_BAU["rounds"] and shared == [True] * I_BAU["rounds"]
    assert facts["scan_targets"] == [] and facts["scan_shifts"] == [2]
    assert [list(r["shift_shares"]) for r in facts["perturbations"]] == [[2]] * I_BAU["rounds"]
    assert all(r["target_shares"] == {} for r in facts["perturbations"])

    monkeypatch.setattr(scan, "holdout_share", lambda *a, **k: 0.0)
    monkeypatch.setattr(evaluate, "predict_classes", lambda model, x, *a, **k: np.arange(len(x)) % 5)
    cfg = dict(I_BAU, targeted=True, stop_share=0.05, untargeted_stop=False)
    quiet, facts = i_bau.defend(b, clean, cfg, -1.0, log=lambda s: None)
    assert len(facts["perturbations"]) == 1 and facts["perturbations"][0]["trained"] is False
    assert all(np.array_equal(p, q) for p, q in zip(b.get_weights(), quiet.get_weights()))


@pytest.mark.parametrize("predicted,shares,rounds_run,fits", [
    ("spread", [0.9, 0.04], 2, [1, 3]),  # round 2 shows no backdoor: not trained on, then the recovery
    ("spread", [0.04], 1, []),  # nothing in round 1: the net is left as it is
    ("one class", [0.04, 0.04, 0.04], 3, [1, 1, 1, 3]),  # the untargeted one still sends all to one class
])
def test_i_bau_rounds_stop_at_the_first_that_shows_no_backdoor(monkeypatch, predicted, shares, rounds_run, fits):
    """stop_share: the rounds stop at the first whose untargeted perturbation sends less than
    scan.threshold of the sample to one class and whose targeted ones send less than
    stop_share of the holdout to their target; 0 never stops (the paper's fixed rounds)."""
    from badnet_repair import evaluate, scan
    from badnet_repair.defenses import i_bau

    b, clean = _tiny()
    classes = {"spread": lambda n: np.arange(n) % 5, "one class": lambda n: np.zeros(n, int)}[predicted]
    monkeypatch.setattr(evaluate, "predict_classes", lambda model, x, *a, **k: classes(len(x)))
    monkeypatch.setattr(scan, "scan", lambda *a, **k: {"targets": [1], "shifts": []})
    called, real_fit = [], training.fit
    monkeypatch.setattr(training, "fit", lambda *a, **k: called.append(k["epochs"]) or real_fit(*a, **k))
    cfg = dict(I_BAU, targeted=True, rounds=3, recover_epochs=3)
    for stop_share, expected_rounds, expected_fits in ((0.05, rounds_run, fits), (0.0, 3, [1, 1, 1, 3])):
        given = iter(shares + [0.04] * 3)
        monkeypatch.setattr(scan, "holdout_share", lambda *a, **k: next(given))
        called.clear()
        net, facts = i_bau.defend(b, clean, dict(cfg, stop_share=stop_share), -1.0, log=lambda s: None)
        assert len(facts["perturbations"]) == expected_rounds and called == expected_fits, stop_share
        assert [r["target_shares"] for r in facts["perturbations"]] == [{1: s} for s in (shares + [0.04] * 3)[:expected_rounds]]
        trained = expected_fits.count(1)  # the rounds' one-epoch fits; the recovery's is 3
        assert [r["trained"] for r in facts["perturbations"]] == [True] * trained + [False] * (
            expected_rounds - trained), stop_share
        untouched = all(np.array_equal(p, q) for p, q in zip(b.get_weights(), net.get_weights()))
        assert untouched == (expected_fits == [])


@pytest.mark.parametrize("shares,rounds_run,fits", [
    ([0.9, 0.04, 0.9, 0.04, 0.04], 5, [1, 1, 1, 1, 3]),  # a quiet round between loud ones is trained on
    ([0.9, 0.04, 0.04, 0.9, 0.9], 3, [1, 1, 3]),  # two quiet in a row: the second is the stop
    ([0.04, 0.9, 0.9, 0.9, 0.9], 1, []),  # quiet from round 1: nothing to unlearn, left as it is
    ([0.9, 0.9, 0.9, 0.9, 0.04], 5, [1, 1, 1, 1, 1, 3]),  # the last round is quiet once: trained on
])
def test_i_bau_stop_rounds_counts_quiet_rounds_in_a_row(monkeypatch, shares, rounds_run, fits):
    """stop_rounds 2: the rounds stop at the second round in a row that shows no backdoor
    (not trained on); a lone quiet round is trained on like any other; round 1 quiet stops."""
    from badnet_repair import evaluate, scan
    from badnet_repair.defenses import i_bau

    b, clean = _tiny()
    monkeypatch.setattr(evaluate, "predict_classes", lambda model, x, *a, **k: np.arange(len(x)) % 5)
    monkeypatch.setattr(scan, "scan", lambda *a, **k: {"targets": [1], "shifts": []})
    given = iter(shares)
    monkeypatch.setattr(scan, "holdout_share", lambda *a, **k: next(given))
    called, real_fit = [], training.fit
    monkeypatch.setattr(training, "fit", lambda *a, **k: called.append(k["epochs"]) or real_fit(*a, **k))
    cfg = dict(I_BAU, targeted=True, rounds=5, recover_epochs=3, stop_share=0.05, stop_rounds=2)
    net, facts = i_bau.defend(b, clean, cfg, -1.0, log=lambda s: None)
    assert len(facts["perturbations"]) == rounds_run and called == fits
    trained = [r["trained"] for r in facts["perturbations"]]
    assert trained == [True] * fits.count(1) + [False] * (rounds_run - fits.count(1))


@pytest.mark.parametrize("targets,untargeted_stop,top,rounds_run,fits", [
    ([], False, "spread", 3, [1, 1, 1, 3]),  # no target to watch: every round, as the paper's
    ([], True, "spread", 1, []),  # the untargeted share alone: round 1 quiet, the net left as it is
    ([], True, "one class", 3, [1, 1, 1, 3]),  # ... unless one class takes the sample
    ([1], False, "spread", 1, []),  # a target, quiet from round 1: the rule as before
])
def test_i_bau_without_a_target_every_round_runs(monkeypatch, targets, untargeted_stop, top, rounds_run, fits):
    """untargeted_stop false: where the scan names no target the stopping rule has nothing to
    watch (an all-to-all backdoor has no one target), so every round runs; true: the
    untargeted perturbation's share alone may stop them, at round 1 leaving the net as it is."""
    from badnet_repair import evaluate, scan
    from badnet_repair.defenses import i_bau

    b, clean = _tiny()
    classes = {"spread": lambda n: np.arange(n) % 5, "one class": lambda n: np.zeros(n, int)}[top]
    monkeypatch.setattr(evaluate, "predict_classes", lambda model, x, *a, **k: classes(len(x)))
    monkeypatch.setattr(scan, "scan", lambda *a, **k: {"targets": targets, "shifts": []})
    monkeypatch.setattr(scan, "holdout_share", lambda *a, **k: 0.0)
    called, real_fit = [], training.fit
    monkeypatch.setattr(training, "fit", lambda *a, **k: called.append(k["epochs"]) or real_fit(*a, **k))
    cfg = dict(I_BAU, targeted=True, rounds=3, recover_epochs=3, stop_share=0.05, untargeted_stop=untargeted_stop)
    net, facts = i_bau.defend(b, clean, cfg, -1.0, log=lambda s: None)
    assert len(facts["perturbations"]) == rounds_run and called == fits
    untouched = all(np.array_equal(p, q) for p, q in zip(b.get_weights(), net.get_weights()))
    assert untouched == (fits == [])


@pytest.mark.parametrize("on_sample", [False, True])
def test_i_bau_rounds_train_on_the_searches_sample_and_the_recovery_on_every_image(monkeypatch, on_sample):
    """rounds_on_sample: each round's epoch trains on the images the searches run on (the
    scan's seeded sample, scan.training_sample), with their own labels; the recovery on the
    whole training share. Off: every fit on the whole share."""
    from badnet_repair import scan
    from badnet_repair.defenses import i_bau

    b, clean = _tiny()
    monkeypatch.setattr(scan, "scan", lambda *a, **k: {"targets": [1], "shifts": []})
    seen, real_fit = [], training.fit
    monkeypatch.setattr(training, "fit", lambda m, x, y, **k: seen.append((k["epochs"], x.copy(), y.copy()))
                        or real_fit(m, x, y, **k))
    cfg = dict(I_BAU, targeted=True, rounds=2, recover_epochs=3, rounds_on_sample=on_sample)
    i_bau.defend(b, clean, cfg, -1.0, log=lambda s: None)
    chosen = scan.training_sample(clean, SCAN["images"], cfg["seed"])
    assert 0 < len(chosen) < len(clean.y)
    assert [e for e, _, _ in seen] == [1, 1, 3]
    for epochs, x, y in seen:
        want = chosen if on_sample and epochs == 1 else np.arange(len(clean.y))
        assert np.array_equal(x, clean.x[want]) and np.array_equal(y, clean.y[want]), (on_sample, epochs)


@pytest.mark.parametrize("targeted_bound", [0.0, 6.0])
def test_i_bau_unlearns_the_targeted_bound_perturbation_and_the_rule_reads_the_bound(monkeypatch, targeted_bound):
    """targeted_bound: each round's perturbation towards a target that goes into training is
    sought within targeted_bound; the share the stopping rule reads is still the one found
    within bound. 0: the one within bound does both (real searches, real training)."""
    from badnet_repair import scan
    from badnet_repair.defenses import i_bau

    b, clean = _tiny()
    monkeypatch.setattr(scan, "scan", lambda *a, **k: {"targets": [1], "shifts": []})
    calls, read, pools = [], [], []
    real_search, real_share, real_fit = scan.universal_perturbation, scan.holdout_share, training.fit

    def search(model, x, aim, bound, *a):
        calls.append((bound, real_search(model, x, aim, bound, *a)))
        return calls[-1][1]

    def fit(m, x, y, **k):  # what each round's epoch can draw: the pool, through augment
        if k.get("augment") and k["epochs"] == 1:
            rng, zeros = np.random.default_rng(0), np.zeros((40,) + x.shape[1:], np.float32)
            drawn = [k["augment"](zeros, y[:40], rng)[0][40:] / clean.unit for _ in range(50)]
            pools.append(np.unique(np.concatenate(drawn), axis=0))
        return real_fit(m, x, y, **k)

    monkeypatch.setattr(scan, "universal_perturbation", search)
    monkeypatch.setattr(scan, "holdout_share", lambda m, h, b4, d, *a: read.append(d) or real_share(m, h, b4, d, *a))
    monkeypatch.setattr(training, "fit", fit)
    cfg = dict(I_BAU, targeted=True, rounds=2, targeted_bound=targeted_bound)
    i_bau.defend(b, clean, cfg, -1.0, log=lambda s: None)
    per_round = 2 if targeted_bound else 1
    assert [bound for bound, _ in calls] == [cfg["bound"], targeted_bound][:per_round] * 2
    ruled = [d for bound, d in calls[::per_round]]
    assert len(read) == 2 and all(r is d for r, d in zip(read, ruled))
    unlearnt = [d for _, d in calls[per_round - 1::per_round]]
    assert all(np.linalg.norm(d) <= (targeted_bound or cfg["bound"]) * (1 + 1e-5) for d in unlearnt)
    assert len(pools) == 3  # two rounds, then the recovery (one epoch in I_BAU) on the same pool
    for r, pool in enumerate(pools[:2], 1):  # the untargeted ones and each round's unlearnt targeted one
        assert len(pool) == 2 * r
        assert all(any(np.allclose(p, d[0], atol=1e-4) for p in pool) for d in unlearnt[:r])
        if targeted_bound:
            assert not any(np.allclose(p, d[0], atol=1e-4) for p in pool for d in ruled[:r])


@pytest.mark.parametrize("masked_epochs", [0, 4])
def test_i_bau_waits_for_the_targets_mask_to_be_as_large_as_the_classes(monkeypatch, masked_epochs):
    """masked_epochs: each round also unlearns Neural Cleanse's trigger towards each target (its
    search going on from the last round's), and the rounds stop only once the target's mask is
    at least the median of masked_controls other classes' masks on B. Masks are faked (their L1
    given); searches, shares and training are real. 0: no mask is sought or written."""
    from badnet_repair import scan
    from badnet_repair.defenses import i_bau

    b, clean = _tiny()
    monkeypatch.setattr(scan, "scan", lambda *a, **k: {"targets": [1], "shifts": []})
    sizes = {1: [5.0, 15.0, 21.0, 40.0, 60.0]}  # the target's, round by round; the classes' median is 20
    controls, calls, pools = iter([10.0, 40.0, 20.0]), [], []  # mean 23.3: the median is read
    real_fit = training.fit

    def masked(model, x, target, epochs, batch_size, unit, state=None):
        calls.append((target, epochs, state))
        size = sizes[target].pop(0) if target in sizes else next(controls)
        m = np.zeros((1,) + x.shape[1:3] + (1,), np.float32)
        m.flat[:int(size)] = 1.0
        return 1 - m, np.full((1,) + x.shape[1:], 0.25, np.float32) * m, {"after": len(calls)}

    def fit(m, x, y, **k):  # what each round's epoch can draw, on images of ones
        if k.get("augment") and k["epochs"] == 1:
            ones = np.ones((40,) + x.shape[1:], np.float32)
            pools.append({float(v) for _ in range(50) for v in np.unique(k["augment"](ones, y[:40], rng)[0][40:])})
        return real_fit(m, x, y, **k)

    rng = np.random.default_rng(0)
    monkeypatch.setattr(scan, "masked_trigger", masked)
    monkeypatch.setattr(training, "fit", fit)
    cfg = dict(I_BAU, targeted=True, rounds=5, stop_share=1.0, masked_epochs=masked_epochs,
               scan=dict(SCAN, threshold=1.01))  # every round reads quiet but for the masks
    _, facts = i_bau.defend(b, clean, cfg, -1.0, log=lambda s: None)
    rounds = facts["perturbations"]
    if not masked_epochs:
        assert calls == [] and [r["trained"] for r in rounds] == [False] and "mask_sizes" not in rounds[0]
        return
    assert [r["mask_sizes"] for r in rounds] == [{1: 5.0}, {1: 15.0}, {1: 21.0}]  # 21 >= 20: quiet, stop
    assert [r["trained"] for r in rounds] == [True, True, False]
    assert [c[1] for c in calls[:3]] == [2 * masked_epochs] * 3 and all(c[2] is None for c in calls[:3])
    assert len({c[0] for c in calls[:3]}) == 3 and 1 not in {c[0] for c in calls[:3]}
    assert [c[:2] for c in calls[3:]] == [(1, masked_epochs)] * 3
    assert [c[2] for c in calls[3:]] == [None, {"after": 4}, {"after": 5}]  # each round's search goes on
    assert all(0.25 * clean.unit + 0.0 in pool for pool in pools[:2])  # 1 * (1 - m) + 0.25 * m where m is 1


def test_i_bau_untargeted_stop_changes_nothing_where_the_scan_names_a_target(monkeypatch):
    """Every BadNet whose scan names a target runs as before the option: the same facts and
    weights with untargeted_stop true and false (real searches, real training)."""
    from badnet_repair import scan
    from badnet_repair.defenses import i_bau

    b, clean = _tiny()
    monkeypatch.setattr(scan, "scan", lambda *a, **k: {"targets": [1], "shifts": []})
    cfg = dict(I_BAU, targeted=True, stop_share=0.05)
    off, facts_off = i_bau.defend(b, clean, dict(cfg, untargeted_stop=False), -1.0, log=lambda s: None)
    on, facts_on = i_bau.defend(b, clean, dict(cfg, untargeted_stop=True), -1.0, log=lambda s: None)
    assert facts_on == facts_off
    assert all(np.array_equal(p, q) for p, q in zip(off.get_weights(), on.get_weights()))


@pytest.mark.parametrize("change,message", [
    (lambda c: c.update(names=["ft"]), r"'defend.names' must include 'fine_pruning'"),
    (lambda c: c.update(default="nad"), r"'defend.names' must include 'nad' \(the default defense\)"),
    (lambda c: c.update(names=["fine_pruning", "i_bau", "strip"]), r"unknown defense 'strip'"),
    (lambda c: c["ft"].update(learning_rates=[0.0]), r"'defend.ft.learning_rates' has an out-of-range value 0.0"),
    (lambda c: c["fine_pruning"].update(fractions=[1.0]), r"'defend.fine_pruning.fractions' has an out-of-range"),
    (lambda c: c.update(budget=-1.0), r"'defend.budget' must be in \[0, 100\)"),
    (lambda c: c["i_bau"].update(bound=0.0), r"'defend.i_bau.bound' has an out-of-range value 0.0"),
    (lambda c: c["nad"].update(depth=2), r"unknown param 'defend.nad.depth'"),
    (lambda c: c["i_bau"].update(targeted="yes"), r"'defend.i_bau.targeted' must be bool, got 'yes'"),
    (lambda c: c["i_bau"].update(stop_share=1.5), r"'defend.i_bau.stop_share' has an out-of-range value 1.5"),
    (lambda c: c["i_bau"].update(stop_rounds=0), r"'defend.i_bau.stop_rounds' has an out-of-range value 0"),
    (lambda c: c["i_bau"].update(untargeted_stop=0), r"'defend.i_bau.untargeted_stop' must be bool, got 0"),
    (lambda c: c["anp"].pop("eps"), r"missing param 'defend.anp.eps'"),
])
def test_bad_defend_params_name_the_param(change, message):
    """What evaluate-defenses checks of the names, and what each defend@NAME checks of its
    own section before it loads the model (base.settings)."""
    cfg = params.load("defend", ROOT / "params.yaml")
    change(cfg)
    with pytest.raises(BadInput, match=message):
        base.check_names(cfg, defenses.names())
        base.check_shared(cfg)
        for name in DEFENSES:
            base.check_section_ranges(name, params.check_section(f"defend.{name}", cfg[name],
                                                                 defenses.load(name).PARAMS))


def test_every_defense_module_implements_the_interface_and_the_registry_finds_them_all():
    import inspect

    assert DEFENSES == ["anp", "fine_pruning", "ft", "ft_sam", "i_bau", "nad", "rnp", "sau"]
    for name in DEFENSES:
        module = defenses.load(name)
        assert isinstance(module.PAPER, str) and module.PAPER and isinstance(module.PARAMS, dict), name
        assert list(inspect.signature(module.check).parameters) == ["model", "cfg", "prune_layer"], name
        assert list(inspect.signature(module.defend).parameters) == ["model", "clean", "cfg", "floor", "log"], name
        assert set(module.PARAMS) == set(params.load("defend", ROOT / "params.yaml")[name]), name
    with pytest.raises(BadInput, match=r"unknown defense 'base'"):
        defenses.load("base")


# --- Equivalences: the same function in other forms must get the same verdict -------------

def _rebuild(model, first=None, last=None):
    """`model`'s layers called anew, `first` before them and `last` after; weights copied."""
    from badnet_repair.graph import rebuild

    return training.copy(rebuild(model, first, last, name="form"))


def _logits(model):
    """The same net with its output layer's softmax removed: logits."""
    cfg = model.get_config()
    out = cfg["output_layers"][0][0] if isinstance(cfg["output_layers"][0], list) else cfg["output_layers"][0]
    next(l for l in cfg["layers"] if l["name"] == out)["config"]["activation"] = "linear"
    net = keras.Model.from_config(cfg)
    net.set_weights(model.get_weights())
    return net


CHOICES = ("learning_rate", "threshold", "fraction_pruned")  # the one setting each defense chooses


def _defend_all(model, root, input_divisor):
    """Every defense in-process as defend@NAME runs it: {name: (chosen setting, defended net)}."""
    cfg = params.load("defend", root / "params.yaml")
    layer = params.load("prune", root / "params.yaml")["layer"]
    valid = h5data.read(root / h5data.FILES["valid"])
    out = {}
    for name in DEFENSES:
        module = defenses.load(name)
        section = base.settings(name, module, cfg, model, layer, params.load("scan", root / "params.yaml"))
        clean = base.Clean(valid.x, valid.y, cfg["holdout"], cfg["seed"], input_divisor)
        net, facts = module.defend(model, clean, section, clean.holdout_accuracy(model) - cfg["budget"],
                                   log=lambda s: None)
        choice = next(facts[k] for k in CHOICES if k in facts)
        out[name] = (choice, net)
    return out


def _verdict(net, root, input_divisor):
    from badnet_repair.evaluate import predict_classes

    test, bd = (h5data.read(root / h5data.FILES[s]) for s in ("test", "bd_test"))
    return predict_classes(net, test.x, input_divisor), test.y, predict_classes(net, bd.x, input_divisor), bd.y


@pytest.fixture(scope="module")
def fed(small):
    """B, fed x / 255, and every defense's (choice, net) on it as its defend stage made them:
    both equivalence tests' reference (the other forms run in-process, as _defend_all does)."""
    out = {}
    for name in DEFENSES:
        facts = json.loads((small / "models/defenses" / name / "defense.json").read_text())
        out[name] = (next(facts[k] for k in CHOICES if k in facts), _defended(small, name))
    return load_badnet(small / "models/badnet.h5"), out


SCALE_TOLERANCE = 1.5  # points of clean accuracy or ASR: the two forms round x / 255 apart in the last bit


def test_every_defense_gives_the_same_verdict_on_raw_pixels_behind_a_rescaling_layer(small, fed):
    """B fed x / 255, and B1 (the same layers and weights behind Rescaling(1/255)) fed raw
    pixels at input_divisor 1, as lab3's BadNet is: one function, so one verdict per defense.
    I-BAU's bound is on [0, 1] images for both; the chosen setting must match exactly."""
    b, fed = fed
    b1 = _rebuild(b, first=lambda t: keras.layers.Rescaling(1 / 255.0, name="rescale")(t))
    x = h5data.read(small / h5data.FILES["valid"]).x[:64].astype(np.float32)
    assert np.allclose(b1.predict(x, verbose=0), b.predict(x / 255.0, verbose=0), atol=1e-5)
    raw = _defend_all(b1, small, 1.0)
    for name in DEFENSES:
        assert fed[name][0] == raw[name][0], name  # the holdout's choice
        p, y, pb, yb = _verdict(fed[name][1], small, 255.0)
        q, _, qb, _ = _verdict(raw[name][1], small, 1.0)
        assert abs(100 * np.mean(p == y) - 100 * np.mean(q == y)) <= SCALE_TOLERANCE, name
        assert abs(100 * np.mean(pb == yb) - 100 * np.mean(qb == yb)) <= SCALE_TOLERANCE, name


def test_every_defense_gives_the_same_classes_from_softmax_split_softmax_and_logits(small, fed):
    """A softmax model, the same as logits plus a separate softmax layer, and the logits
    alone: the loss reads which one it has from the model, so every defense makes the same
    choice and the same defended classes on all three."""
    b, softmax = fed
    logits = _logits(b)
    split = _rebuild(logits, last=lambda t: keras.layers.Activation("softmax", name="probabilities")(t))
    assert training.outputs_logits(logits) and not training.outputs_logits(split) and not training.outputs_logits(b)
    x = h5data.read(small / h5data.FILES["valid"]).x[:64] / 255.0
    assert np.allclose(split.predict(x, verbose=0), b.predict(x, verbose=0), atol=1e-6)
    runs = [softmax] + [_defend_all(net, small, 255.0) for net in (split, logits)]
    for name in DEFENSES:
        assert runs[0][name][0] == runs[1][name][0] == runs[2][name][0], name
        verdicts = [_verdict(run[name][1], small, 255.0) for run in runs]
        for v in verdicts[1:]:
            assert np.array_equal(v[0], verdicts[0][0]) and np.array_equal(v[2], verdicts[0][2]), name


def test_a_model_whose_outputs_are_neither_probabilities_nor_logits_is_refused_before_any_work():
    x = keras.Input((55, 47, 3))
    h = keras.layers.Flatten()(keras.layers.Conv2D(4, 3, name="conv_a")(x))
    net = keras.Model(x, keras.layers.Dense(5, activation="sigmoid", name="scores")(h))
    cfg = params.load("defend", ROOT / "params.yaml")
    for name in DEFENSES:
        with pytest.raises(BadInput, match=r"output layer 'scores' applies sigmoid; expected a softmax"):
            base.settings(name, defenses.load(name), cfg, net, "pool_3")
