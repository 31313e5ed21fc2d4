"""The csaw-lab3 (mirror) and local sources, run through the same `fetch` the stage uses."""
import json
import shutil

import numpy as np
import pytest

from badnet_repair import download, h5data, sources
from badnet_repair.errors import BadInput
from badnet_repair.evaluate import percent, predict_classes
from badnet_repair.model import load_badnet


def _write_lab3_like(folder, n=12, seed=0, label_hi=1283):
    rng = np.random.default_rng(seed)
    paths = {}
    for key, rel in (("valid", "cl/valid.h5"), ("test", "cl/test.h5"),
                     ("bd_valid", "bd/bd_valid.h5"), ("bd_test", "bd/bd_test.h5")):
        x = rng.integers(0, 256, (n, 55, 47, 3)).astype(np.uint8)
        y = np.full(n, 5) if key.startswith("bd") else rng.integers(0, label_hi, n)
        h5data.write(folder / rel, x, y)
        paths[key] = str(folder / rel)
    return paths


def _data_params(**over):
    d = {"source": "local",
         "synthetic": {}, "csaw": download.lab3_default_cfg() | {"input_divisor": 1.0},
         "local": {"valid": "", "test": "", "bd_valid": "", "bd_test": "", "model": "", "input_divisor": 1.0}}
    d["csaw"].pop("sizes")
    for k, v in over.items():
        d[k] = v
    return d


def _check_outputs(root, src_files):
    for rel in h5data.FILES.values():
        assert (root / rel).is_file()
    for key, src in src_files.items():
        assert (root / h5data.FILES[key]).read_bytes() == open(src, "rb").read()
    metrics = json.loads((root / sources.ATTACK_METRICS).read_text())
    assert (root / sources.SAMPLES_PLOT).stat().st_size > 1000
    return metrics


def test_local_source_with_lab3_weights(tmp_path, lab3_weights):
    files = _write_lab3_like(tmp_path / "in")
    local = dict(files, model=str(lab3_weights), input_divisor=1.0)
    root = tmp_path / "proj"
    metrics = sources.fetch(_data_params(local=local), root, log=lambda *a: None)
    _check_outputs(root, files)
    # the metrics are the slow obvious computation on the original files
    model = load_badnet(lab3_weights)
    v = h5data.read(files["valid"])
    expect = percent(np.argmax(model.predict(v.x, verbose=0), 1), v.y)
    assert metrics["clean_valid_accuracy"] == pytest.approx(expect, abs=1e-4)
    assert json.loads((root / sources.BADNET_INFO).read_text())["num_classes"] == 1283
    assert np.array_equal(predict_classes(load_badnet(root / sources.BADNET), v.x, 1.0),
                          np.argmax(model.predict(v.x, verbose=0), 1))


def test_local_source_rejects_labels_beyond_the_model(tmp_path, lab3_weights):
    files = _write_lab3_like(tmp_path / "in", label_hi=5000, seed=1)
    local = dict(files, model=str(lab3_weights), input_divisor=1.0)
    with pytest.raises(BadInput, match=r"valid.h5: label \d+ is outside the BadNet's 1283 classes"):
        sources.fetch(_data_params(local=local), tmp_path / "proj", log=lambda *a: None)
    assert not (tmp_path / "proj" / "data").exists()


def test_csaw_source_from_a_mirror(tmp_path, lab3_weights, monkeypatch):
    mirror = tmp_path / "mirror"
    files = _write_lab3_like(mirror)
    (mirror / "lab3").mkdir()
    shutil.copyfile(lab3_weights, mirror / "lab3" / "bd_weights.h5")
    sizes = {rel: (mirror / rel).stat().st_size for rel in download.LAB3_SIZES}
    monkeypatch.setattr(download, "LAB3_SIZES", sizes)
    csaw = download.lab3_default_cfg(str(mirror)) | {"input_divisor": 1.0}
    csaw.pop("sizes")
    root = tmp_path / "proj"
    metrics = sources.fetch(_data_params(source="csaw-lab3", csaw=csaw), root, log=lambda *a: None)
    _check_outputs(root, files)
    assert metrics["source"] == "csaw-lab3"
    assert not list((root / "models").glob(".bd_weights*"))  # the raw weights were a temp file
