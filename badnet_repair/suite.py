"""The attack suite: one BadNet per entry of suite/params.yaml, each in its own folder
under suite/badnets/, laid out as the project root and made by the project's own stage
scripts. suite/dvc.yaml (a DVC project of its own) runs them, one stage per BadNet and step;
paths here are from the repository root, where its commands run."""
from __future__ import annotations

import os
import runpy
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from .artifacts import read_json
from .errors import BadInput
from .params import PARAMS_ENV, SCHEMA, check_section

SUITE_PARAMS = "suite/params.yaml"
BADNETS = "suite/badnets"  # one folder per BadNet
STAGES = Path(__file__).resolve().parent.parent / "stages"


def entries(path=SUITE_PARAMS) -> dict:
    """The suite's BadNets: name -> the data.synthetic keys that differ from params.yaml's."""
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise BadInput(f"{path}: file not found") from None
    badnets = (doc or {}).get("badnets")
    if not isinstance(badnets, dict) or not badnets:
        raise BadInput(f"{path}: 'badnets' must map each BadNet's name to its changes")
    for name, item in badnets.items():
        known = SCHEMA["data"]["synthetic"]
        if not isinstance(item, dict) or set(item) - set(known):
            bad = sorted(set(item) - set(known)) if isinstance(item, dict) else [item]
            raise BadInput(f"{path}: 'badnets.{name}' has {bad[0]!r}; each entry changes keys of "
                           f"data.synthetic ({', '.join(known)})")
    return badnets


def badnet_params(name: str, root_params: dict, suite_path=SUITE_PARAMS) -> dict:
    """The params of one suite BadNet: the root's, with its data.synthetic changes."""
    badnets = entries(suite_path)
    if name not in badnets:
        raise BadInput(f"{suite_path}: no BadNet named {name!r} (known: {', '.join(badnets)})")
    data = dict(root_params["data"], source="synthetic")
    data["synthetic"] = {**data["synthetic"], **badnets[name]}
    check_section("data", data)
    return {**root_params, "data": data}


def run_stages(name: str, steps: list, params: dict, root=BADNETS) -> None:
    """Run stage scripts in order in the BadNet's folder, fed `params` (as its params.yaml);
    stop at the first that fails, with its exit status (it has printed why). They run in this
    process, each from a cleared Keras session, as `python stages/SCRIPT ARGS` would run them:
    a new Python per step spent about 3 s importing TensorFlow, 9 times per BadNet. With
    BADNET_REPAIR_STEP_PROCESSES=1 each runs in a Python of its own; the bytes are the same
    (tests/test_suite.py's two-clone test runs one clone so)."""
    folder = Path(root) / name
    folder.mkdir(parents=True, exist_ok=True)
    own = os.environ.get(STEP_PROCESSES, "") not in ("", "0")
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix=f".{name}.params.", dir=folder.parent) as f:
        yaml.safe_dump(params, f, sort_keys=False)
        f.flush()
        for script, *args in steps:
            print(f"{name}: {script} {' '.join(args)}".rstrip(), flush=True)
            if own:
                code = subprocess.run([sys.executable, str(STAGES / script), *args], cwd=folder,
                                      env=dict(os.environ, **{PARAMS_ENV: f.name})).returncode
            else:
                code = _run_here(STAGES / script, args, folder, {PARAMS_ENV: f.name})
            if code:
                raise SystemExit(code)


STEP_PROCESSES = "BADNET_REPAIR_STEP_PROCESSES"


def _run_here(script: Path, args: list, cwd: Path, env: dict) -> int:
    """`python script args` in `cwd` with `env` added, run in this process: its exit status."""
    from .model import keras

    keras.backend.clear_session()  # a new Python's state: layer names, Keras's seed generator
    saved = {k: os.environ.get(k) for k in env}
    argv, here = sys.argv, os.getcwd()
    os.environ.update(env)
    sys.argv = [str(script), *map(str, args)]
    os.chdir(cwd)
    try:
        runpy.run_path(str(script), run_name="__main__")
        return 0
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)  # sys.exit("message"), as Python itself would show it
        return 1
    finally:
        os.chdir(here)
        sys.argv = argv
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        sys.stdout.flush()
        sys.stderr.flush()


DEFENSE_TIMES = "metrics/defense_times.json"  # per BadNet: each defense's seconds, beside its scores


def collect_times(name: str, defense_names, root=BADNETS) -> None:
    """Each defense's wall time (models/defenses/NAME/time.json) into one small file beside
    the BadNet's scores, the one the leaderboard reads."""
    from .artifacts import DEFENSES_DIR
    from .atomic import write_json

    folder = Path(root) / name
    write_json(folder / DEFENSE_TIMES, {d: read_json(folder / DEFENSES_DIR / d / "time.json", f"defend@{name}")["seconds"]
                                        for d in defense_names})


def defenses(path=SUITE_PARAMS, known=None) -> list:
    """The defenses the suite runs on every BadNet (suite/params.yaml: defenses), each one of
    `known` when given (the stage scripts pass the defenses package's names)."""
    names = (yaml.safe_load(Path(path).read_text()) or {}).get("defenses")
    if (not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names)
            or len(set(names)) != len(names) or known is not None and set(names) - set(known)):
        raise BadInput(f"{path}: 'defenses' must list distinct defenses"
                       + (f" from {', '.join(known)}" if known is not None else ""))
    return names
