"""Bad input, through the real stage scripts: one-line error naming the file or param,
a non-zero exit, no traceback, and every earlier output left byte for byte as it was.

A tiny project (a 10-class DeepID, 16 images per file) is built once by running the
stages after fetch-data; each test breaks one thing in a copy of it."""
import hashlib
import os
import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from badnet_repair import h5data
from badnet_repair.atomic import write_json
from badnet_repair.model import build_deepid, keras, save_model
from badnet_repair.plots import samples_grid
from stagerun import after_fetch, run_stage

ROOT = Path(__file__).resolve().parents[1]
N_CLASSES = 10
THRESHOLDS = [1, 5]


def snapshot(root):
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _images(n, rng, hw=(55, 47)):
    return rng.integers(0, 256, (n, *hw, 3)).astype(np.uint8)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad") / "proj"
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    save_model(build_deepid(N_CLASSES), root / "models/badnet.h5")
    write_json(root / "models/badnet.json", {"source": "local", "input_divisor": 255.0, "num_classes": N_CLASSES})
    write_json(root / "metrics/attack.json", {"source": "local"})  # what fetch-data leaves for `local`
    for split, rel in h5data.FILES.items():
        y = np.full(16, 3) if split.startswith("bd_") else np.arange(16) % N_CLASSES
        h5data.write(root / rel, _images(16, rng), y)
    samples_grid(_images(2, rng), _images(2, rng), [0, 1], [3, 3], root / "plots/samples.png")
    doc = yaml.safe_load((ROOT / "params.yaml").read_text())
    doc["prune"]["thresholds"] = THRESHOLDS
    doc["finetune"].update(epochs=2, batch_size=8)
    doc["defend"]["fine_pruning"].update(epochs=1, batch_size=8)
    doc["defend"]["ft"].update(epochs=1, batch_size=8, learning_rates=[0.001])
    doc["defend"].update(names=["fine_pruning", "ft"], default="fine_pruning")  # the two after_fetch runs
    (root / "params.yaml").write_text(yaml.safe_dump(doc))
    for name, *args in after_fetch(THRESHOLDS):
        code, err = run_stage(name, root, *args)
        assert code == 0, (name, args, err)
    return root


@pytest.fixture
def proj(built, tmp_path):
    root = tmp_path / "proj"
    shutil.copytree(built, root)
    return root


def fails(root, stage, pattern, touched=(), args=()):
    """The stage exits non-zero with one error line matching `pattern`, and every file
    except the `touched` inputs is as it was, with no temp file left behind."""
    before = {k: v for k, v in snapshot(root).items() if k not in touched}
    code, err = run_stage(stage, root, *args)
    assert code not in (0, None), err
    lines = [line for line in err if not line.startswith("warning: ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert not any("Traceback" in line for line in err)
    assert re.search(pattern, lines[0]), lines[0]
    after = {k: v for k, v in snapshot(root).items() if k not in touched}
    assert after == before
    return lines[0]


def write_raw(path, data=None, label=None, **extra):
    path.unlink(missing_ok=True)
    with h5py.File(path, "w") as f:
        if data is not None:
            f["data"] = data
        if label is not None:
            f["label"] = label
        for k, v in extra.items():
            f[k] = v


def good_data(n=16):
    return np.random.default_rng(1).integers(0, 256, (n, 3, 55, 47)).astype(np.uint8), np.arange(n) % N_CLASSES


# --- data files -------------------------------------------------------------------------

TEST = "data/cl/test.h5"


def test_missing_data_file(proj):
    (proj / TEST).unlink()
    fails(proj, "baseline", r"data/cl/test.h5: file not found", touched=[TEST])


@pytest.mark.parametrize("how", ["text", "truncated", "empty"])
def test_not_hdf5_or_truncated(proj, how):
    path = proj / TEST
    if how == "text":
        path.write_text("id,label\n1,2\n")
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        path.write_bytes(b"")
    fails(proj, "baseline", r"data/cl/test.h5: (not a readable HDF5|truncated or corrupt)", touched=[TEST])


@pytest.mark.parametrize("drop", ["data", "label"])
def test_missing_dataset(proj, drop):
    x, y = good_data()
    kept = {"data": x, "label": y}
    kept[drop] = None
    write_raw(proj / TEST, kept["data"], kept["label"], other=np.zeros(3))
    fails(proj, "baseline", rf"data/cl/test.h5: no '{drop}' dataset", touched=[TEST])


@pytest.mark.parametrize("shape,pattern", [
    ((16, 3, 55), r"'data' has shape \(16, 3, 55\), expected \(N, 3, H, W\)"),
    ((16, 5, 55, 47), r"'data' has shape \(16, 5, 55, 47\)"),
    ((16, 3, 50, 47), r"images are 50x47, but the BadNet models/badnet.h5 takes 55x47"),
])
def test_wrong_rank_or_image_size(proj, shape, pattern):
    write_raw(proj / TEST, np.zeros(shape, np.uint8), np.arange(16) % N_CLASSES)
    fails(proj, "baseline", "data/cl/test.h5: " + pattern, touched=[TEST])


def test_channels_last_is_detected_and_gives_the_same_results(proj):
    ds = h5data.read(proj / TEST)
    write_raw(proj / TEST, ds.x.astype(np.uint8), ds.y)  # (N, 55, 47, 3)
    before = (proj / "metrics/baseline.json").read_bytes()
    code, err = run_stage("baseline", proj)
    assert code == 0 and err == []
    assert (proj / "metrics/baseline.json").read_bytes() == before


def test_zero_images(proj):
    write_raw(proj / TEST, np.zeros((0, 3, 55, 47), np.uint8), np.zeros(0, np.int64))
    fails(proj, "baseline", r"data/cl/test.h5: holds zero images", touched=[TEST])


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_pixels(proj, value):
    x, y = good_data()
    x = x.astype(np.float32)
    x[5, 1, 2, 3] = value
    write_raw(proj / TEST, x, y)
    fails(proj, "baseline", r"data/cl/test.h5: image 5 .*NaN or infinite", touched=[TEST])


@pytest.mark.parametrize("label,pattern", [
    (np.arange(16) + 0.5, r"'label' holds non-integer values"),
    (np.arange(16) + N_CLASSES, rf"label {N_CLASSES} is outside the BadNet's {N_CLASSES} classes"),
    (np.arange(16) - 1, rf"label -1 is outside the BadNet's {N_CLASSES} classes"),
    (np.array([b"a"] * 16), r"'label' has dtype .*expected numbers"),
    (np.arange(15), r"'label' has shape \(15,\), expected \(16,\)"),
])
def test_bad_labels(proj, label, pattern):
    write_raw(proj / TEST, good_data()[0], label)
    fails(proj, "baseline", "data/cl/test.h5: " + pattern, touched=[TEST])


def test_already_scaled_pixels_warn(proj):
    x, y = good_data()
    write_raw(proj / TEST, x / 255.0, y)
    code, err = run_stage("baseline", proj)
    assert code == 0
    assert [line for line in err if "data/cl/test.h5" in line] == [
        "warning: data/cl/test.h5: pixels lie in [0, 1], as if already scaled to 0-1; "
        "CSAW files hold 0-255 (the model is fed x / input_divisor)"]


def test_poisoned_file_with_many_labels_warns(proj):
    x, y = good_data()
    write_raw(proj / "data/bd/bd_test.h5", x, y)  # a clean file where a poisoned one belongs
    code, err = run_stage("baseline", proj)
    assert code == 0
    assert any(line.startswith("warning: data/bd/bd_test.h5: a poisoned file whose labels are not one target")
               for line in err), err


# --- models ---------------------------------------------------------------------------

BADNET = "models/badnet.h5"


def test_missing_model(proj):
    (proj / BADNET).unlink()
    fails(proj, "baseline", r"models/badnet.h5: model file not found", touched=[BADNET])


@pytest.mark.parametrize("content", [b"\x89HDF\r\n\x1a\n" + bytes(100), os.urandom(5000), b""])
def test_corrupt_model(proj, content):
    (proj / BADNET).write_bytes(content)
    fails(proj, "baseline", r"models/badnet.h5: cannot load as a Keras model", touched=[BADNET])


def test_not_a_keras_model(proj):
    shutil.copyfile(proj / TEST, proj / BADNET)  # an HDF5 file, but data
    fails(proj, "baseline", r"models/badnet.h5: neither a full Keras model .* nor DeepID weights", touched=[BADNET])


def test_model_with_fewer_classes_than_the_labels(proj):
    save_model(build_deepid(5), proj / BADNET)
    write_json(proj / "models/badnet.json", {"input_divisor": 255.0, "num_classes": 5})
    fails(proj, "baseline", r"data/cl/valid.h5: label \d is outside the BadNet's 5 classes",
          touched=[BADNET, "models/badnet.json"])


def test_model_and_its_info_disagree(proj):
    save_model(build_deepid(12), proj / BADNET)
    fails(proj, "baseline", r"models/badnet.h5: has 12 classes, but models/badnet.json says 10", touched=[BADNET])


@pytest.mark.parametrize("text", ["{not json", '{"input_divisor": "255", "num_classes": 10}'])
def test_corrupt_model_info(proj, text):
    (proj / "models/badnet.json").write_text(text)
    fails(proj, "baseline", r"models/badnet.json: (not valid JSON|no valid 'input_divisor')",
          touched=["models/badnet.json"])


def test_model_that_is_not_an_image_classifier(proj):
    x = keras.Input((8,))
    save_model(keras.Model(x, keras.layers.Dense(N_CLASSES)(x)), proj / BADNET)
    fails(proj, "baseline", r"models/badnet.h5: the model takes inputs of shape \(8,\), expected \(H, W, 3\)",
          touched=[BADNET])


def _set_params(root, section, key, value):
    doc = yaml.safe_load((root / "params.yaml").read_text())
    node = doc[section]
    *path, last = key.split(".")
    for k in path:
        node = node[k]
    node[last] = value
    (root / "params.yaml").write_text(yaml.safe_dump(doc))


@pytest.mark.parametrize("layer,pattern", [
    ("pool_9", r"'prune.layer' is 'pool_9', but the model has no such layer"),
    ("fc_1", r"the channels of 'prune.layer' 'fc_1' cannot be traced back to one conv layer's filters: "
             r"'fc_1' is a Dense"),
])
def test_prune_layer_missing_or_untraceable(proj, layer, pattern):
    _set_params(proj, "prune", "layer", layer)
    fails(proj, "activations", pattern, touched=["params.yaml"])


# --- the local source: other images, other architectures ---------------------------------

def _local(proj, tmp_path, model_path, **files):
    """Point data.local at the project's four files (or the given replacements) and the model."""
    paths = {split: str(files.get(split, proj / rel)) for split, rel in h5data.FILES.items()}
    doc = yaml.safe_load((proj / "params.yaml").read_text())
    doc["data"]["source"] = "local"
    doc["data"]["local"] = dict(paths, model=str(model_path), input_divisor=255)
    (proj / "params.yaml").write_text(yaml.safe_dump(doc))


def test_weights_for_another_architecture(proj, tmp_path):
    x = keras.Input((55, 47, 3))
    h = keras.layers.Conv2D(8, 3, name="conv_1")(x)
    h = keras.layers.Dense(160)(keras.layers.Flatten()(h))
    other = keras.Model(x, keras.layers.Dense(N_CLASSES, name="output")(h))
    other.save_weights(tmp_path / "other.weights.h5")
    _local(proj, tmp_path, tmp_path / "other.weights.h5")
    fails(proj, "fetch_data", r"other.weights.h5: cannot load as a Keras model or DeepID weights",
          touched=["params.yaml"])


def test_clean_and_poisoned_files_of_different_sizes(proj, tmp_path):
    keras.utils.set_random_seed(0)
    save_model(build_deepid(N_CLASSES), tmp_path / "model.h5")
    small = tmp_path / "bd_valid.h5"
    h5data.write(small, _images(16, np.random.default_rng(2), hw=(50, 40)), np.full(16, 3))
    _local(proj, tmp_path, tmp_path / "model.h5", bd_valid=small)
    fails(proj, "fetch_data", r"bd_valid.h5: images are 50x40, but the BadNet .*model.h5 takes 55x47",
          touched=["params.yaml"])


def test_local_source_with_wrong_labels_copies_nothing(proj, tmp_path):
    save_model(build_deepid(N_CLASSES), tmp_path / "model.h5")
    bad = tmp_path / "test.h5"
    h5data.write(bad, _images(16, np.random.default_rng(3)), np.arange(16) + 100)
    _local(proj, tmp_path, tmp_path / "model.h5", test=bad)
    fails(proj, "fetch_data", r"test.h5: label 100 is outside the BadNet's 10 classes", touched=["params.yaml"])


# --- params ---------------------------------------------------------------------------

@pytest.mark.parametrize("key,value,pattern", [
    ("threshold", [2], r"unknown param 'prune.threshold'"),
    ("thresholds", "2,4", r"'prune.thresholds' must be a non-empty list"),
    ("thresholds", [], r"'prune.thresholds' must be a non-empty list"),
    ("thresholds", [2, "four"], r"'prune.thresholds\[1\]' must be float"),
    ("thresholds", [0], r"'prune.thresholds' value 0 must be in \(0, 100\)"),
    ("thresholds", [100], r"'prune.thresholds' value 100 must be in \(0, 100\)"),
    ("thresholds", [-3, 2], r"'prune.thresholds' value -3 must be in \(0, 100\)"),
    ("thresholds", [2, 4, 2], r"'prune.thresholds' has duplicates"),
    ("keep", "best", r"'prune.keep' is 'best', expected one of first_past, last_within"),
    ("drop", "log", r"'prune.drop' is 'log', expected one of absolute, relative"),
    ("order", "random", r"'prune.order' is 'random', expected one of ascending, descending"),
    ("layer", 3, r"'prune.layer' must be str"),
])
def test_bad_prune_params(proj, key, value, pattern):
    _set_params(proj, "prune", key, value)
    fails(proj, "evaluate_repaired", "params.yaml: " + pattern, touched=["params.yaml"])
    # the section's schema is checked by every stage that reads it; the list's values by the
    # stage that reads the list (export-variants@X checks its own X: next test)
    if key != "thresholds" or not (isinstance(value, list) and value and all(isinstance(v, int) for v in value)):
        fails(proj, "export_variants", "params.yaml: " + pattern, touched=["params.yaml"], args=["1"])


@pytest.mark.parametrize("arg,pattern", [
    ("0", r"'prune.thresholds' value 0 must be in \(0, 100\)"),
    ("100", r"'prune.thresholds' value 100 must be in \(0, 100\)"),
    ("four", r"'prune.thresholds' item 'four' is not a number"),
])
def test_bad_threshold_given_to_a_per_threshold_stage(proj, arg, pattern):
    for stage in ("export_variants", "fine_prune"):
        fails(proj, stage, "params.yaml: " + pattern, args=[arg])


@pytest.mark.parametrize("key,value,pattern", [
    ("source", "imagenet", r"'data.source' is 'imagenet', expected one of synthetic, csaw-lab3, local"),
    ("synthetic.epochs", "ten", r"'data.synthetic.epochs' must be int"),
    ("synthetic.epochs", True, r"'data.synthetic.epochs' must be int"),
    ("synthetic.poison_rate", 1.5, r"'data.synthetic.poison_rate' must be < 1"),
    ("synthetic.poison_rate", -0.1, r"'data.synthetic.poison_rate' must be >= 0"),  # 0 is a clean net
    ("synthetic.identities", 1, r"'data.synthetic.identities' must be at least 2"),
    ("synthetic.attack", "hat", r"'data.synthetic.attack' is 'hat', expected one of sunglasses, eyebrows, "
                                r"lipstick, patch, blended, multi, wanet, lf, ssba, input_aware, all_to_all, clean_label"),
    ("synthetic.attack", 3, r"'data.synthetic.attack' must be str"),
    ("synthetic.target", 5000, r"'data.synthetic.target' must be in \[0, 1283\)"),
    ("synthetic.batch_size", 0, r"'data.synthetic.batch_size' must be > 0"),
    ("synthetic.colour", 1, r"unknown param 'data.synthetic.colour'"),
    ("local", None, r"'data.local' must be a mapping"),
])
def test_bad_data_params(proj, key, value, pattern):
    _set_params(proj, "data", key, value)
    fails(proj, "fetch_data", "params.yaml: " + pattern, touched=["params.yaml"])


def test_multi_needs_three_identities(proj):
    _set_params(proj, "data", "synthetic.attack", "multi")
    _set_params(proj, "data", "synthetic.identities", 2)
    fails(proj, "fetch_data", r"params.yaml: 'data.synthetic.identities' must be at least 3 \(one per target",
          touched=["params.yaml"])


@pytest.mark.parametrize("key,value,pattern", [
    ("optimizer", "rmsprop", r"'finetune.optimizer' is 'rmsprop', expected one of adam, sgd"),
    ("holdout", 1.0, r"'finetune.holdout' must be in \(0, 1\)"),
    ("holdout", 0.0001, r"'finetune.holdout' 0.0001 leaves no images"),
    ("epochs", 0, r"'finetune.epochs' must be > 0"),
    ("learning_rate", -0.1, r"'finetune.learning_rate' must be > 0"),
])
def test_bad_finetune_params(proj, key, value, pattern):
    _set_params(proj, "finetune", key, value)
    fails(proj, "fine_prune", "params.yaml: " + pattern, touched=["params.yaml"], args=["1"])


def test_params_file_not_yaml(proj):
    (proj / "params.yaml").write_text("prune: [unclosed\n")
    fails(proj, "export_variants", r"params.yaml: not valid YAML", touched=["params.yaml"], args=["1"])


# --- other stage inputs -----------------------------------------------------------------

@pytest.mark.parametrize("content,pattern", [
    ("", r"plots/prune_sweep.csv: not a readable CSV"),
    ("a,b\n1,2\n", r"plots/prune_sweep.csv: not a prune-sweep table"),
])
def test_bad_sweep_table(proj, content, pattern):
    (proj / "plots/prune_sweep.csv").write_text(content)
    fails(proj, "export_variants", pattern, touched=["plots/prune_sweep.csv"], args=["5"])


@pytest.mark.parametrize("path,content,pattern", [
    ("metrics/fine_prune.json", None, r"metrics/fine_prune.json: not found; run the evaluate-repaired stage first"),
    ("metrics/baseline.json", "{oops", r"metrics/baseline.json: not valid JSON"),
    ("metrics/attack.json", "[]", r"metrics/attack.json: not a JSON object"),
    ("metrics/results.md", None, r"metrics/results.md: not found; run the evaluate-repaired stage"),
    ("plots/detector.png", "not a png", r"plots/detector.png: not a PNG image"),
])
def test_report_inputs_missing_or_corrupt(proj, path, content, pattern):
    assert (proj / "plots/report.html").is_file()
    if content is None:
        (proj / path).unlink()
    else:
        (proj / path).write_text(content)
    fails(proj, "report", pattern, touched=[path])


def test_debug_switch_shows_the_traceback(proj, monkeypatch):
    (proj / TEST).unlink()
    monkeypatch.setenv("BADNET_REPAIR_DEBUG", "1")
    with pytest.raises(Exception, match="file not found"):
        run_stage("baseline", proj)


def test_a_library_warning_of_many_lines_does_not_break_the_one_line_error(proj, monkeypatch):
    """Whatever Keras version writes while a load fails (3.15 warns over several lines),
    the stage prints one error line."""
    import warnings

    from badnet_repair import model as model_module

    def noisy_failing_load(path, num_classes):
        warnings.warn("Skipping variable loading for nested container\nwith many\nlines", UserWarning)
        raise ValueError("weights do not fit")

    monkeypatch.setattr(model_module, "_load", noisy_failing_load)
    code, err = run_stage("baseline", proj)
    assert code == 1 and len(err) == 1, err
    assert err[0].startswith("error: models/badnet.h5: cannot load as a Keras model") and "weights do not fit" in err[0]


def test_a_library_warning_outside_a_load_is_one_line(proj, monkeypatch):
    import warnings

    from badnet_repair import metrics

    real = metrics.baseline

    def noisy(*a, **k):
        warnings.warn("first line\nsecond line", UserWarning)
        return real(*a, **k)

    monkeypatch.setattr(metrics, "baseline", noisy)
    code, err = run_stage("baseline", proj)
    assert code == 0 and err == ["warning: first line second line"], err


@pytest.mark.parametrize("stage,args,path,content,pattern", [
    ("fine_prune", ["1"], "models/variants/1/variant.json", None,
     r"models/variants/1/variant.json: not found; run the export-variants@1 stage first"),
    ("fine_prune", ["1"], "models/variants/1/variant.json", "{oops",
     r"models/variants/1/variant.json: not valid JSON"),
    ("fine_prune", ["1"], "models/variants/1/variant.json", '{"threshold": "1"}',
     r"models/variants/1/variant.json: not a variant index"),
    ("evaluate_repaired", [], "models/fine_pruned/5/variant.json", None,
     r"models/fine_pruned/5/variant.json: not found; run the fine-prune@5 stage first"),
    ("detector", [], "metrics/scan.json", '{"badnet": {"targets": ["0"]}}',
     r"metrics/scan.json: no list of B's targets under 'badnet'; run `dvc repro --force scan`"),
    ("evaluate_defenses", [], "metrics/scan.json", '{"badnet": {"targets": [0]}}',
     r"metrics/scan.json: no list of B's shifts under 'badnet'; run `dvc repro --force scan`"),
    ("evaluate_defenses", [], "metrics/scan.json", None, r"metrics/scan.json: not found; run the scan stage first"),
    ("detector", [], "models/defenses/fine_pruning/defended.h5", None,
     r"models/defenses/fine_pruning/defended.h5: not found; run the defend@fine_pruning stage first"),
])
def test_per_threshold_folders_missing_or_corrupt(proj, stage, args, path, content, pattern):
    if content is None:
        (proj / path).unlink()
    else:
        (proj / path).write_text(content)
    fails(proj, stage, pattern, touched=[path], args=args)
