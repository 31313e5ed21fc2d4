"""End to end: the real `dvc` on the small preset, in a temporary git clone."""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from stagerun import run_ok

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
THRESHOLDS = [2, 4, 10]  # the small preset's
DEFENSES = ["fine_pruning", "ft"]  # and its defenses
DEFENSES_DEFAULT = "fine_pruning"


def _stages(thresholds):
    """Every stage of dvc.yaml in the order `dvc repro` runs them, for these thresholds."""
    return (["fetch-data", "baseline", "activations", "prune-sweep", "prune-orders", "orders-kept"]
            + [f"export-variants@{x}" for x in thresholds] + [f"fine-prune@{x}" for x in thresholds]
            + ["evaluate-repaired"] + [f"defend@{d}" for d in DEFENSES]
            + ["scan", "evaluate-defenses", "detector", "report", "plots-template"])


STAGES = _stages(THRESHOLDS)
OUTS = ["data/cl/valid.h5", "data/cl/test.h5", "data/bd/bd_valid.h5", "data/bd/bd_test.h5",
        "models/badnet.h5", "models/badnet.json", "metrics/attack.json", "plots/samples.png",
        "metrics/baseline.json", "data/activations.h5", "plots/channel_scores.csv",
        "plots/prune_sweep.csv", "plots/prune_sweep.png", "plots/prune_orders.csv", "plots/prune_orders.png",
        "metrics/prune_orders.json",
        "plots/detector.csv", "plots/detector.png",
        "plots/fine_prune_history.csv", "metrics/fine_prune.json", "metrics/repaired.json", "metrics/results.md",
        "plots/repaired.png", "metrics/defenses.json", "metrics/scan.json", "models/detector.keras",
        "plots/report.html",
        "plots/plots_template.html"]
GIT_OUTS = [p for p in OUTS if p.startswith(("metrics/", "plots/")) and not p.endswith(".html")]
RESTORE = ["git", "checkout", "--", "metrics", "plots"]  # with `dvc checkout`: docs/reliability.md's restore line


_run = run_ok


def _ran(output):
    return re.findall(r"Running stage '([\w@.-]+)'", output)


def _same_run(ran, expected):
    """The same stages, each after the stages it depends on. DVC promises no order beyond
    that (it changed when suite/dvc.yaml joined the repository)."""
    assert sorted(ran) == sorted(expected), (ran, expected)
    at = {s: i for i, s in enumerate(ran)}
    xs = [s.split("@")[1] for s in ran if s.startswith("export-variants@")]
    edges = [("fetch-data", "baseline"), ("fetch-data", "activations"), ("activations", "prune-sweep"), ("activations", "prune-orders"), ("prune-orders", "orders-kept"),
             ("orders-kept", "report"),
             ("baseline", "report"), ("evaluate-repaired", "report"), ("evaluate-defenses", "report"),
             ("scan", "report"), ("scan", "evaluate-defenses"), ("scan", "detector")]
    edges += [e for d in DEFENSES for e in (("fetch-data", f"defend@{d}"), (f"defend@{d}", "evaluate-defenses"),
                                            (f"defend@{d}", "scan"))]
    edges += [(f"defend@{DEFENSES_DEFAULT}", "detector")]
    edges += [e for x in xs for e in (("prune-sweep", f"export-variants@{x}"),
                                      (f"export-variants@{x}", f"fine-prune@{x}"),
                                      (f"fine-prune@{x}", "evaluate-repaired"))]
    for a, b in edges:
        if a in at and b in at:
            assert at[a] < at[b], f"{b} ran before {a}: {ran}"
    return True


def _md5s(root):
    """Every output, the exported B' and G files of the thresholds in params.yaml included."""
    import yaml

    xs = yaml.safe_load((root / "params.yaml").read_text())["prune"]["thresholds"]
    files = OUTS + sorted(str(p.relative_to(root)) for d in ("models/variants", "models/fine_pruned")
                          for x in xs for p in (root / d / str(x)).iterdir())
    files += sorted(str(p.relative_to(root)) for p in (root / "models/defenses").rglob("*")
                    if p.is_file() and p.name != "time.json")  # wall time: the one file that differs
    return {p: hashlib.md5((root / p).read_bytes()).hexdigest() for p in files if (root / p).exists()}


def _restore(root, env):
    """Back to the committed small-preset run."""
    _run(["git", "checkout", "-q", "HEAD", "--", "."], root, env)
    _run([str(BIN / "dvc"), "checkout", "-q"], root, env)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A git clone of this repository with the working tree's files laid over it (so
    uncommitted edits are tested too), switched to the small preset, and `dvc repro`-ed."""
    dest = tmp_path_factory.mktemp("e2e") / "repo"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(dest)], check=True)
    subprocess.run(["git", "remote", "remove", "origin"], cwd=dest, check=True)  # never push to this checkout
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for rel in filter(None, listed):
        if (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    shutil.copyfile(dest / "presets" / "small.yaml", dest / "params.yaml")
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", DVC_NO_ANALYTICS="1",
               GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com")
    _run(["git", "add", "-A"], dest, env)
    _run(["git", "commit", "-q", "--allow-empty", "-m", "small preset"], dest, env)
    out = _run([str(BIN / "dvc"), "repro"], dest, env)
    assert _same_run(_ran(out), STAGES)
    _run(["git", "add", "-A"], dest, env)  # the small preset's results become the baseline
    _run(["git", "commit", "-q", "-m", "small preset results"], dest, env)
    return dest, env


def test_repro_builds_everything_and_a_second_repro_runs_nothing(repo):
    root, env = repo
    for p in OUTS:
        assert (root / p).is_file(), p
    attack = json.loads((root / "metrics/attack.json").read_text())
    assert attack["clean_valid_accuracy"] > 80 and attack["attack_success_rate"] > 60
    sweep = pd.read_csv(root / "plots/prune_sweep.csv")
    assert len(sweep) == 61 and list(sweep["channels_pruned"]) == list(range(61))
    assert sorted(sweep["channel_removed"][1:]) == list(range(60))
    out = _run([str(BIN / "dvc"), "repro"], root, env)
    assert _ran(out) == [] and "up to date" in out


def _slow(model, x, div):
    return np.argmax(model.predict(x / div, verbose=0), 1)


@pytest.mark.parametrize("folder,prefix,stage", [("models/variants", "", "export-variants"),
                                                 ("models/fine_pruned", "fine_", "fine-prune")])
def test_pruned_and_repaired_metrics_match_the_slow_obvious_computation(repo, folder, prefix, stage):
    """Reload B'_X (pruned, or fine-pruned) with plain Keras and G_X through the package;
    recompute every metric, and the detector table's row for B'_X."""
    import keras

    from badnet_repair import h5data, variants

    root, _ = repo
    info = json.loads((root / "models/badnet.json").read_text())
    n, div = info["num_classes"], info["input_divisor"]
    test, bd = h5data.read(root / "data/cl/test.h5"), h5data.read(root / "data/bd/bd_test.h5")
    valid = h5data.read(root / "data/cl/valid.h5")
    got = json.loads((root / "metrics/repaired.json").read_text())
    sweep = pd.read_csv(root / "plots/prune_sweep.csv")
    detector = pd.read_csv(root / "plots/detector.csv")
    badnet = keras.models.load_model(root / "models/badnet.h5", compile=False)
    b_test, b_bd = _slow(badnet, test.x, div), _slow(badnet, bd.x, div)
    index = variants.read_index(root / folder, THRESHOLDS, stage)
    assert [e["threshold"] for e in index] == THRESHOLDS
    for e in index:
        x = f"x{e['threshold']:g}_{prefix}"
        assert e["reached"] and got[f"{x}channels_pruned"] == e["channels_pruned"]
        pruned = keras.models.load_model(Path(e["dir"]) / e["pruned"], compile=False)
        g = variants.load_repaired(Path(e["dir"]) / e["repaired"])
        assert g.output_shape[-1] == n + 1
        p_test, p_bd = _slow(pruned, test.x, div), _slow(pruned, bd.x, div)
        g_test, g_bd = _slow(g, test.x, div), _slow(g, bd.x, div)
        assert got[f"{x}pruned_clean_accuracy"] == pytest.approx(100 * np.mean(p_test == test.y), abs=1e-3)
        assert got[f"{x}pruned_attack_success_rate"] == pytest.approx(100 * np.mean(p_bd == bd.y), abs=1e-3)
        assert got[f"{x}repaired_clean_accuracy"] == pytest.approx(100 * np.mean(g_test == test.y), abs=1e-3)
        assert got[f"{x}repaired_attack_success_rate"] == pytest.approx(100 * np.mean(g_bd == bd.y), abs=1e-3)
        assert got[f"{x}repaired_detection_rate"] == pytest.approx(100 * np.mean(g_bd == n), abs=1e-3)
        assert got[f"{x}repaired_false_positive_rate"] == pytest.approx(100 * np.mean(g_test == n), abs=1e-3)
        # the saved G is B where B and B' agree, N elsewhere, on clean and poisoned images
        assert np.array_equal(g_bd, np.where(b_bd == p_bd, b_bd, n))
        assert np.array_equal(g_test, np.where(b_test == p_test, b_test, n))
        k = e["channels_pruned"]
        removed = sweep["channel_removed"].to_numpy()[1:k + 1]
        kernel, bias = pruned.get_layer("conv_3").get_weights()
        assert np.all(kernel[..., removed] == 0) and np.all(bias[removed] == 0)  # still exactly zero
        if prefix:
            continue
        # the sweep and detector rows B' came from: the head path's numbers equal the full pruned model's
        row, det = sweep.iloc[k], detector.iloc[k]
        p_valid = _slow(pruned, valid.x, div)
        assert row["clean_accuracy_valid"] == pytest.approx(100 * np.mean(p_valid == valid.y), abs=1e-3)
        assert row["clean_accuracy_test"] == pytest.approx(100 * np.mean(p_test == test.y), abs=1e-3)
        assert row["attack_success_rate_test"] == pytest.approx(100 * np.mean(p_bd == bd.y), abs=1e-3)
        assert det["detection_rate_test"] == pytest.approx(100 * np.mean(g_bd == n), abs=1e-3)
        assert det["false_positive_rate_test"] == pytest.approx(100 * np.mean(g_test == n), abs=1e-3)
        # the stopping rule: first step at least X points below the original
        acc = sweep["clean_accuracy_valid"].to_numpy()
        assert acc[k] <= acc[0] - e["threshold"] and np.all(acc[:k] > acc[0] - e["threshold"])


def test_fine_pruning_keeps_the_best_holdout_epoch_of_its_history(repo):
    """What holds on every machine: the epoch kept is the first with the best holdout
    accuracy (epoch 0, B' itself, included), so fine-pruning never scores below B' on the
    holdout; and the aggregated metrics are the per-X folders' own."""
    from badnet_repair import variants

    root, _ = repo
    chosen = json.loads((root / "metrics/fine_prune.json").read_text())
    history = pd.read_csv(root / "plots/fine_prune_history.csv")
    assert sorted(history["threshold"].unique()) == THRESHOLDS
    for e in variants.read_index(root / "models/fine_pruned", THRESHOLDS, "fine-prune"):
        x = e["threshold"]
        rows = history[history["threshold"] == x]
        assert list(rows["epoch"]) == [h["epoch"] for h in e["epochs"]] == list(range(len(rows)))
        best = rows.loc[rows["holdout_accuracy"].idxmax()]  # the first epoch with the best holdout accuracy
        assert chosen[f"x{x:g}_chosen_epoch"] == e["chosen_epoch"] == best["epoch"]
        assert chosen[f"x{x:g}_holdout_accuracy"] == best["holdout_accuracy"] >= rows["holdout_accuracy"].iloc[0]


def test_classify_command_on_png_files(repo, tmp_path):
    """The console script on PNGs cut from the test files gives G's batch classes: a clean
    image its class, a poisoned image through the fine-pruned G class N."""
    import keras
    from PIL import Image

    from badnet_repair import h5data, variants

    root, env = repo
    info = json.loads((root / "models/badnet.json").read_text())
    n, div = info["num_classes"], info["input_divisor"]
    g_path = root / "models/fine_pruned/10/repaired.keras"
    g = variants.load_repaired(g_path)
    test, bd = h5data.read(root / "data/cl/test.h5"), h5data.read(root / "data/bd/bd_test.h5")
    g_test, g_bd = _slow(g, test.x, div), _slow(g, bd.x, div)
    clean = int(np.flatnonzero(g_test == test.y)[0])
    flagged = int(np.flatnonzero(g_bd == n)[0])
    files = [tmp_path / "clean.png", tmp_path / "poisoned.png"]
    Image.fromarray(test.x[clean].astype(np.uint8)).save(files[0])
    Image.fromarray(bd.x[flagged].astype(np.uint8)).save(files[1])
    res = subprocess.run([str(BIN / "badnet-repair"), "classify", str(g_path), *map(str, files)], cwd=root,
                         env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [f"{files[0]}\t{test.y[clean]}", f"{files[1]}\t{n}"]
    assert keras.models.load_model(root / "models/fine_pruned/10/fine_pruned.h5", compile=False).output_shape[-1] == n


def test_head_path_equals_full_model_prediction_by_prediction_on_the_small_preset(repo):
    from badnet_repair import artifacts, h5data, pruning
    from badnet_repair.model import load_badnet

    root, _ = repo
    model = load_badnet(root / "models/badnet.h5")
    div = json.loads((root / "models/badnet.json").read_text())["input_divisor"]
    acts, _ = artifacts.read_activations(root / "data/activations.h5", splits=("valid", "bd_valid"))
    order = pd.read_csv(root / "plots/prune_sweep.csv")["channel_removed"].to_numpy()[1:]
    for split, path in (("valid", "data/cl/valid.h5"), ("bd_valid", "data/bd/bd_valid.h5")):
        x = h5data.read(root / path).x / div
        fast = pruning.sweep_predictions(model, "pool_3", acts[split], order,
                                         pruning.removed_values(model, "pool_3"))
        for k in (0, 15, 30, 45, 60):
            slow = np.argmax(pruning.prune(model, "pool_3", order[:k]).predict(x, verbose=0), 1)
            assert np.array_equal(fast[k], slow), (split, k)


def test_thresholds_experiment_runs_only_the_new_thresholds_and_the_run_cache_brings_it_back(repo):
    """A new X runs its own export-variants@X and fine-prune@X; the X kept are not re-run,
    nor are the two orders' sweeps (prune-orders): orders-kept reads B' per X from them.
    Then DVC's run-cache: back at the committed run, those params set again restore every
    stage from the cache but evaluate-repaired, and every output comes back byte for byte.
    evaluate-repaired runs again because it depends on the folders models/variants and
    models/fine_pruned, where X = 2 and 4 stay (DVC deletes no output of a stage that left
    dvc.yaml); it reads only the X in params.yaml, so its bytes are the cached run's."""
    from badnet_repair import variants

    root, env = repo
    dvc = str(BIN / "dvc")
    out = _run([dvc, "exp", "run", "-S", "prune.thresholds=[1,10]"], root, env)
    assert sorted(_ran(out)) == sorted(["orders-kept", "export-variants@1", "fine-prune@1", "evaluate-repaired",
                                        "report"])
    diff = json.loads(_run([dvc, "metrics", "diff", "--json"], root, env))
    changed = diff["metrics/repaired.json"]
    assert "x1_channels_pruned" in changed and changed["x1_channels_pruned"]["old"] is None
    assert changed["x4_channels_pruned"]["new"] is None and "x10_channels_pruned" not in changed
    index = variants.read_index(root / "models/variants", [1, 10], "export-variants")
    assert [e["threshold"] for e in index] == [1, 10]
    made, params = _md5s(root), (root / "params.yaml").read_text()
    _restore(root, env)
    assert _md5s(root) != made
    (root / "params.yaml").write_text(params)
    out = _run([dvc, "repro"], root, env)
    assert _ran(out) == ["evaluate-repaired"], out
    for stage in ("orders-kept", "export-variants@1", "fine-prune@1", "report"):
        assert f"Stage '{stage}' is cached - skipping run" in out, (stage, out)
    assert sorted(p.name for p in (root / "models/variants").iterdir()) == ["1", "10", "2", "4"]
    assert _md5s(root) == made
    _restore(root, env)


def test_a_failing_stage_loses_nothing_the_restore_line_cannot_bring_back(repo):
    """Bad params under `dvc repro`: a one-line error; DVC removed the failing stage's
    outputs before running it, and `dvc checkout` plus `git checkout -- metrics plots` bring
    the last complete run back byte for byte."""
    root, env = repo
    before = _md5s(root)
    params = root / "params.yaml"
    params.write_text(params.read_text().replace("holdout: 0.2", "holdout: 1.5", 1))  # finetune's
    res = subprocess.run([str(BIN / "dvc"), "repro"], cwd=root, env=env, capture_output=True, text=True)
    assert res.returncode != 0
    assert "error: params.yaml: 'finetune.holdout' must be in (0, 1), got 1.5" in res.stderr + res.stdout
    assert "Traceback" not in res.stderr + res.stdout
    # DVC orders independent stages differently from run to run: check the one that failed
    failed = re.findall(r"Running stage 'fine-prune@(\d+)'", res.stdout + res.stderr)
    assert len(failed) == 1, res.stdout + res.stderr
    assert not (root / "models/fine_pruned" / failed[0]).exists()  # its output, removed by DVC
    _run(["git", "checkout", "--", "params.yaml"], root, env)
    _run(RESTORE, root, env)
    _run([str(BIN / "dvc"), "checkout"], root, env)
    assert _md5s(root) == before
    assert "up to date" in _run([str(BIN / "dvc"), "status", "dvc.yaml"], root, env)  # the suite never ran here


def test_changing_a_data_param_marks_fetch_data_changed(repo):
    root, env = repo
    text = (root / "params.yaml").read_text().replace("seed: 2020", "seed: 7")
    (root / "params.yaml").write_text(text)
    status = _run([str(BIN / "dvc"), "status"], root, env)
    assert "fetch-data" in status and "data.synthetic" in status


def _rendered_charts(dom):
    """Vega charts drawn as SVG, and how many line and symbol marks they hold."""
    charts = len(re.findall(r'<svg[^>]*class="marks"', dom))
    marks = len(re.findall(r'class="mark-(?:line|symbol) role-mark[^"]*"[^>]*>\s*<path[^>]* d="M', dom))
    return charts, marks


def test_dvc_plots_show_renders_offline_in_headless_chromium(repo, dump_dom):
    """The page `dvc plots show` writes draws every Vega chart with the network unavailable
    (the template inlines Vega); DVC's own template, which loads Vega from a CDN, draws none."""
    from dvc_render.html import PAGE_HTML

    root, env = repo
    out = root.parent  # not in the repo: queued experiments later must find a clean tree
    dvc = str(BIN / "dvc")
    _run([dvc, "plots", "show", "-o", str(out / "dvc_plots")], root, env)
    html = (out / "dvc_plots" / "index.html").read_text()
    for title in ("vs fraction pruned (validation)", "vs fraction pruned (test)", "validation trade-off",
                  "G as a detector", "detection rate vs fraction pruned", "Mean activation of each channel",
                  "holdout accuracy at each epoch", "both pruning orders"):
        assert title in html, title
    for png in ("prune_sweep.png", "prune_orders.png", "detector.png", "repaired.png", "samples.png"):
        assert png in html, png
    assert "cdn.jsdelivr" not in html and not re.search(r"<script[^>]* src=", html)
    vega_plots = html.count("vegaEmbed('#")
    # three from dvc.yaml's top-level plots and five from its stages' plots outputs; the
    # suite's table and leaderboard belong to suite/'s own DVC project, which the root ignores
    assert vega_plots == 8
    charts, marks = _rendered_charts(dump_dom(out / "dvc_plots" / "index.html"))
    assert charts == vega_plots and marks >= 2 * vega_plots, (charts, marks)

    (out / "cdn_template.html").write_text(PAGE_HTML)  # the control: DVC's default page
    _run([dvc, "plots", "show", "-o", str(out / "dvc_plots_cdn"), "--html-template", str(out / "cdn_template.html")],
         root, env)
    assert "cdn.jsdelivr" in (out / "dvc_plots_cdn" / "index.html").read_text()
    assert _rendered_charts(dump_dom(out / "dvc_plots_cdn" / "index.html")) == (0, 0)


def test_report_is_self_contained_and_holds_the_committed_numbers(repo, dump_dom):
    import base64

    root, _ = repo
    page = (root / "plots/report.html").read_text()
    assert "<script" not in page and not re.findall(r'(?:src|href)="(?!data:)', page)
    images = [base64.b64decode(d) for d in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]
    assert images == [(root / p).read_bytes() for p in ("suite/plots/leaderboard.png",  # the committed suite's
                                                         "plots/prune_sweep.png", "plots/detector.png",
                                                         "plots/prune_orders.png",
                                                         "plots/repaired.png", "plots/samples.png")]
    dom = dump_dom(root / "plots/report.html")
    rows = [re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", r, re.S) for r in re.findall(r"<tr>(.*?)</tr>", dom, re.S)]
    baseline = json.loads((root / "metrics/baseline.json").read_text())
    assert ["test", f"{baseline['clean_accuracy_test']:.2f}", f"{baseline['attack_success_rate_test']:.2f}"] in rows
    md = [[c.strip() for c in line.strip().strip("|").split("|")]
          for line in (root / "metrics/results.md").read_text().splitlines() if line.startswith("| ")]
    assert len(md) == 2 + 1 + 2 * 3 + 2 * 3  # two headers, B, pruned and fine-pruned for X = 2, 4, 10
    for row in md:  # both tables, every row, cell for cell
        assert row in rows, row
    chosen = json.loads((root / "metrics/fine_prune.json").read_text())
    assert ["10", str(chosen["x10_chosen_epoch"]), f"{chosen['x10_holdout_accuracy']:.2f}"] in rows
    scores = json.loads((root / "metrics/defenses.json").read_text())
    for d in DEFENSES:
        assert [d + (" (default)" if d == scores["default_defense"] else "")] + [
            f"{scores[f'{d}_{k}_test']:.2f}" for k in ("clean_accuracy", "attack_success_rate", "detection_rate",
                                                       "false_positive_rate", "detector_detection_rate",
                                                       "detector_false_positive_rate")] in rows, d


@pytest.fixture(scope="module")
def shared(repo, tmp_path_factory):
    """What several machines share, set up as docs/sharing.md says: a git remote (a bare repo
    here) and a DVC remote (a local directory here; S3 or GCS for real) committed in .dvc/config."""
    root, env = repo
    base = tmp_path_factory.mktemp("shared")
    git_remote, store = base / "project.git", base / "dvc-store"
    _run(["git", "init", "-q", "--bare", "-b", "main", str(git_remote)], base, env)
    _restore(root, env)
    _run([str(BIN / "dvc"), "remote", "add", "-d", "store", str(store)], root, env)
    _run(["git", "add", ".dvc/config"], root, env)
    _run(["git", "commit", "-q", "-m", "shared DVC remote"], root, env)
    _run(["git", "remote", "add", "shared", str(git_remote)], root, env)
    _run(["git", "push", "-q", "shared", "HEAD:main"], root, env)
    return git_remote, store


def _other_machine(shared, tmp_path_factory, env):
    dest = tmp_path_factory.mktemp("machine2") / "repo"
    _run(["git", "clone", "-q", "-b", "main", str(shared[0]), str(dest)], dest.parent, env)
    return dest


def test_dvc_push_and_pull_move_data_models_and_results_to_another_clone(repo, shared, tmp_path_factory):
    """`dvc push` here, `git clone` + `dvc pull` there: the same bytes, and nothing to re-run."""
    root, env = repo
    dvc = str(BIN / "dvc")
    _run([dvc, "push"], root, env)
    assert len([p for p in shared[1].rglob("*") if p.is_file()]) >= 10
    other = _other_machine(shared, tmp_path_factory, env)
    _run([dvc, "pull"], other, env)
    assert _md5s(other) == _md5s(root)
    assert _ran(_run([dvc, "repro"], other, env)) == []
    assert "up to date" in _run([dvc, "status", "dvc.yaml"], other, env)  # the suite never ran here


def _wait_for_queue(root, env, timeout=1800):
    import time

    deadline = time.monotonic() + timeout
    while True:
        status = _run([str(BIN / "dvc"), "queue", "status"], root, env)
        if not re.search(r"\b(Queued|Running)\b", status):
            return status
        assert time.monotonic() < deadline, status
        time.sleep(3)


@pytest.fixture(scope="module")
def queued(repo):
    """docs/sharing.md's queue: a grid of two experiments, both with new thresholds, run by two
    workers: the descending pruning order re-runs the sweep and every B' and G; the ascending
    order, the preset's, only the new thresholds' stages. Neither trains a BadNet: the fixture's
    full pipeline is the one end-to-end run, and the queue's own machinery is what this checks.
    Returns the experiments' names, the queue's last status and the workspace's files before."""
    root, env = repo
    dvc = str(BIN / "dvc")
    _restore(root, env)
    before = _md5s(root)
    out = _run([dvc, "exp", "run", "--queue", "-S", "prune.thresholds=[1,2,3]", "-S", "prune.order=ascending,descending"],
               root, env)
    names = re.findall(r"Queued experiment '([\w-]+)'", out)
    assert len(names) == 2, out
    try:
        with open(root.parent / "queue-workers.log", "w") as log:  # the workers outlive the command
            subprocess.run([dvc, "queue", "start", "--jobs", "2"], cwd=root, env=env, stdout=log,
                           stderr=subprocess.STDOUT, check=True)
        status = _wait_for_queue(root, env)
    finally:
        subprocess.run([dvc, "queue", "stop"], cwd=root, env=env, capture_output=True)
    shown = json.loads(_run([dvc, "exp", "show", "--json", "--no-pager"], root, env))
    exps = {e["name"]: e["revs"][0]["data"] for c in shown for e in (c.get("experiments") or [])}
    return names, status, before, exps


def test_queued_experiments_run_two_at_a_time_and_travel_to_another_clone(repo, shared, queued, tmp_path_factory):
    """docs/sharing.md's queue: queue a grid, run it with two workers, compare with `dvc exp show`,
    then `dvc exp push` it; another clone pulls and applies one experiment and gets the same files."""
    root, env = repo
    dvc = str(BIN / "dvc")
    names, status, before, exps = queued
    orders = {n: exps[n]["params"]["params.yaml"]["data"]["prune"]["order"] for n in names}
    assert sorted(orders.values()) == ["ascending", "descending"]
    for name in names:
        assert re.search(rf"\b{name}\s.*\bSuccess\b", status), status
        ran = set(_ran(_run([dvc, "queue", "logs", name], root, env)))
        assert not ran & {"fetch-data", "baseline", "activations", "scan", "detector"}, ran  # no BadNet trained again
        # each runs what its params touch; a stage the run-cache holds (the thresholds test
        # ran X = 1 in the committed order) comes back without running
        assert {"export-variants@3", "fine-prune@3", "evaluate-repaired"} <= ran <= {
            "prune-sweep", "orders-kept", "evaluate-repaired", "report",
            *(f"{s}@{x}" for s in ("export-variants", "fine-prune") for x in (1, 2, 3))}, (orders[name], ran)
        if orders[name] == "ascending":  # the committed run's order: X = 2 is kept as it was
            assert not ran & {"prune-sweep", "export-variants@2", "fine-prune@2"}, ran
        else:  # a new order: a new sweep, and every B' of it
            assert {"prune-sweep", "export-variants@2", "fine-prune@2"} <= ran, ran
    assert _md5s(root) == before, "queued results must stay out of the workspace until applied"

    table = _run([dvc, "exp", "show", "--md", "--no-pager"], root, env)
    assert all(f"[{name}]" in table for name in names), table
    for name in names:
        assert exps[name]["params"]["params.yaml"]["data"]["prune"]["thresholds"] == [1, 2, 3]
        assert exps[name]["metrics"]["metrics/repaired.json"]["data"]["x1_reached"] is True

    name = next(n for n in names if orders[n] == "descending")  # the one whose sweep and every B' are new
    _run(["git", "push", "-q", "shared", "HEAD:main"], root, env)
    assert f"Pushed experiment {name}" in _run([dvc, "exp", "push", "shared", name], root, env)
    other = _other_machine(shared, tmp_path_factory, env)
    _run([dvc, "exp", "pull", "origin", name], other, env)
    for clone in (root, other):
        _run([dvc, "exp", "apply", name], clone, env)
    assert "order: descending " in (other / "params.yaml").read_text()
    assert json.loads((other / "metrics/repaired.json").read_text()) == \
        exps[name]["metrics"]["metrics/repaired.json"]["data"]
    assert _md5s(other) == _md5s(root) != before
    _restore(root, env)


def test_a_stage_killed_midway_then_repro_gives_an_uninterrupted_runs_bytes(repo):
    """SIGKILL a forced `dvc repro` and its fetch-data stage just after it has replaced the
    data files, before the BadNet is trained: `dvc repro` then brings the stage's outputs
    back from the cache (nothing half-made is taken for a result), leaves no temp file, and
    every output equals the uninterrupted run's (the fixture's), byte for byte; and the
    stage run again to the end, BadNet training included, makes those same bytes."""
    import signal
    import time

    root, env = repo
    dvc = str(BIN / "dvc")
    _restore(root, env)
    before = _md5s(root)
    # --no-run-cache: the run-cache holds these params, and would restore the stage, not run it
    proc = subprocess.Popen([dvc, "repro", "--force", "--no-run-cache"], cwd=root, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "wrote the four data files" in line:
            os.killpg(proc.pid, signal.SIGKILL)
            break
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "".join(seen)
    time.sleep(0.5)
    assert _ran("".join(seen)) == ["fetch-data"]
    assert not (root / "models/badnet.h5").exists()  # DVC removed the stage's outputs before running it
    out = _run([dvc, "repro"], root, env)
    assert _ran(out) == [] and "Stage 'fetch-data' is cached" in out, out
    assert not [p for p in root.rglob(".*.tmp*")], "temp files left behind"
    assert _md5s(root) == before
    out = _run([dvc, "repro", "--force", "--single-item", "--no-run-cache", "fetch-data"], root, env)
    assert _ran(out) == ["fetch-data"], out
    assert _md5s(root) == before
    assert _ran(_run([dvc, "repro"], root, env)) == []
    _restore(root, env)
