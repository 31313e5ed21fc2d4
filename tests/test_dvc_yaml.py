"""dvc.yaml declares what each stage runs: every package module its script imports (directly
or through other modules, function-level imports included) and the params it reads."""
import re

import pytest
import yaml

from imports import ROOT, closure

PIPELINES = {"": "dvc.yaml", "suite/dvc.yaml:": "suite/dvc.yaml"}


def _stages():
    for prefix, path in PIPELINES.items():
        for name, stage in yaml.safe_load((ROOT / path).read_text())["stages"].items():
            yield prefix + name, stage.get("do", stage)  # foreach stages: their template


def _scripts(stage) -> list:
    """The stage's script, and the project stage scripts it runs in turn (the suite's
    stages run them by name: suite.run_stages)."""
    script = re.match(r"(?:cd \.\. && )?python (stages/\w+\.py)", stage["cmd"]).group(1)
    return [script] + [f"stages/{s}" for s in re.findall(r'\["(\w+\.py)"', (ROOT / script).read_text())]


def test_suite_stages_run_the_projects_own_stage_scripts():
    assert _scripts({"cmd": "python stages/suite_prune.py x"}) == [
        "stages/suite_prune.py", "stages/activations.py", "stages/prune_sweep.py", "stages/export_variants.py",
        "stages/evaluate_repaired.py"]


def _runs(name, stage) -> set:
    """What the stage runs. A defend@NAME stage also runs its defense's module: the template
    names it (defenses/${item}.py) and declares what every defense module imports besides;
    the suite's defend stage runs every defense."""
    from badnet_repair import defenses

    runs = set().union(*(closure(s) for s in _scripts(stage)))
    modules = {n: f"badnet_repair/defenses/{n}.py" for n in defenses.names()}
    if name == "defend":
        runs |= set().union(*(closure(m) - {m} for m in modules.values())) | {"badnet_repair/defenses/${item}.py"}
    if name == "suite/dvc.yaml:defend":
        runs |= set().union(*(closure(m) for m in modules.values()))
    return runs


@pytest.mark.parametrize("name,stage", list(_stages()), ids=[n for n, _ in _stages()])
def test_stage_declares_exactly_the_modules_it_runs(name, stage):
    runs = _runs(name, stage)
    # the suite's stages are declared from suite/ (its own DVC project), run from the root
    declared = {d.removeprefix("../") for d in stage["deps"] if isinstance(d, str) and d.endswith(".py")}
    assert declared == runs, (f"{name}: missing {sorted(runs - declared)}, "
                              f"not imported {sorted(declared - runs)}")


def _root_params(name, stage) -> list:
    """The keys of the root's params.yaml a stage declares: plain names at the root, names
    under ../params.yaml in the suite's project (where plain names are suite/params.yaml's)."""
    listed = stage.get("params", [])
    if name.startswith("suite/"):
        return [k for p in listed if isinstance(p, dict) for k in p.get("../params.yaml", [])]
    return [p for p in listed if isinstance(p, str)]


@pytest.mark.parametrize("name,stage", list(_stages()), ids=[n for n, _ in _stages()])
def test_stage_declares_the_params_sections_it_reads(name, stage):
    script = _scripts(stage)[0]
    read = set(re.findall(r'params\.load\("(\w+)"\)', (ROOT / script).read_text()))
    declared = {p.split(".")[0] for p in _root_params(name, stage)}
    assert declared == read, name


def test_the_closure_follows_function_level_and_relative_imports():
    """The check itself can fail: fine-prune reaches finetune only through a function-level
    import in variants, and pruning only through a relative import there."""
    deps = closure("stages/fine_prune.py")
    assert {"badnet_repair/finetune.py", "badnet_repair/pruning.py", "badnet_repair/graph.py"} <= deps
    assert "badnet_repair/download.py" not in deps and "badnet_repair/synthetic.py" not in deps


def test_a_defense_stage_depends_on_its_own_module_and_section_not_on_the_list_or_the_default():
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["defend"]["do"]
    assert "defend.names" not in stage["params"] and "defend.default" not in stage["params"]
    assert "defend.${item}" in stage["params"] and "defend" not in stage["params"]
    mods = [d for d in stage["deps"] if d.startswith("badnet_repair/defenses/")]
    assert "badnet_repair/defenses/${item}.py" in mods
    from badnet_repair import defenses

    assert not {f"badnet_repair/defenses/{n}.py" for n in defenses.names()} & set(mods)  # no other defense's


def test_the_closure_follows_sub_packages_and_the_registry_imports_no_defense():
    deps = closure("badnet_repair/defenses/nad.py")
    assert {"badnet_repair/defenses/__init__.py", "badnet_repair/defenses/base.py", "badnet_repair/training.py",
            "badnet_repair/pruning.py"} <= deps
    assert "badnet_repair/defenses/ft.py" not in deps
    assert closure("badnet_repair/defenses/__init__.py") <= {"badnet_repair/__init__.py",
                                                              "badnet_repair/defenses/__init__.py",
                                                              "badnet_repair/errors.py", "badnet_repair/params.py"}


def test_the_in_process_runs_take_every_stage_of_dvc_yaml_after_fetch_data():
    """tests/stagerun.after_fetch stands in for `dvc repro` in the fast tests; a stage added to
    dvc.yaml and missing there (as scan once was) fails here, not in a 10-minute fixture."""
    from stagerun import after_fetch

    stages = list(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"])
    ran = list(dict.fromkeys(name.replace("_", "-") for name, *_ in after_fetch([1.0])))
    assert ran == [s for s in stages if s not in ("fetch-data", "plots-template")]


def test_the_committed_lock_holds_every_code_dep_at_its_file_s_hash():
    """dvc.lock (the default run's) records each stage's code at the hash of the file as
    committed, so a fresh clone's `dvc status` lists outputs to make, not code that changed
    since the run. After editing a module, run `dvc repro` and commit dvc.lock (or, where
    only the file moved on, its md5 and size there)."""
    import hashlib

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    current = set()  # the stages dvc.yaml makes from params.yaml (the lock also keeps older runs' entries)
    for name, stage in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items():
        items = {"${prune.thresholds}": params["prune"]["thresholds"],
                 "${defend.names}": params["defend"]["names"]}.get(stage.get("foreach"))
        current |= {f"{name}@{x}" for x in items} if items is not None else {name}
    lock = yaml.safe_load((ROOT / "dvc.lock").read_text())["stages"]
    assert current <= set(lock), sorted(current - set(lock))
    stale = []
    for name in sorted(current):
        for dep in lock[name].get("deps", []):
            path = ROOT / dep["path"]
            if dep["path"].endswith(".py") and path.is_file():
                data = path.read_bytes()
                if dep["md5"] != hashlib.md5(data).hexdigest() or dep["size"] != len(data):
                    stale.append(f"{name}: {dep['path']}")
    assert not stale, stale
