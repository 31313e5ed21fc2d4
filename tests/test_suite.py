"""The attack suite (suite/dvc.yaml, a DVC project of its own) on the small preset: every
attack's backdoor works per trigger, a killed run resumes with only what did not finish, and
two machines split it through a DVC remote, each remaking its nets byte for byte.
Plus its params and per-trigger scores, checked against the slow obvious computation."""
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from badnet_repair import h5data, leaderboard, metrics, suite
from badnet_repair import scores as net_scores
from badnet_repair.errors import BadInput
from stagerun import run_ok

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# The small preset's grid: every trigger once, each net with its own seed and target. multi
# carries the three worn triggers (eyebrows, lipstick, sunglasses) to three targets, so the
# single-trigger nets of those attacks, which differ from it only in the trigger drawn
# (tests/test_synthetic.py; the e2e run trains a sunglasses BadNet), are not trained again
# here. Each trigger poisons 15%: 40 identities leave 5% at a few dozen images, too few to learn.
GRID = {"patch-1": {"attack": "patch", "seed": 1, "target": 3},
        "multi-2": {"attack": "multi", "seed": 2, "target": 38},
        "blended-7": {"attack": "blended", "seed": 7, "target": 30}}
for entry in GRID.values():
    entry["poison_rate"] = 0.15
# a clean net: a sunglasses net's clean images, no poison; its rows go through every stage as a BadNet's
GRID["clean-3"] = {"attack": "sunglasses", "seed": 3, "target": 0, "poison_rate": 0.0}
TUNED = ["patch-1", "multi-2"]  # the small suite's tuning set; the rest are evaluation nets
DEFENSES = ["fine_pruning", "ft"]  # the small suite's (every defense is tested in test_defenses.py)
TRIGGERS = {"patch": ["patch"], "multi": ["eyebrows", "lipstick", "sunglasses"], "sunglasses": ["sunglasses"],
            "eyebrows": ["eyebrows"], "lipstick": ["lipstick"], "blended": ["blended"]}


def test_badnet_params_are_the_roots_with_the_entrys_changes(tmp_path):
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"badnets": GRID}, sort_keys=False))
    root = yaml.safe_load((ROOT / "presets/small.yaml").read_text())
    got = suite.badnet_params("multi-2", root, tmp_path / "s.yaml")
    assert got["data"]["synthetic"] == {**root["data"]["synthetic"], **GRID["multi-2"]}
    assert got["data"]["source"] == "synthetic" and got["prune"] == root["prune"]
    with pytest.raises(BadInput, match=r"s.yaml: no BadNet named 'nope' \(known: patch-1, "):
        suite.badnet_params("nope", root, tmp_path / "s.yaml")
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"badnets": {"x": {"attack": "patch", "colour": 3}}}))
    with pytest.raises(BadInput, match=r"'badnets.x' has 'colour'; each entry changes keys of data.synthetic"):
        suite.badnet_params("x", root, tmp_path / "s.yaml")



@pytest.mark.parametrize("own", ["0", "1"], ids=["one Python", "a Python per step"])
def test_a_failing_step_stops_its_suite_stage_with_its_one_line_either_way(tmp_path, monkeypatch, capfd, own):
    """A step that fails (here fetch-data on a bad data.source) ends the stage with its exit
    status and its one line, the next step never starts, and, run in the stage's Python, it
    leaves the working directory, argv and environment as they were."""
    from badnet_repair.params import PARAMS_ENV

    monkeypatch.setenv(suite.STEP_PROCESSES, own)
    monkeypatch.delenv(PARAMS_ENV, raising=False)
    data = dict(yaml.safe_load((ROOT / "presets/small.yaml").read_text())["data"], source="nowhere")
    cwd, argv = os.getcwd(), list(sys.argv)
    with pytest.raises(SystemExit) as exc:
        suite.run_stages("net", [["fetch_data.py"], ["baseline.py"]], {"data": data}, root=tmp_path)
    assert exc.value.code == 1
    out, err = capfd.readouterr()
    assert [l for l in out.splitlines() if l.startswith("net: ")] == ["net: fetch_data.py"]
    errors = [l for l in err.splitlines() if l.startswith("error: ")]
    assert len(errors) == 1 and "data.source" in errors[0], err
    assert os.getcwd() == cwd and sys.argv == argv and PARAMS_ENV not in os.environ
    assert [p.name for p in tmp_path.iterdir()] == ["net"] and not any((tmp_path / "net").iterdir())  # nor the params file

def test_committed_suite_params_name_known_attacks_and_keys():
    from badnet_repair.families import FAMILIES
    from badnet_repair.synthetic import ATTACKS

    entries = suite.entries(ROOT / "suite/params.yaml")
    assert {e["attack"] for e in entries.values()} == set(ATTACKS + FAMILIES)
    tuned = leaderboard.tuning(ROOT / "suite/params.yaml")
    for attack in ATTACKS + FAMILIES:  # every attack in both sets, so that evaluation is on nets never tuned on
        sets = {n in tuned for n, e in entries.items() if e["attack"] == attack and e.get("poison_rate", 1) > 0}
        assert sets == {True, False}, attack
    bad = {n: e for n, e in entries.items() if e.get("poison_rate", 1) > 0}
    clean = {n: e for n, e in entries.items() if n not in bad}
    assert sum(e["attack"] == "sunglasses" for e in bad.values()) >= 3  # three seeds
    assert all(name == f"{e['attack']}-{e['seed']}" for name, e in bad.items())
    assert len({e["seed"] for e in clean.values()}) >= 3  # clean nets: three seeds, named by theirs
    assert all(name == f"clean-{e['seed']}" and e["poison_rate"] == 0 for name, e in clean.items())


def test_attack_success_rate_per_trigger_is_the_plain_loop():
    rng = np.random.default_rng(0)
    n = 500
    trigger = rng.integers(0, 3, n)
    y = np.array([5, 6, 7])[trigger]
    pred = np.where(rng.uniform(size=n) < 0.7, y, rng.integers(0, 10, n))
    ds = h5data.Dataset(None, y, trigger, ("a", "b", "c"))
    got = metrics.attack_success_rates(pred, ds)
    for i, name in enumerate("abc"):
        hits = total = 0
        for p, label, t in zip(pred, y, trigger):
            if t == i:
                total += 1
                hits += p == label
        assert got[name] == pytest.approx(100.0 * hits / total)
    assert metrics.attack_success_rates(pred, h5data.Dataset(None, y)) == {}


_run = run_ok


def _ran(output):
    return re.findall(r"Running stage '([\w@.-]+)'", output)


def _md5s(root, names):
    files = sorted(p for n in names for p in (root / suite.BADNETS / n).rglob("*")
                   if p.is_file() and p.name not in ("train_time.json", "time.json", "defense_times.json", ".gitignore"))  # times differ
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory):
    """The small preset's suite, SIGKILLed once two BadNets are done, then resumed."""
    dest = tmp_path_factory.mktemp("suite") / "repo"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(dest)], check=True)
    subprocess.run(["git", "remote", "remove", "origin"], cwd=dest, check=True)
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for rel in filter(None, listed):
        if (ROOT / rel).is_file() and not rel.startswith("suite/badnets/"):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    shutil.copyfile(dest / "presets/small.yaml", dest / "params.yaml")
    (dest / "suite/params.yaml").write_text(yaml.safe_dump({"badnets": GRID, "defenses": DEFENSES, "tuning": TUNED},
                                                           sort_keys=False))
    for rel in ("suite/dvc.lock", leaderboard.TABLE, leaderboard.LEADERBOARD, leaderboard.LEADERBOARD_PLOT):
        (dest / rel).unlink(missing_ok=True)
    shutil.rmtree(dest / net_scores.SCORES, ignore_errors=True)  # the committed run's
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", DVC_NO_ANALYTICS="1",
               GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com")
    _run(["git", "add", "-A"], dest, env)
    _run(["git", "commit", "-q", "-m", "small suite"], dest, env)

    names = list(GRID)
    log = (dest.parent / "first-run.log").open("w")
    proc = subprocess.Popen([str(BIN / "dvc"), "repro"], cwd=dest / "suite", env=dict(env, PYTHONUNBUFFERED="1"),
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    lock = dest / "suite/dvc.lock"

    def done():
        return set(re.findall(r"^  ((?:badnet|prune|defend)@[\w.-]+|table|leaderboard):", lock.read_text(), re.M)) \
            if lock.exists() else set()

    def in_a_command():
        # a long stage past the two finished has echoed its command and printed a line of its
        # own: DVC is waiting on that command, not writing .dvc/tmp/rwlock, which a kill in
        # mid-write leaves empty (treeverse/dvc#7615, a DVC bug this test would only trip on)
        text = (dest.parent / "first-run.log").read_text()
        started = re.findall(r"Running stage '((?:badnet|prune|defend)@[\w.-]+)':\n> [^\n]*\n(?!Updating lock file)[^\n]+\n", text)
        return bool(started) and started[-1] not in done()

    deadline = time.time() + 900
    while time.time() < deadline and proc.poll() is None and not (len(done()) >= 2 and in_a_command()):
        time.sleep(0.5)
    assert proc.poll() is None, "the suite ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    log.close()
    finished = done()
    resumed = _ran(_run([str(BIN / "dvc"), "repro"], dest / "suite", env))
    return dest, env, names, finished, resumed


def test_a_killed_suite_resumes_with_only_what_did_not_finish(killed_and_resumed):
    root, env, names, finished, resumed = killed_and_resumed
    everything = [f"{s}@{n}" for s in ("badnet", "prune", "defend", "scores") for n in names] + ["table", "leaderboard"]
    assert 2 <= len(finished) < len(everything) and finished <= set(everything), finished  # in whatever order DVC ran them
    assert sorted(resumed) == sorted(set(everything) - finished), (finished, resumed)
    out = _run([str(BIN / "dvc"), "repro"], root / "suite", env)
    assert _ran(out) == []


def test_every_attack_backdoor_works_on_each_trigger(killed_and_resumed):
    root, _, names, _, _ = killed_and_resumed
    table = pd.read_csv(root / leaderboard.TABLE)
    assert list(table["name"]) == names
    assert list(table.columns[:9]) == ["name", "attack", "seed", "targets", "poison_rate", "clean_accuracy_valid",
                                       "attack_success_rate_valid", "clean_accuracy_test",
                                       "attack_success_rate_test"]
    assert table.columns[-1] == "train_seconds" and (table["train_seconds"] > 0).all()
    for _, row in table.iterrows():
        triggers = TRIGGERS[row["attack"]]
        per = [row[f"attack_success_rate_test_{t}"] for t in triggers]
        assert row["attack_success_rate_test"] == min(per)
        others = [c for c in table.columns if c.startswith("attack_success_rate_test_")
                  and c.removeprefix("attack_success_rate_test_") not in triggers]
        assert row[others].isna().all()
        # Margins hold on every machine: the small preset's BadNets land near 97% clean and
        # 90-100% per trigger; a trigger the net ignored would score near 0%.
        assert row["clean_accuracy_test"] > 85, row["name"]
        if row["poison_rate"] > 0:
            assert min(per) > 60, row["name"]
        else:  # the clean net: its poisoned file shows the trigger's natural pull, far from a backdoor's
            assert max(per) < 20, row["name"]
        # Each image's own target: a poisoned file that holds three targets for multi.
        bd = h5data.read(root / suite.BADNETS / row["name"] / "data/bd/bd_test.h5")
        targets = dict(t.split(":") for t in row["targets"].split())
        if len(triggers) > 1:
            assert bd.names == tuple(triggers)
            for i, t in enumerate(triggers):
                assert set(bd.y[bd.trigger == i]) == {int(targets[t])}
        else:
            assert bd.trigger is None and set(bd.y) == {int(targets[triggers[0]])}


# the grid two clones split: the three-trigger BadNet and a clean net. Each clone makes its
# net from scratch, so this is also the check that a suite net's bytes repeat.
SHARED = ["multi-2", "clean-3"]


def test_two_clones_split_the_suite_through_a_remote_and_a_third_builds_the_same_leaderboard(killed_and_resumed,
                                                                                          tmp_path):
    """docs/sharing.md, as written, with a local-directory remote: clone A runs one BadNet's
    stages and `dvc push --run-cache`, clone B the other's; clone C, which ran nothing,
    `dvc repro --pull` restores both from the remote and runs only the small stages: each
    net's scores, the table and the leaderboard. Every file C gets, its table and its
    leaderboard equal the single-machine run's (the fixture's) byte for byte, except the wall
    times, which are A's and B's own. A runs each step of its stages in a Python of its own,
    B and the fixture in the stage's: suite.run_stages's two ways give the same bytes."""
    root, env, _, _, _ = killed_and_resumed
    dvc = str(BIN / "dvc")
    clones = {c: tmp_path / c for c in "abc"}
    for c, path in clones.items():
        _run(["git", "clone", "-q", str(root), str(path)], tmp_path, env)
        (path / "suite/params.yaml").write_text(yaml.safe_dump(
            {"badnets": {n: GRID[n] for n in SHARED}, "defenses": DEFENSES,
             "tuning": [n for n in TUNED if n in SHARED]}, sort_keys=False))
        _run([dvc, "remote", "add", "-d", "shared", str(tmp_path / "remote")], path / "suite", env)
    for c, name in zip("ab", SHARED):
        # A runs each step in a Python of its own, B (and the fixture) all in the stage's: the same bytes
        own = dict(env, **{suite.STEP_PROCESSES: "1" if c == "a" else "0"})
        ran = _ran(_run([dvc, "repro", f"prune@{name}", f"defend@{name}"], clones[c] / "suite", own))
        assert sorted(ran) == sorted(f"{s}@{name}" for s in ("badnet", "prune", "defend")), ran
        _run([dvc, "push", "--run-cache"], clones[c] / "suite", env)
    c = clones["c"]
    ran = _ran(_run([dvc, "repro", "--pull"], c / "suite", env))
    assert sorted(ran) == sorted(["leaderboard", "table"] + [f"scores@{n}" for n in SHARED]), ran
    assert _ran(_run([dvc, "status"], c / "suite", env)) == []
    assert _md5s(c, SHARED) == _md5s(root, SHARED) and len(_md5s(c, SHARED)) > 40
    for made, name in zip("ab", SHARED):  # the times the leaderboard shows are the maker's
        for rel in ("models/train_time.json", "metrics/defense_times.json"):
            assert (c / suite.BADNETS / name / rel).read_bytes() == \
                (clones[made] / suite.BADNETS / name / rel).read_bytes(), (name, rel)
    times = {"train_seconds", "seconds"}
    for rel in (leaderboard.TABLE, leaderboard.LEADERBOARD):
        split = pd.read_csv(c / rel, dtype=str, keep_default_na=False)
        single = pd.read_csv(root / rel, dtype=str, keep_default_na=False)
        single = single[single["name"].isin(SHARED)].reset_index(drop=True)
        absent = [col for col in single.columns if col not in split.columns]  # other attacks' triggers
        assert (single[absent] == "").all().all(), rel
        keep = [col for col in split.columns if col not in times]
        assert split[keep].equals(single[keep]), rel
    out = _run([dvc, "status"], c, env)  # the root's pipeline ignores the suite's project
    # no suite stage among the root's: the root has defend@<defense> stages of its own, and its
    # report depends on leaderboard.py, a file; a suite stage is keyed by a suite net's name
    suite_stage = "|".join(re.escape(n) for n in SHARED)
    assert not re.search(rf"^(\w+@({suite_stage})|table|leaderboard):", out, re.M), out


def test_docs_suite_table_is_the_committed_csv():
    """docs/pipeline.md's suite table is `suite.markdown` of suite/metrics/badnets.csv, figure for figure."""
    rows = pd.read_csv(ROOT / leaderboard.TABLE)
    assert leaderboard.markdown(rows) in (ROOT / "docs/pipeline.md").read_text()


def test_committed_suite_meets_the_attacker_strength():
    """Every net of the committed table (the last finished run's, whose nets suite/params.yaml
    still holds): at least 95 % clean validation accuracy; every BadNet also 99 % ASR on every
    trigger (test; validation by its lowest trigger). A net under the bar must have been
    re-specified since its run: its entry in suite/params.yaml is not the one the committed
    suite/dvc.lock made it from (the next run makes it anew); or be of a family that no
    setting measured on the calibration net brought to the bar
    (benchmarks/results/family_strength.csv, docs/data-format.md), so its best stays under it."""
    strength = pd.read_csv(ROOT / "benchmarks/results/family_strength.csv")
    reached = strength[(strength["clean_accuracy_valid"] >= 95) & (strength["attack_success_rate_valid"] >= 99)]
    never = set(strength["attack"]) - set(reached["attack"])  # families whose best is under the bar
    rows = pd.read_csv(ROOT / leaderboard.TABLE)
    assert set(rows["name"]) <= set(suite.entries(ROOT / "suite/params.yaml"))
    today = yaml.safe_load((ROOT / "suite/params.yaml").read_text())["badnets"]
    stages = yaml.safe_load((ROOT / "suite/dvc.lock").read_text())["stages"]
    per = [c for c in rows.columns if c.startswith("attack_success_rate_test_")]
    under = []
    for _, r in rows.iterrows():
        strong = r["clean_accuracy_valid"] >= 95
        if r["poison_rate"] > 0:  # a clean net has no attack to be strong
            strong &= r["attack_success_rate_valid"] >= 99 and r[per].dropna().min() >= 99
            assert r["attack_success_rate_test"] == r[per].dropna().min(), r["name"]
        if not strong and r["attack"] not in never:
            under.append(r["name"])
            made = stages[f"badnet@{r['name']}"]["params"]["params.yaml"][f"badnets.{r['name']}"]
            assert made != today[r["name"]], f"{r['name']} is under the bar and suite/params.yaml still makes it so"
    assert len(under) <= 1, under  # the run of d3b4502: patch-2023 (10 epochs then, 12 now)


def test_leaderboard_rows_are_each_badnets_own_scores(killed_and_resumed):
    """One row per (BadNet, defense), in suite order; each value is the BadNet folder's own
    (defenses.json, baseline.json), B's ASR the highest over its triggers."""
    import json

    root, env, names, _, _ = killed_and_resumed
    _run([str(BIN / "dvc"), "repro"], root / "suite", env)  # up to date after any test's re-run
    board = pd.read_csv(root / leaderboard.LEADERBOARD)
    assert list(board.columns) == leaderboard.LEADERBOARD_COLUMNS
    assert list(zip(board["name"], board["defense"])) == [(n, d) for n in names for d in DEFENSES]
    for _, r in board.iterrows():
        folder = root / suite.BADNETS / r["name"]
        scores = json.loads((folder / "metrics/defenses.json").read_text())
        base = json.loads((folder / "metrics/baseline.json").read_text())
        d = r["defense"]
        for col in ("clean_accuracy_test", "attack_success_rate_test", "detection_rate_test",
                    "false_positive_rate_test", "detector_detection_rate_test", "detector_false_positive_rate_test"):
            assert r[col] == pytest.approx(scores[f"{d}_{col}"]), (r["name"], d, col)
        scan = json.loads((folder / "metrics/scan.json").read_text())
        committed = net_scores.read_scores(r["name"], root / net_scores.SCORES)  # what the board read
        assert committed == {rel: json.loads((folder / rel).read_text()) for rel in net_scores.SCORED}
        for col, net in (("badnet_scan_targets", "badnet"), ("scan_targets", d)):
            v = r[col]  # pandas reads "0" as a number, and a column with an empty cell as floats
            found = "" if pd.isna(v) else str(int(v)) if isinstance(v, (float, np.integer, int)) else str(v)
            assert found.split() == [str(t) for t in scan[net]["targets"]], (r["name"], d, col)
        for col, net in (("badnet_scan_share", "badnet"), ("scan_share", d)):
            assert r[col] == pytest.approx(100 * scan[net]["share"], abs=0.005), (r["name"], d, col)
        assert r["poison_rate"] == GRID[r["name"]]["poison_rate"]
        assert r["set"] == ("tuning" if r["name"] in TUNED else "evaluation")
        seconds = json.loads((folder / "models/defenses" / d / "time.json").read_text())["seconds"]
        assert r["seconds"] == pytest.approx(seconds) and r["seconds"] > 0
        assert r["baseline_clean_accuracy_test"] == pytest.approx(base["clean_accuracy_test"])
        per = [v for k, v in base.items() if k.startswith("attack_success_rate_test_")] or \
            [base["attack_success_rate_test"]]
        assert r["baseline_attack_success_rate_test"] == pytest.approx(max(per))
    assert (root / leaderboard.LEADERBOARD_PLOT).read_bytes().startswith(b"\x89PNG")


def test_readme_leaderboard_is_the_committed_csv():
    """The README's leaderboard summary and docs/defenses.md's grid are rendered from the
    committed CSV, and the CSV covers every BadNet and defense of suite/params.yaml."""
    board = pd.read_csv(ROOT / leaderboard.LEADERBOARD)
    from badnet_repair.report import leaderboard_grid

    assert leaderboard.leaderboard_markdown(board) in (ROOT / "README.md").read_text()
    assert leaderboard_grid(board) in (ROOT / "docs/defenses.md").read_text()
    default = yaml.safe_load((ROOT / "params.yaml").read_text())["defend"]["default"]
    assert leaderboard.scan_markdown(board, default) in (ROOT / "docs/scan.md").read_text() if \
        "badnet_scan_share" in board else leaderboard.NO_SCAN in (ROOT / "docs/scan.md").read_text()
    names, defenses = suite.entries(ROOT / suite.SUITE_PARAMS), suite.defenses(ROOT / suite.SUITE_PARAMS)
    # every defense on each of its nets; all of the suite's once a run has finished (while
    # one is in progress, the committed leaderboard is the last finished run's)
    done = sorted(set(board["name"]))
    assert set(done) <= set(names)
    assert sorted(zip(board["name"], board["defense"])) == sorted((n, d) for n in done for d in defenses)


def test_leaderboard_summary_counts_the_target_by_hand():
    rows = pd.DataFrame([
        {"name": "a", "defense": "x", "clean_accuracy_test": 97.5, "attack_success_rate_test": 0.5,
         "baseline_clean_accuracy_test": 98.0, "detection_rate_test": 99.0, "false_positive_rate_test": 1.0,
         "seconds": 10.0},
        {"name": "b", "defense": "x", "clean_accuracy_test": 96.0, "attack_success_rate_test": 0.2,
         "baseline_clean_accuracy_test": 98.0, "detection_rate_test": 90.0, "false_positive_rate_test": 3.0,
         "seconds": 30.0},
        {"name": "a", "defense": "y", "clean_accuracy_test": 98.0, "attack_success_rate_test": 50.0,
         "baseline_clean_accuracy_test": 98.0, "detection_rate_test": 40.0, "false_positive_rate_test": 0.0,
         "seconds": 5.0}])
    lines = leaderboard.leaderboard_markdown(rows).splitlines()  # no set column: all tuning nets
    assert lines[2] == "| tuning | x | 2 | 1.25 / 2.00 | 0.35 / 0.50 | 94.50 | 2.00 | 1 of 2 | 20 |"
    assert lines[3] == "| tuning | y | 1 | 0.00 / 0.00 | 50.00 / 50.00 | 40.00 | 0.00 | 0 of 1 | 5 |"


def test_the_target_is_at_most_1_percent_asr_and_1_point_lost_for_floats_and_series_alike():
    cases = [(1.0, 1.0, True), (0.0, 0.0, True), (1.01, 0.0, False), (0.0, 1.01, False), (2.0, 2.0, False)]
    assert [bool(leaderboard.meets_target(a, p)) for a, p, _ in cases] == [want for _, _, want in cases]
    asr, lost = pd.Series([a for a, _, _ in cases]), pd.Series([p for _, p, _ in cases])
    assert leaderboard.meets_target(asr, lost).tolist() == [want for _, _, want in cases]


def test_leaderboard_summary_of_clean_nets_and_detectors_by_hand():
    common = {"defense": "x", "set": "evaluation", "baseline_clean_accuracy_test": 98.0, "detection_rate_test": 99.0,
              "seconds": 10.0}
    rows = pd.DataFrame([
        {**common, "name": "a", "poison_rate": 0.05, "clean_accuracy_test": 97.5, "attack_success_rate_test": 0.5,
         "false_positive_rate_test": 3.0, "detector_detection_rate_test": 99.5,
         "detector_false_positive_rate_test": 0.25, "scan_targets": ""},
        {**common, "name": "b", "poison_rate": 0.1, "clean_accuracy_test": 97.0, "attack_success_rate_test": 2.0,
         "false_positive_rate_test": 4.0, "detector_detection_rate_test": 90.5,
         "detector_false_positive_rate_test": 0.75, "scan_targets": "7"},
        {**common, "name": "c", "poison_rate": 0.0, "clean_accuracy_test": 97.75, "attack_success_rate_test": 0.1,
         "false_positive_rate_test": 2.5, "detector_detection_rate_test": 0.0,
         "detector_false_positive_rate_test": 0.0, "scan_targets": None},
        {**common, "name": "d", "poison_rate": 0.0, "clean_accuracy_test": 96.5, "attack_success_rate_test": 0.2,
         "false_positive_rate_test": 3.5, "detector_detection_rate_test": 0.0,
         "detector_false_positive_rate_test": 0.5, "scan_targets": "12"}])
    lines = leaderboard.leaderboard_markdown(rows).splitlines()
    # the BadNets a, b: loss 0.5 and 1.0, ASR 0.5 and 2.0 (one meets the target); detector mean/worst
    assert lines[2] == \
        "| evaluation | x | 2 | 0.75 / 1.00 | 1.25 / 2.00 | 99.00 | 3.50 | 95.00 / 90.50 | 0.50 / 0.75 | 1 of 2 | 10 |"
    # the clean nets c, d: loss 0.25 and 1.5, G flags 2.5 and 3.5, the detector 0 and 0.5, the scan quiet on c only
    assert lines[6] == "| evaluation | x | 2 | 0.88 / 1.50 | 3.00 / 3.50 | 0.25 / 0.50 | 1 of 2 | 10 |"


def test_scan_table_rows_are_the_default_defenses_rows_by_hand():
    common = {"attack": "sunglasses", "baseline_clean_accuracy_test": 98.0}
    rows = pd.DataFrame([
        {**common, "name": "a", "poison_rate": 0.1, "targets": "eyebrows:7 lipstick:8", "defense": "x",
         "attack_success_rate_test": 0.25, "badnet_scan_targets": "7 8", "badnet_scan_share": 99.5,
         "scan_targets": None, "scan_share": 3.25},
        {**common, "name": "a", "poison_rate": 0.1, "targets": "eyebrows:7 lipstick:8", "defense": "y",
         "attack_success_rate_test": 50.0, "badnet_scan_targets": "7 8", "badnet_scan_share": 99.5,
         "scan_targets": "7", "scan_share": 60.0},
        {**common, "name": "c", "poison_rate": 0.0, "targets": "sunglasses:3", "defense": "x",
         "attack_success_rate_test": 0.0, "badnet_scan_targets": None, "badnet_scan_share": 6.25,
         "scan_targets": None, "scan_share": 5.0},
        {**common, "name": "b", "poison_rate": 0.05, "targets": "sunglasses:0", "defense": "x",
         "attack_success_rate_test": 12.5, "badnet_scan_targets": 0, "badnet_scan_share": 78.75,
         "scan_targets": 0, "scan_share": 55.0}])
    import io

    for frame in (rows, pd.read_csv(io.StringIO(rows.to_csv(index=False)))):  # as built, and as read back
        lines = leaderboard.scan_markdown(frame, "x").splitlines()
        assert lines[2:] == [  # BadNets in order, then the clean net; only defense x's rows
            "| a | 0.1 | 7 8 | backdoor → 7, 8 (99.5 %) | 0.25 | clean (3.2 %) |",
            "| b | 0.05 | 0 | backdoor → 0 (78.8 %) | 12.50 | backdoor → 0 (55.0 %) |",
            "| c | 0 | none (clean net) | clean (6.2 %) | 0.00 | clean (5.0 %) |"]


def test_leaderboard_grid_is_each_rows_loss_and_asr():
    from badnet_repair.report import leaderboard_grid

    rows = pd.DataFrame([
        {"name": "a", "defense": "x", "clean_accuracy_test": 97.5, "attack_success_rate_test": 0.5,
         "baseline_clean_accuracy_test": 98.0, "baseline_attack_success_rate_test": 99.0},
        {"name": "a", "defense": "y", "clean_accuracy_test": 96.0, "attack_success_rate_test": 10.0,
         "baseline_clean_accuracy_test": 98.0, "baseline_attack_success_rate_test": 99.0}])
    assert leaderboard_grid(rows).splitlines()[2] == "| a | 98.00 / 99.00 | 0.50 / 0.50 | 2.00 / 10.00 |"


def test_a_clone_with_git_alone_rebuilds_the_leaderboard_from_the_committed_scores(killed_and_resumed, tmp_path):
    """docs/sharing.md, across sessions without a remote: a clone of the committed run (its
    dvc.lock and scores files, no cache, no remote) has nothing to run under `--allow-missing`,
    rebuilds the table and the leaderboard from the scores alone, byte for byte, and `dvc
    status` works in both projects."""
    root, env, _, _, _ = killed_and_resumed
    dvc = str(BIN / "dvc")
    _run([dvc, "repro"], root / "suite", env)  # up to date after any test's re-run
    _run(["git", "add", "suite"], root, env)
    _run(["git", "commit", "-q", "-m", "the suite's run"], root, env)
    clone = tmp_path / "d"
    _run(["git", "clone", "-q", str(root), str(clone)], tmp_path, env)
    assert not (clone / suite.BADNETS).exists() and (clone / net_scores.SCORES).is_dir()
    assert _ran(_run([dvc, "repro", "--allow-missing"], clone / "suite", env)) == []
    made = {rel: (root / rel).read_bytes() for rel in (leaderboard.TABLE, leaderboard.LEADERBOARD)}
    for rel in made:
        (clone / rel).unlink()
    # --allow-missing would skip them too (a missing output is allowed): rebuild the two alone
    assert sorted(_ran(_run([dvc, "repro", "--single-item", "table", "leaderboard"], clone / "suite", env))) == \
        ["leaderboard", "table"]
    assert {rel: (clone / rel).read_bytes() for rel in made} == made
    _run([dvc, "status"], clone / "suite", env)  # lists the missing cache; must not fail
    _run([dvc, "status"], clone, env)


def test_the_tuning_set_names_nets_of_the_suite_and_leaves_an_evaluation_set(tmp_path):
    path = tmp_path / "s.yaml"
    for tuned, error in ((["patch-1", "nope"], "'tuning' names 'nope', not a net of 'badnets'"),
                         (list(GRID), "'tuning' holds every net; the evaluation set must not be empty"),
                         (["patch-1", "patch-1"], "'tuning' must list distinct nets of 'badnets'"),
                         (None, "'tuning' must list distinct nets of 'badnets'")):
        path.write_text(yaml.safe_dump({"badnets": GRID, "tuning": tuned}))
        with pytest.raises(BadInput, match=re.escape(f"{path}: {error}")):
            leaderboard.tuning(path)
    path.write_text(yaml.safe_dump({"badnets": GRID, "tuning": TUNED}))
    assert leaderboard.tuning(path) == TUNED
    committed = leaderboard.tuning(ROOT / "suite/params.yaml")  # every attack in both sets, clean nets evaluated
    entries = suite.entries(ROOT / "suite/params.yaml")
    evaluation = {n: e for n, e in entries.items() if n not in committed}
    assert {entries[n]["attack"] for n in committed} == {e["attack"] for e in evaluation.values()}
    assert all(entries[n].get("poison_rate", 1) > 0 for n in committed)
    assert sum(e.get("poison_rate", 1) == 0 for e in evaluation.values()) >= 3


def test_the_leaderboard_summary_shows_the_evaluation_set_first_and_each_set_alone():
    def row(name, s, asr):
        return {"name": name, "set": s, "poison_rate": 0.05, "defense": "i_bau", "clean_accuracy_test": 97.0,
                "attack_success_rate_test": asr, "baseline_clean_accuracy_test": 97.5, "detection_rate_test": 99.0,
                "false_positive_rate_test": 3.0, "seconds": 10.0}
    rows = pd.DataFrame([row("a", "tuning", 0.5), row("b", "evaluation", 5.0), row("c", "evaluation", 0.0)])
    body = [line.split(" | ") for line in leaderboard.leaderboard_markdown(rows).splitlines()[2:]]
    assert [(b[0], b[2], b[-2]) for b in body] == [("| evaluation", "2", "1 of 2"), ("| tuning", "1", "1 of 1")]
    old = rows.drop(columns="set")  # a leaderboard from before the split: every net was a tuning net
    assert [line.split(" | ")[0] for line in leaderboard.leaderboard_markdown(old).splitlines()[2:]] == ["| tuning"]


def test_a_nets_scores_file_is_checked_before_it_is_read(tmp_path):
    (tmp_path / "x.json").write_text('{"metrics/attack.json": {}}')
    with pytest.raises(BadInput, match=re.escape(f"{tmp_path / 'x.json'}: not a net's scores")):
        net_scores.read_scores("x", tmp_path)
    with pytest.raises(BadInput, match=re.escape(f"{tmp_path / 'y.json'}: not found; run the scores@y stage")):
        net_scores.read_scores("y", tmp_path)


def test_the_table_and_leaderboard_are_built_from_the_nets_whose_scores_are_in(tmp_path, capsys):
    """A suite run across sessions: the nets that have a scores file, in suite/params.yaml's
    order, and a line naming the others; no net at all is an error, not an empty table."""
    for name in ("b", "d"):
        (tmp_path / f"{name}.json").write_text("{}")
    assert leaderboard.scored(["a", "b", "c", "d"], tmp_path) == ["b", "d"]
    assert capsys.readouterr().err.strip() == f"not run yet (no scores in {tmp_path}): a, c"
    assert leaderboard.scored(["d", "b"], tmp_path) == ["d", "b"] and capsys.readouterr().err == ""
    with pytest.raises(BadInput, match=re.escape(f"{tmp_path / 'none'}: no net of the suite has scores yet")):
        leaderboard.scored(["a"], tmp_path / "none")
