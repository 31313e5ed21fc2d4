import json

import numpy as np
import pytest

from badnet_repair import metrics, pruning, variants
from badnet_repair.errors import BadInput
from badnet_repair.model import load_badnet
from badnet_repair.repaired import build_repaired, repaired_classes


def test_repaired_net_reloads_and_predicts_identically(tmp_path, lab3_weights):
    b = load_badnet(lab3_weights)
    bp = pruning.prune(b, "pool_3", range(45))
    g = build_repaired(b, bp)
    from badnet_repair.model import save_model

    save_model(g, tmp_path / "g.keras")
    g2 = variants.load_repaired(tmp_path / "g.keras")
    x = np.random.default_rng(0).uniform(0, 255, (300, 55, 47, 3)).astype(np.float32)
    out, out2 = g.predict(x, verbose=0), g2.predict(x, verbose=0)
    assert out.shape == (300, 1284) and np.array_equal(out, out2)
    # argmax(G) is B's class where B and B' agree, N = 1283 where they don't
    cb = np.argmax(b.predict(x, verbose=0), 1)
    cp = np.argmax(bp.predict(x, verbose=0), 1)
    slow = np.array([cb[i] if cb[i] == cp[i] else 1283 for i in range(len(x))])
    assert np.array_equal(np.argmax(out2, 1), slow)
    assert np.array_equal(repaired_classes(cb, cp, 1283), slow)
    assert 0 < np.mean(slow == 1283) < 1  # both branches are exercised


def test_repaired_metrics_by_hand():
    n = 10
    clean_y = np.array([1, 2, 3, 4])
    clean_p = np.array([1, 2, 10, 5])     # one right-but-flagged, one wrong
    bd_y = np.full(5, 0)
    bd_p = np.array([0, 10, 10, 3, 10])   # 1 attack success, 3 detected
    m = metrics.repaired(clean_p, clean_y, bd_p, bd_y, n)
    assert m == pytest.approx({"clean_accuracy": 50.0, "attack_success_rate": 20.0,
                               "detection_rate": 60.0, "false_positive_rate": 25.0})


def test_baseline_macro_scores_by_hand():
    y = {"valid": np.array([0, 0, 1, 1]), "test": np.array([0, 0, 1, 2]),
         "bd_valid": np.array([0, 0]), "bd_test": np.array([0, 0])}
    p = {"valid": np.array([0, 1, 1, 1]), "test": np.array([0, 1, 1, 2]),
         "bd_valid": np.array([0, 1]), "bd_test": np.array([1, 1])}
    m = metrics.baseline(p, y)
    # test: class 0 P=1 R=.5; class 1 P=.5 R=1; class 2 P=1 R=1
    prec, rec = (1 + 0.5 + 1) / 3, (0.5 + 1 + 1) / 3
    f1 = (2 * 0.5 / 1.5 + 2 * 0.5 / 1.5 + 1) / 3
    assert m["precision_macro_test"] == pytest.approx(100 * prec)
    assert m["recall_macro_test"] == pytest.approx(100 * rec)
    assert m["f1_macro_test"] == pytest.approx(100 * f1)
    assert m["clean_accuracy_valid"] == 75.0 and m["attack_success_rate_valid"] == 50.0
    assert m["attack_success_rate_test"] == 0.0 and m["clean_accuracy_test"] == 75.0


def test_macro_scores_equal_a_per_class_loop():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 40, 500)
    p = np.where(rng.random(500) < 0.7, y, rng.integers(0, 45, 500))
    y, p = np.append(y, [60, 60]), np.append(p, [0, 1])  # class 60 is never predicted
    rows = []
    for c in sorted(set(y) | set(p)):
        tp = sum(1 for a, b in zip(y, p) if a == c and b == c)
        said, true = sum(1 for b in p if b == c), sum(1 for a in y if a == c)
        rows.append((tp / said if said else 0.0, tp / true if true else 0.0, 2 * tp / (said + true)))
    assert {c for c in p if c not in y} and {c for c in y if c not in p}  # both kinds of 0/0 are met
    assert metrics.macro_scores(y, p) == pytest.approx(tuple(np.mean(rows, axis=0)), abs=1e-12)


def test_export_says_when_a_threshold_is_never_reached(tmp_path):
    import pandas as pd

    from badnet_repair.model import build_deepid

    model = build_deepid(10)
    acc = [90.0, 89.0, 87.5] + [87.0] * 58  # never falls 5 points
    sweep = pd.DataFrame({"channels_pruned": range(61), "clean_accuracy_valid": acc,
                          "channel_removed": [-1] + list(range(60))})
    cfg = {"layer": "pool_3", "keep": "first_past", "drop": "absolute"}
    said = []
    reached = variants.export(model, sweep, cfg, 2.0, tmp_path / "2", log=said.append)
    never = variants.export(model, sweep, cfg, 5.0, tmp_path / "5", log=said.append)
    assert reached["reached"] and reached["channels_pruned"] == 2 and not never["reached"]
    assert any("X=5" in line and "never falls" in line for line in said)
    assert sorted(p.name for p in (tmp_path / "2").iterdir()) == ["pruned.h5", "repaired.keras", "variant.json"]
    assert sorted(p.name for p in (tmp_path / "5").iterdir()) == ["variant.json"]
    assert not list(tmp_path.glob(".2.*"))  # the temp directory was swapped in
    index = variants.read_index(tmp_path, [5, 2], "export-variants")
    assert [e["threshold"] for e in index] == [5, 2] and index[1]["dir"] == str(tmp_path / "2")
    with pytest.raises(BadInput, match=r"/3/variant.json: not found; run the export-variants@3 stage first"):
        variants.read_index(tmp_path, [2, 3], "export-variants")


@pytest.mark.parametrize("drop,label", [("absolute", "X (points)"), ("relative", "X (% of B's accuracy)")])
def test_results_tables_name_the_unit_of_x(drop, label):
    row = {"kind": "pruned", "threshold": 2.0, "channels_pruned": 3, "fraction_pruned": 0.05,
           "pruned_clean_accuracy": 90.0, "pruned_attack_success_rate": 50.0, "repaired_clean_accuracy": 89.0,
           "repaired_attack_success_rate": 40.0, "repaired_detection_rate": 60.0, "repaired_false_positive_rate": 1.0}
    table = metrics.results_table([row], {"clean_accuracy_test": 95.0, "attack_success_rate_test": 99.0}, drop)
    headers = [line for line in table.splitlines() if line.startswith("| X")]
    assert len(headers) == 2 and all(h.startswith(f"| {label} |") for h in headers)


def test_g_rule_holds_for_logits_of_any_sign(tmp_path):
    """B outputs negative logits: G, saved and loaded, still answers B's class where B and
    B' agree and N elsewhere (a 0 appended for N would win every argmax)."""
    from badnet_repair.model import keras, save_model

    x = keras.Input((6, 5, 3))
    b = keras.Model(x, keras.layers.Dense(4)(keras.layers.Flatten()(x)))
    b.set_weights([np.random.default_rng(0).normal(0, 1, w.shape) for w in b.get_weights()])
    b.layers[-1].bias.assign(np.full(4, -100.0))  # every score far below 0
    bp = keras.models.clone_model(b)
    noise = np.random.default_rng(2)
    bp.set_weights([w + noise.normal(0, 0.3, w.shape) for w in b.get_weights()])  # another, close net
    save_model(build_repaired(b, bp), tmp_path / "g.keras")
    g = variants.load_repaired(tmp_path / "g.keras")
    xs = np.random.default_rng(1).normal(0, 1, (200, 6, 5, 3)).astype(np.float32)
    cb, cp = np.argmax(b.predict(xs, verbose=0), 1), np.argmax(bp.predict(xs, verbose=0), 1)
    assert np.array_equal(np.argmax(g.predict(xs, verbose=0), 1), np.where(cb == cp, cb, 4))
    assert 0 < np.mean(cb == cp) < 1


def _entry(folder, x, **extra):
    folder.mkdir(parents=True)
    (folder / variants.INDEX).write_text(json.dumps({"threshold": x, "reached": False, **extra}))


def test_read_index_reads_the_folder_of_each_threshold_as_params_spell_it_not_a_stale_one(tmp_path):
    """A stale models/variants/2 beside a new 2.0 (params now say 2.0, and dvc.yaml's foreach
    names the folder so) is not read; nor is a malformed folder of an X no longer in params."""
    _entry(tmp_path / "2", 2, stale=True)
    _entry(tmp_path / "2.0", 2.0)
    (tmp_path / "7").mkdir()
    (tmp_path / "7" / variants.INDEX).write_text("{ not json")
    index = variants.read_index(tmp_path, ["2.0"], "export-variants")
    assert len(index) == 1 and index[0]["dir"] == str(tmp_path / "2.0") and "stale" not in index[0]
    assert variants.read_index(tmp_path, [2], "export-variants")[0]["stale"]  # 2 is the folder "2"
    with pytest.raises(BadInput, match=r"'prune.thresholds' holds X=2 twice \('2' and '2.0'\)"):
        variants.read_index(tmp_path, ["2", "2.0"], "export-variants")
    _entry(tmp_path / "4", 5)  # a folder that holds another X than its name
    with pytest.raises(BadInput, match=r"/4/variant.json: holds X=5, not 4; run `dvc repro --force export-variants@4`"):
        variants.read_index(tmp_path, ["4"], "export-variants")


def test_thresholds_are_spelled_as_the_params_file_spells_them(tmp_path):
    (tmp_path / "params.yaml").write_text("prune:\n  thresholds: [2, 4.0, 10.5]\n")
    assert variants.spelled_thresholds(tmp_path / "params.yaml") == ["2", "4.0", "10.5"]


@pytest.mark.parametrize("targets, shifts", [([1], []), ([0, 3], []), ([], []), ([], [1]), ([2], [3, 1])])
def test_detector_rule_is_exact_on_the_saved_file_for_logits_and_softmax_alike(tmp_path, targets, shifts):
    """The scan-gated detector, saved and loaded: N where B and B' disagree and B's class is
    one of `targets` or B''s class + an offset of `shifts` (mod N), B's class elsewhere (none:
    it never flags), checked input by input. The same nets with a softmax on top give the
    same classes (argmax is unchanged)."""
    from badnet_repair.model import keras, save_model

    x = keras.Input((6, 5, 3))
    b = keras.Model(x, keras.layers.Dense(4)(keras.layers.Flatten()(x)))
    b.set_weights([np.random.default_rng(0).normal(0, 1, w.shape) for w in b.get_weights()])
    bp = keras.models.clone_model(b)
    bp.set_weights([w + np.random.default_rng(2).normal(0, 0.4, w.shape) for w in b.get_weights()])

    def softmax(net):
        return keras.Model(net.inputs, keras.layers.Softmax()(net.outputs[0]))

    xs = np.random.default_rng(1).normal(0, 1, (400, 6, 5, 3)).astype(np.float32)
    cb, cp = np.argmax(b.predict(xs, verbose=0), 1), np.argmax(bp.predict(xs, verbose=0), 1)
    slow = np.array([4 if cb[i] != cp[i] and (cb[i] in targets or any(cb[i] == (cp[i] + k) % 4 for k in shifts))
                     else cb[i] for i in range(len(xs))])
    got = []
    for name, (net_b, net_p) in {"logits": (b, bp), "softmax": (softmax(b), softmax(bp))}.items():
        save_model(build_repaired(net_b, net_p, targets, name="detector", shifts=shifts), tmp_path / f"{name}.keras")
        det = variants.load_repaired(tmp_path / f"{name}.keras")
        got.append(np.argmax(det.predict(xs, verbose=0), 1))
    assert np.array_equal(got[0], slow) and np.array_equal(got[1], slow)
    assert np.array_equal(repaired_classes(cb, cp, 4, targets, shifts), slow)
    if targets == [0, 3] or shifts:  # every branch exercised: flagged, a disagreement let through, agreement
        assert (slow == 4).any() and ((cb != cp) & (slow != 4)).any() and (cb == cp).any()
    if shifts:  # some flagged only by an offset, and wrapping past N - 1
        assert ((slow == 4) & ~np.isin(cb, targets)).any() and ((slow == 4) & (cb < cp)).any()


def test_detector_flags_a_subset_of_what_g_flags():
    from badnet_repair.repaired import flagged

    rng = np.random.default_rng(5)
    cb, cp = rng.integers(0, 6, 1000), rng.integers(0, 6, 1000)
    by_hand = 100 * np.mean((cb != cp) & np.isin(cb, [2, 5]))
    assert flagged(cb, cp, [2, 5]) == pytest.approx(by_hand) and by_hand < flagged(cb, cp)
    assert flagged(cb, cp, None) == pytest.approx(100 * np.mean(cb != cp)) and flagged(cb, cp, []) == 0
    by_offset = 100 * np.mean((cb != cp) & (np.isin(cb, [2]) | (cb == (cp + 1) % 6)))
    assert flagged(cb, cp, [2], [1], num_classes=6) == pytest.approx(by_offset) and by_offset < flagged(cb, cp)
    with pytest.raises(ValueError, match="num_classes"):
        flagged(cb, cp, [2], [1])


def _offset_detector():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks/offset_detector.py"
    spec = importlib.util.spec_from_file_location("offset_detector", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_wider_offset_rule_measured_is_the_detectors_rule_at_m_1_and_flags_more_as_m_grows():
    """benchmarks/offset_detector.py's slow form: at m = 1 it is repaired.decide's detector
    with offsets, image by image; a larger m flags a superset, never more than G."""
    bench = _offset_detector()
    rng = np.random.default_rng(3)
    b, d = rng.normal(0, 1, (500, 7)), rng.normal(0, 1, (500, 7))
    d[:, :] += 2 * np.roll(np.eye(7), -1, 1)[b.argmax(1)]  # the defended net often puts B's class - 1 high
    cb, cd = b.argmax(1), d.argmax(1)
    assert np.array_equal(bench.flagged(b, d, [1], 1), repaired_classes(cb, cd, 7, [], [1]) == 7)
    last = bench.flagged(b, d, [1], 1)
    for m in (2, 3, 7):
        now = bench.flagged(b, d, [1], m)
        assert (now >= last).all()
        last = now
    assert (bench.flagged(b, d, [1], 1) != last).any() and np.array_equal(last, cb != cd)  # m = N: G


def test_the_committed_offset_detector_rows_at_m_1_are_the_leaderboards_detector():
    """The benchmark's m = 1 rows re-measure what the suite's evaluation measured for the same
    net and defense: the detector's detection and clean false-positive rates, to the hundredth."""
    import csv
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    board = {(r["name"], r["defense"]): r for r in csv.DictReader((root / "suite/metrics/leaderboard.csv").open())}
    rows = [r for r in csv.DictReader((root / "benchmarks/results/offset_detector.csv").open()) if r["m"] == "1"]
    assert rows
    for r in rows:
        ref = board[(r["net"], r["defense"])]
        assert abs(float(r["detection"]) - float(ref["detector_detection_rate_test"])) < 0.006, r["net"]
        assert abs(float(r["test_flagged"]) - float(ref["detector_false_positive_rate_test"])) < 0.006, r["net"]
