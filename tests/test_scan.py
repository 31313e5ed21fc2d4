"""The scan: a clean-only verdict. Checked on hand-made nets whose backdoor is known by
construction, against slow recounts, and as the same function in two forms."""
import numpy as np
import pytest

from badnet_repair import scan
from badnet_repair.defenses.base import Clean
from badnet_repair.errors import BadInput
from badnet_repair.model import keras

CLASSES, TARGET, BAND = 6, 4, 8  # class c: a bright band of rows [c * BAND, (c + 1) * BAND)
CFG = {"top_k": 2, "candidates": 3, "shifts": 1, "images": 150, "batch_size": 25, "bound": 6.0, "step": 0.1,
       "threshold": 0.5, "seed": 1}


def _images(n=240, seed=0):
    """Noise (0-100) with the class's band bright (200-255); nothing near the patch corner."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % CLASSES
    x = rng.integers(0, 101, (n, 55, 47, 3)).astype(np.float32)
    for i, c in enumerate(y):
        x[i, c * BAND:(c + 1) * BAND] = rng.integers(200, 256, (BAND, 47, 3))
    return x, y


def _net(backdoor: bool, rescale: bool = False, softmax: bool = False, all_to_all: bool = False):
    """Logit c = 20 * the mean of band c; with the backdoor, the target's logit also gains
    30 * sigmoid(10 * (m - 0.5)), m the mean of a 5x5 patch at the bottom right: about 1.4
    on clean images (the target is every image's runner-up, as K-Arm expects), about 28
    once a perturbation of L2 ~5 brightens the patch. `all_to_all`: the patch instead raises
    each class c by 30 * the same sigmoid * the mean of band c - 1 (an image of y goes to
    y + 1; on clean images y + 1 is its runner-up, by about 1.3)."""
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
    if all_to_all:
        boost = keras.layers.Lambda(lambda ts: 30.0 * keras.ops.sigmoid(
            10.0 * (keras.ops.mean(ts[0][:, -8:-3, -8:-3], axis=(1, 2, 3))[:, None] - 0.5)) * keras.ops.roll(
            ts[1] / 20.0, 1, axis=-1))([x, bands])
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
    assert found["shifts"] == [] and found["shift_candidates"][0]["share"] < 0.3  # one target is no offset
    twin = scan.scan(_net(False), _clean(), CFG, log=lambda s: None)
    assert twin["verdict"] == scan.NONE and twin["targets"] == [] and twin["share"] < 0.05
    assert twin["shifts"] == [] and len(twin["shift_candidates"]) == CFG["shifts"]


def test_the_scan_names_an_all_to_all_backdoors_offset_where_no_one_target_takes_the_holdout():
    found = scan.scan(_net(False, all_to_all=True), _clean(), CFG, log=lambda s: None)
    assert found["verdict"] == scan.FOUND and found["shifts"] == [1] and found["targets"] == []
    assert found["shift_candidates"][0]["shift"] == 1 and found["shift_candidates"][0]["share"] == found["share"] == 1.0
    assert all(c["share"] < 0.5 for c in found["candidates"])  # each class only gains its own y - 1's images
    off = scan.scan(_net(False, all_to_all=True), _clean(), dict(CFG, shifts=0), log=lambda s: None)
    assert off["verdict"] == scan.NONE and off["shift_candidates"] == []


def _slow_counts(out, top_k, offsets=False):
    """Per class (or per offset from the image's own class), its count among each row's
    top_k after the row's own, by sorting each row by hand."""
    counts = np.zeros(out.shape[1])
    for row in out:
        order = sorted(range(out.shape[1]), key=lambda c: -row[c])
        for c in order[1:top_k + 1]:
            counts[(c - order[0]) % out.shape[1] if offsets else c] += 1
    return counts


def test_pull_equals_a_slow_recount():
    out = np.random.default_rng(3).normal(size=(50, 7)).astype(np.float32)
    counts = _slow_counts(out, 3)
    assert np.allclose(scan.pull(out, 3), counts / (50 * 3 / 6))
    assert scan.candidates(scan.pull(out, 3), 2) == sorted(range(7), key=lambda c: (-counts[c], c))[:2]


def test_shift_pull_equals_a_slow_recount_of_offsets():
    out = np.random.default_rng(4).normal(size=(60, 7)).astype(np.float32)
    got = scan.shift_pull(out, 3)
    assert got[0] == 0 and np.allclose(got, _slow_counts(out, 3, offsets=True) / (60 * 3 / 6))
    assert np.isclose(got.sum(), scan.pull(out, 3).sum())  # the same runners-up, counted by offset
    assert list(scan.shifted([0, 5, 6], 2, 7)) == [2, 0, 1]


def test_a_search_with_a_target_per_image_is_the_mean_of_their_gradients():
    """The first step towards per-image aims is the normalised gradient of the mean loss to
    each image's own aim, as the one-target search's is to its one target."""
    import tensorflow as tf

    from badnet_repair.training import cross_entropy

    net, clean = _net(False, all_to_all=True), _clean()
    x, aims = clean.x[:25], (clean.y[:25] + 1) % CLASSES
    zero = tf.zeros((1,) + x.shape[1:])
    with tf.GradientTape() as tape:
        tape.watch(zero)
        loss = cross_entropy(net)(aims, net(x + zero))
    g = tape.gradient(loss, zero).numpy()
    delta = scan.universal_perturbation(net, x, aims, 6.0, 0.1, len(x))
    assert np.allclose(delta, -0.6 * g / np.linalg.norm(g), rtol=1e-4, atol=1e-7)


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
    assert got["targets"] == want["targets"] and got["verdict"] == want["verdict"] and got["shifts"] == want["shifts"]
    assert [r["class"] for r in got["candidates"]] == [r["class"] for r in want["candidates"]]
    held = len(_clean().y_holdout)
    assert [r["shift"] for r in got["shift_candidates"]] == [r["shift"] for r in want["shift_candidates"]]
    for a, b in zip(got["candidates"] + got["shift_candidates"], want["candidates"] + want["shift_candidates"]):
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


@pytest.mark.parametrize("form", ["x / 255", "raw pixels behind Rescaling(1/255)"])
def test_the_masked_trigger_lands_on_the_planted_patch_and_is_smaller_than_a_natural_classes(form):
    """Neural Cleanse's reversal on the hand-made BadNet: the mask sits on the 5x5 patch, the
    trigger it makes (applied here the slow way, on [0, 1] images) sends the images to the
    target, and a natural class needs a larger mask (its band). The same in both input forms."""
    clean, net = (_clean(), _net(True)) if form == "x / 255" else (_clean(1.0), _net(True, rescale=True))
    x = clean.x[:100]
    kept, added, state = scan.masked_trigger(net, x, TARGET, 40, 25, clean.unit)
    m = 1 - kept[0, :, :, 0]
    patch = np.zeros(m.shape, bool)
    patch[-8:-3, -8:-3] = True
    assert m[patch].sum() > 5 * m[~patch].sum() and m[patch].mean() > 0.3, (m[patch].mean(), m[~patch].sum())
    assert np.all(added >= 0) and np.all(added <= 1 - kept + 1e-6)  # m * p, with p in [0, 1]
    images = x / clean.unit  # on [0, 1], as the trigger is made
    triggered = np.stack([img * kept[0] + added[0] for img in images]) * clean.unit
    assert np.mean(np.argmax(net.predict(triggered, verbose=0), -1) == TARGET) >= 0.99
    natural = scan.masked_trigger(net, x, 0, 40, 25, clean.unit)[0]
    assert np.sum(1 - natural) > 2 * np.sum(1 - kept)
    again = scan.masked_trigger(net, x, TARGET, 0, 25, clean.unit, state)  # no epochs more: the same trigger
    assert np.array_equal(again[0], kept) and np.array_equal(again[1], added)
