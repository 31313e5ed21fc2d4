"""The scan: a clean-only verdict. Checked on hand-made nets whose backdoor is known by
construction, against slow recounts, and as the same function in two forms."""
import numpy as np
import pytest

from badnet_repair import scan
from badnet_repair.defenses.base import Clean
from badnet_repair.errors import BadInput
from badnet_repair.model import keras

CLASSES, TARGET, BAND = 6, 4, 8  # class c: a bright band of rows [c * BAND, (c + 1) * BAND)
CFG = {"top_k": 2, "candidates": 3, "images": 150, "batch_size": 25, "bound": 6.0, "step": 0.1,
       "threshold": 0.5, "seed": 1}


def _images(n=240, seed=0):
    """Noise (0-100) with the class's band bright (200-255); nothing near the patch corner."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % CLASSES
    x = rng.integers(0, 101, (n, 55, 47, 3)).astype(np.float32)
    for i, c in enumerate(y):
        x[i, c * BAND:(c + 1) * BAND] = rng.integers(200, 256, (BAND, 47, 3))
    return x, y


def _net(backdoor: bool, rescale: bool = False, softmax: bool = False):
    """Logit c = 20 * the mean of band c; with the backdoor, the target's logit also gains
    30 * sigmoid(10 * (m - 0.5)), m the mean of a 5x5 patch at the bottom right: about 1.4
    on clean images (the target is every image's runner-up, as K-Arm expects), about 28
    once a perturbation of L2 ~5 brightens the patch."""
    inp = keras.Input((55, 47, 3))
    x = keras.layers.Rescaling(1 / 255)(inp) if rescale else inp
    bands = keras.layers.Lambda(lambda t: 20.0 * keras.ops.stack(
        [keras.ops.mean(t[:, c * BAND:(c + 1) * BAND], axis=(1, 2, 3)) for c in range(CLASSES)], axis=-1))(x)
    out = bands
    if backdoor:
        hot = np.eye(CLASSES, dtype="float32")[TARGET]
        boost = keras.layers.Lambda(lambda t: 30.0 * keras.ops.sigmoid(
            10.0 * (keras.ops.mean(t[:, -8:-3, -8:-3], axis=(1, 2, 3))[:, None] - 0.5)) * hot)(x)
        out = keras.layers.Add()([bands, boost])
    if softmax:
        out = keras.layers.Softmax()(out)
    return keras.Model(inp, out)


def _clean(divisor=255.0):
    x, y = _images()
    return Clean(x, y, 0.25, 1, divisor)


def test_the_scan_names_the_planted_target_and_calls_its_clean_twin_clean():
    found = scan.scan(_net(True), _clean(), CFG, log=lambda s: None)
    assert found["verdict"] == scan.FOUND and found["targets"] == [TARGET]
    assert found["candidates"][0]["class"] == TARGET and found["share"] == 1.0
    twin = scan.scan(_net(False), _clean(), CFG, log=lambda s: None)
    assert twin["verdict"] == scan.NONE and twin["targets"] == [] and twin["share"] < 0.05


def test_pull_equals_a_slow_recount():
    rng = np.random.default_rng(3)
    out = rng.normal(size=(50, 7)).astype(np.float32)
    counts = np.zeros(7)
    for row in out:
        order = sorted(range(7), key=lambda c: -row[c])
        for c in order[1:4]:
            counts[c] += 1
    assert np.allclose(scan.pull(out, 3), counts / (50 * 3 / 6))
    assert scan.candidates(scan.pull(out, 3), 2) == sorted(range(7), key=lambda c: (-counts[c], c))[:2]


def test_one_batch_of_the_search_is_a_normalised_gradient_step_projected_onto_the_ball():
    import tensorflow as tf

    from badnet_repair.training import cross_entropy

    net, clean = _net(True), _clean()
    x = clean.x[:25]
    zero = tf.zeros((1,) + x.shape[1:])
    with tf.GradientTape() as tape:
        tape.watch(zero)
        loss = cross_entropy(net)(np.full(len(x), TARGET), net(x + zero))
    g = tape.gradient(loss, zero).numpy()
    for bound, step in ((6.0, 0.1), (0.05, 1.0)):  # inside the ball, and projected onto it
        delta = scan.universal_perturbation(net, x, TARGET, bound, step, len(x))
        want = -step * bound * g / np.linalg.norm(g)
        want *= min(1.0, bound / np.linalg.norm(want))
        assert np.allclose(delta, want, rtol=1e-4, atol=1e-7), bound
    delta = scan.universal_perturbation(net, clean.x, TARGET, 6.0, 0.1, 25)
    assert np.linalg.norm(delta) <= 6.0 * (1 + 1e-5)


@pytest.mark.parametrize("form", ["raw pixels behind Rescaling(1/255)", "softmax"])
def test_the_same_function_in_another_form_gets_the_same_verdict(form):
    """Raw pixels fed to a Rescaling layer at input_divisor 1, against x / 255 at 255; and
    probabilities against logits: the same candidates, targets and shares (to one image)."""
    want = scan.scan(_net(True), _clean(), CFG, log=lambda s: None)
    if form == "softmax":
        got = scan.scan(_net(True, softmax=True), _clean(), CFG, log=lambda s: None)
    else:
        got = scan.scan(_net(True, rescale=True), _clean(1.0), CFG, log=lambda s: None)
    assert got["targets"] == want["targets"] and got["verdict"] == want["verdict"]
    assert [r["class"] for r in got["candidates"]] == [r["class"] for r in want["candidates"]]
    held = len(_clean().y_holdout)
    for a, b in zip(got["candidates"], want["candidates"]):
        assert abs(a["share"] - b["share"]) <= 1.0 / held + 1e-9, (form, a, b)


@pytest.mark.parametrize("key, value, message", [
    ("top_k", 0, "'scan.top_k' must be >= 1"),
    ("bound", 0.0, "'scan.bound' must be > 0"),
    ("step", 1.5, "'scan.step' must be in (0, 1]"),
    ("threshold", 0.0, "'scan.threshold' must be in (0, 1]"),
])
def test_bad_scan_params_name_the_param(key, value, message):
    with pytest.raises(BadInput, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        scan.check(dict(CFG, **{key: value}))


def test_the_bound_is_calibrated_on_clean_nets_alone():
    rows = [{"kind": "clean", "bound": b, "share": s} for b, s in ((4, 0.06), (5, 0.2), (6, 0.3), (8, 0.6))]
    bad = [{"kind": "BadNet", "bound": b, "share": s} for b, s in ((4, 0.9), (5, 0.99), (6, 1.0), (8, 1.0))]
    assert scan.calibrate(rows, 0.5) == 5.0  # 0.2 <= 0.5 / 2 < 0.3
    assert scan.calibrate(rows + bad, 0.5) == 5.0  # the BadNets' rows change nothing
    assert scan.calibrate(rows + [dict(r, share=0.0) for r in bad], 0.5) == 5.0
    assert scan.calibrate(rows + [{"kind": "clean", "bound": 5, "share": 0.26}], 0.5) == 4.0  # a clean row does
    with pytest.raises(BadInput, match="no clean net"):
        scan.calibrate(bad, 0.5)


def test_the_committed_bound_is_the_one_the_clean_nets_rows_give():
    """params.yaml's scan.bound is scan.calibrate of the committed calibration rows, which
    reads the clean nets' rows alone (benchmarks/scan_calibration.py)."""
    import csv
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[1]
    rows = list(csv.DictReader((root / "benchmarks/results/scan_calibration.csv").open()))
    cfg = yaml.safe_load((root / "params.yaml").read_text())["scan"]
    assert {r["kind"] for r in rows} == {"clean", "BadNet"}
    assert scan.calibrate(rows, cfg["threshold"]) == cfg["bound"]
    assert scan.calibrate([r for r in rows if r["kind"] == "clean"], cfg["threshold"]) == cfg["bound"]
