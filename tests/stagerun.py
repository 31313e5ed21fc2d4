"""Run the pipeline's stage scripts in-process, as `dvc repro` would run them (same scripts,
same arguments), without DVC and without a new Python per stage."""
import contextlib
import io
import os
import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_stage(name, root, *args):
    """Run stages/<name>.py with `args` in `root`: (exit code, stderr lines)."""
    err = io.StringIO()
    cwd, argv = os.getcwd(), sys.argv
    os.chdir(root)
    sys.argv = [str(ROOT / "stages" / f"{name}.py"), *map(str, args)]
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            runpy.run_path(sys.argv[0], run_name="__main__")
        code = 0
    except SystemExit as exc:
        code = exc.code
    finally:
        os.chdir(cwd)
        sys.argv = argv
    return code, [line for line in err.getvalue().splitlines() if line.strip() and "%|" not in line]  # no tqdm bars


def after_fetch(thresholds, defenses=("fine_pruning", "ft")):
    """The stages after fetch-data, with the per-threshold and per-defense ones once per X
    and defense, in dvc.yaml's order (tests/test_dvc_yaml.py holds the two to the same stages)."""
    return ([("baseline",), ("activations",), ("prune_sweep",), ("prune_orders",), ("orders_kept",)]
            + [("export_variants", f"{x:g}") for x in thresholds]
            + [("fine_prune", f"{x:g}") for x in thresholds]
            + [("evaluate_repaired",)] + [("defend", d) for d in defenses] + [("scan",), ("evaluate_defenses",), ("detector",), ("report",)])


def run_ok(cmd, cwd, env):
    """Run a command (dvc, git) and return its output; fail the test, with the output, if it fails."""
    import subprocess

    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert res.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{res.stdout[-5000:]}\n{res.stderr[-5000:]}"
    return res.stdout + res.stderr
