"""dvc.yaml declares what each stage runs: every package module its script imports (directly
or through other modules, function-level imports included) and the params it reads."""
import re

import pytest
import yaml

from imports import ROOT, closure

DVC_YAML = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def _stages():
    for name, stage in DVC_YAML.items():
        yield name, stage.get("do", stage)  # foreach stages: their template


@pytest.mark.parametrize("name,stage", list(_stages()), ids=[n for n, _ in _stages()])
def test_stage_declares_exactly_the_modules_it_runs(name, stage):
    script = re.match(r"python (stages/\w+\.py)", stage["cmd"]).group(1)
    declared = {d for d in stage["deps"] if isinstance(d, str) and d.endswith(".py")}
    assert declared == closure(script), (f"{name}: missing {sorted(closure(script) - declared)}, "
                                         f"not imported {sorted(declared - closure(script))}")


@pytest.mark.parametrize("name,stage", list(_stages()), ids=[n for n, _ in _stages()])
def test_stage_declares_the_params_sections_it_reads(name, stage):
    script = re.match(r"python (stages/\w+\.py)", stage["cmd"]).group(1)
    read = set(re.findall(r'params\.load\("(\w+)"\)', (ROOT / script).read_text()))
    declared = {p.split(".")[0] for p in stage.get("params", [])}
    assert declared == read, name


def test_the_closure_follows_function_level_and_relative_imports():
    """The check itself can fail: fine-prune reaches finetune only through a function-level
    import in variants, and pruning only through a relative import there."""
    deps = closure("stages/fine_prune.py")
    assert {"badnet_repair/finetune.py", "badnet_repair/pruning.py", "badnet_repair/graph.py"} <= deps
    assert "badnet_repair/download.py" not in deps and "badnet_repair/synthetic.py" not in deps
