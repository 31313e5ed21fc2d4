"""End to end: the real `dvc repro` on the small preset, in a temporary git clone."""
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
OUTS = ["data/cl/valid.h5", "data/cl/test.h5", "data/bd/bd_valid.h5", "data/bd/bd_test.h5",
        "models/badnet.h5", "models/badnet.json", "metrics/attack.json", "plots/samples.png"]


def _run(cmd, cwd, env):
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert res.returncode == 0, f"{' '.join(cmd)} failed:\n{res.stdout}\n{res.stderr}"
    return res.stdout + res.stderr


def _md5s(root):
    return {p: hashlib.md5((root / p).read_bytes()).hexdigest() for p in OUTS}


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """A git clone of this repository with the working tree's current files laid over it
    (so uncommitted edits are tested too), switched to the small preset."""
    dest = tmp_path_factory.mktemp("e2e") / "repo"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(dest)], check=True)
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    shutil.copyfile(dest / "presets" / "small.yaml", dest / "params.yaml")
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", DVC_NO_ANALYTICS="1")
    return dest, env


def test_dvc_repro_small_preset_builds_everything_and_is_deterministic(clone):
    repo, env = clone
    dvc = str(BIN / "dvc")
    _run([dvc, "repro"], repo, env)
    first = _md5s(repo)
    attack = json.loads((repo / "metrics/attack.json").read_text())
    assert attack["source"] == "synthetic"
    assert attack["clean_valid_accuracy"] > 80 and attack["attack_success_rate"] > 60
    assert attack["train_poisoned"] > 0 and attack["poison_rate"] == 0.05

    # nothing changed: DVC has nothing to do
    assert "up to date" in _run([dvc, "repro"], repo, env)
    shown = json.loads(_run([dvc, "metrics", "show", "--json"], repo, env))
    assert json.dumps(shown).count("clean_valid_accuracy") >= 1

    # same seed, forced re-run: identical files and metrics
    _run([dvc, "repro", "--force"], repo, env)
    assert _md5s(repo) == first

    # a params change re-runs the stage
    text = (repo / "params.yaml").read_text().replace("seed: 2020", "seed: 7")
    (repo / "params.yaml").write_text(text)
    status = _run([dvc, "status"], repo, env)
    assert "fetch-data" in status and "data.synthetic" in status
