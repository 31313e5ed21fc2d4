from pathlib import Path

import pytest
import yaml

from badnet_repair import params
from badnet_repair.errors import BadInput

ROOT = Path(__file__).resolve().parents[1]


def _data():
    return yaml.safe_load((ROOT / "params.yaml").read_text())["data"]


@pytest.mark.parametrize("path", ["params.yaml", "presets/small.yaml"])
def test_shipped_params_validate(path):
    data = params.load("data", ROOT / path)
    assert data["source"] == "synthetic"


def test_unknown_key_names_the_param():
    d = _data()
    d["synthetic"]["epoch"] = 3
    with pytest.raises(BadInput, match=r"unknown param 'data\.synthetic\.epoch'"):
        params.check_section("data", d)


def test_wrong_type_and_bad_enum():
    d = _data()
    d["synthetic"]["identities"] = "many"
    with pytest.raises(BadInput, match=r"'data\.synthetic\.identities' must be int"):
        params.check_section("data", d)
    d = _data()
    d["source"] = "imagenet"
    with pytest.raises(BadInput, match=r"'data\.source' is 'imagenet', expected one of"):
        params.check_section("data", d)


def test_missing_key():
    d = _data()
    del d["csaw"]["mirror"]
    with pytest.raises(BadInput, match=r"missing param 'data\.csaw\.mirror'"):
        params.check_section("data", d)


def test_stage_reports_a_bad_param_in_one_line(tmp_path):
    import subprocess
    import sys

    d = _data()
    d["source"] = "imagenet"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"data": d}))
    res = subprocess.run([sys.executable, str(ROOT / "stages" / "fetch_data.py")], cwd=tmp_path,
                         capture_output=True, text=True)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        "error: params.yaml: 'data.source' is 'imagenet', expected one of synthetic, csaw-lab3, local"]
    assert not (tmp_path / "data").exists() and not (tmp_path / "models").exists()
