"""`badnet-repair bring`: the user's BadNet and files checked up front, then params.yaml
pointed at them, comments kept; on any bad input one line and nothing written."""
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from badnet_repair import h5data, params, sources
from badnet_repair.model import build_deepid, keras, save_model
from test_classify import run

ROOT = Path(__file__).resolve().parents[1]
N = 6


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    """A user's model and four CSAW-format files, outside the project."""
    home = tmp_path_factory.mktemp("user")
    keras.utils.set_random_seed(1)
    save_model(build_deepid(N), home / "bd_net.h5")
    rng = np.random.default_rng(0)
    for name in ("valid", "test", "bd_valid", "bd_test"):
        y = np.full(12, 2) if name.startswith("bd_") else np.arange(12) % N
        h5data.write(home / f"{name}.h5", rng.integers(0, 256, (12, 55, 47, 3)).astype(np.uint8), y)
    return home


def _bring(project, user, *extra, **files):
    paths = {k: str(user / f"{k}.h5") for k in ("valid", "test", "bd_valid", "bd_test")} | files
    return run("bring", str(user / "bd_net.h5"), "--valid", paths["valid"], "--test", paths["test"],
               "--bd-valid", paths["bd_valid"], "--bd-test", paths["bd_test"], "--params",
               str(project / "params.yaml"), *extra)


def test_bring_sets_what_the_seven_flags_would_and_keeps_every_comment(tmp_path, user):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    before = (tmp_path / "params.yaml").read_text()
    code, out, err = _bring(tmp_path, user, "--input-divisor", "1")
    assert code == 0, err
    assert "dvc repro" in out[-1]
    doc = yaml.safe_load((tmp_path / "params.yaml").read_text())
    # the same as `dvc exp run -S data.source=local -S data.local.valid=... (x5) -S ...input_divisor=1`
    want = yaml.safe_load(before)
    want["data"]["source"] = "local"
    want["data"]["local"] = {**{k: str(user / f"{k}.h5") for k in ("valid", "test", "bd_valid", "bd_test")},
                             "model": str(user / "bd_net.h5"), "input_divisor": 1.0}
    assert doc == want
    params.check_section("data", doc["data"])  # and the schema takes it
    comments = [line.split("#", 1)[1] for line in before.splitlines() if "#" in line]
    after = (tmp_path / "params.yaml").read_text()
    assert all(c in after for c in comments)
    changed = [a for a, b in zip(before.splitlines(), after.splitlines()) if a != b]
    assert len(after.splitlines()) == len(before.splitlines()) and len(changed) == 7  # source + six local keys
    # what fetch-data will do with it passes too: the same check, fed the params
    sources.check_local(doc["data"]["local"])


@pytest.mark.parametrize("change,pattern", [
    ({"test": "missing.h5"}, r"missing.h5: file not found"),
    ({"bd_valid": "text"}, r"text.h5: not a readable HDF5 file"),
    ({"valid": "wrong_shape"}, r"wrong_shape.h5: images are 32x32, but the BadNet .*bd_net.h5 takes 55x47"),
    ({"divisor": "0"}, r"^error: --input-divisor must be > 0, got 0"),
    ({"params": "none"}, r"params.yaml: file not found; run `bring` from the project's root"),
])
def test_bring_checks_everything_first_and_writes_nothing_on_bad_input(tmp_path, user, change, pattern):
    project = tmp_path / "proj"
    project.mkdir()
    if change.get("params") != "none":
        shutil.copy(ROOT / "params.yaml", project / "params.yaml")
    files, extra = {}, []
    for key, value in change.items():
        if key == "divisor":
            extra = ["--input-divisor", value]
        elif value == "text":
            (tmp_path / "text.h5").write_text("not hdf5")
            files[key] = str(tmp_path / "text.h5")
        elif value == "wrong_shape":
            h5data.write(tmp_path / "wrong_shape.h5", np.zeros((4, 32, 32, 3), np.uint8), np.arange(4))
            files[key] = str(tmp_path / "wrong_shape.h5")
        elif key != "params":
            files[key] = str(tmp_path / value)
    before = {p.name: p.read_bytes() for p in project.iterdir()}
    code, out, err = _bring(project, user, *extra, **files)
    assert code not in (0, None) and len(err) == 1 and err[0].startswith("error: "), err
    assert re.search(pattern, err[0]), err[0]
    assert {p.name: p.read_bytes() for p in project.iterdir()} == before  # nothing half-written
