"""The tables of README.md and docs/*.md, rendered from committed files.

A page holds each table between `<!-- render: NAME -->` and `<!-- end: NAME -->`;
`tools/render-docs` rewrites what is between them with RENDERERS[NAME](), and
`tools/render-docs --check` (run by the tests) fails when a page is stale. So every
figure the pages show is a committed metric, CSV or params value.

Not part of the runtime package `badnet_repair` (no stage runs it): `tools/render-docs`,
the tests and the benchmark scripts import it as `docs`, with tools/ on sys.path."""
from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent  # tools/docs.py -> the repository root
PAGES = ["README.md", "docs/*.md"]
BLOCK = re.compile(r"(<!-- render: ([\w-]+) -->\n)(.*?)(<!-- end: \2 -->)", re.S)
RESULTS = "benchmarks/results"  # what the benchmark scripts measured, one CSV each, with the machine

# Every param of params.yaml, with what it does. A test checks this against params.SCHEMA and
# each defense module's PARAMS.
PARAM_DOCS = {
    "data.source": "`synthetic` (the embedded benchmark), `csaw-lab3` (the real lab3 data) or `local` (your files)",
    "data.synthetic.attack": "the trigger: `sunglasses`, `eyebrows`, `lipstick`, `patch`, `blended` or `multi`; or a family: `wanet`, `lf`, `ssba`, `input_aware`, `all_to_all`, `clean_label`",
    "data.synthetic.identities": "identities (classes)",
    "data.synthetic.train_per_identity": "clean training images per identity (the training set is not kept)",
    "data.synthetic.valid_per_identity": "validation images per identity, in the clean and the poisoned file",
    "data.synthetic.test_per_identity": "test images per identity, in the clean and the poisoned file",
    "data.synthetic.poison_rate": "share of the training set poisoned with each trigger; 0 trains a clean net on the same clean images",
    "data.synthetic.target": "the attacker's target class (`multi`: the first of three consecutive targets)",
    "data.synthetic.seed": "seeds the identities, every image and the training",
    "data.synthetic.epochs": "the attacker's training epochs (Adam, cosine decay)",
    "data.synthetic.batch_size": "the attacker's batch size",
    "data.synthetic.learning_rate": "the attacker's peak learning rate",
    "data.synthetic.input_divisor": "the BadNet is fed x / input_divisor",
    "data.csaw.mirror": "a local directory with `cl/`, `bd/` and `lab3/bd_weights.h5`: no download",
    "data.csaw.drive_folder": "the public Google Drive folder of the lab3 data",
    "data.csaw.weights_url": "where the lab3 BadNet weights come from",
    "data.csaw.weights_sha256": "their checksum",
    "data.csaw.input_divisor": "lab3's BadNet takes raw 0-255 pixels",
    "data.local.valid": "your clean validation file (CSAW h5)",
    "data.local.test": "your clean test file",
    "data.local.bd_valid": "your poisoned validation file",
    "data.local.bd_test": "your poisoned test file",
    "data.local.model": "your BadNet: a full Keras model (.h5 or .keras) or DeepID weights (.h5)",
    "data.local.input_divisor": "1 if your model takes raw 0-255 pixels, 255 if x / 255",
    "prune.layer": "the layer whose channels are ranked and removed (a conv layer, or one fed by it channel by channel)",
    "prune.order": "`ascending`: least active channels first (Fine-Pruning); or `descending` (the report shows both)",
    "prune.thresholds": "the accuracy drops X that pick B'_X",
    "prune.keep": "`first_past`: the first net at least X below B; `last_within`: the net just before it",
    "prune.drop": "`absolute`: X in points; `relative`: X in % of B's accuracy",
    "finetune.optimizer": "`adam`, or `sgd` (momentum 0.9, Nesterov)",
    "finetune.learning_rate": "peak learning rate, cosine-decayed to 0 over the epochs",
    "finetune.epochs": "fine-tuning epochs of each B'_X",
    "finetune.batch_size": "fine-tuning batch size",
    "finetune.holdout": "share of the clean validation images held out to choose the epoch",
    "finetune.seed": "seeds the holdout, the shuffling and TensorFlow",
    "defend.names": "the defenses `dvc repro` runs (always `fine_pruning` and `defend.default`)",
    "defend.default": "the default defense, named in `metrics/defenses.json`",
    "defend.holdout": "share of the clean validation images every defense (and the scan) chooses on, drawn per class: each class holds out its share of it, floor or one more",
    "defend.seed": "seeds the holdout and the defenses' training",
    "defend.budget": "points of holdout accuracy below B's that a defense's setting may cost",
    "defend.fine_pruning.layer": "the layer whose channels fine-pruning ranks and prunes; empty: `prune.layer`",
    "defend.fine_pruning.fractions": "candidates, strongest first: the share of channels pruned",
    "defend.fine_pruning.optimizer": "`adam` or `sgd`",
    "defend.fine_pruning.learning_rate": "fine-tuning's peak learning rate",
    "defend.fine_pruning.epochs": "fine-tuning epochs (the best holdout epoch from 1 on is kept)",
    "defend.fine_pruning.batch_size": "fine-tuning batch size",
    "defend.ft.learning_rates": "candidates, strongest first: the learning rate",
    "defend.ft.epochs": "fine-tuning epochs",
    "defend.ft.batch_size": "batch size",
    "defend.nad.learning_rates": "candidates, strongest first: the student's learning rate",
    "defend.nad.teacher_epochs": "the teacher's fine-tuning epochs",
    "defend.nad.epochs": "the student's epochs",
    "defend.nad.batch_size": "batch size",
    "defend.nad.beta": "weight of the attention loss at each layer",
    "defend.nad.layers": "the layers whose attention maps are distilled; empty: the last `blocks` conv blocks' outputs, found from the graph",
    "defend.nad.blocks": "with `layers` empty: how many of the last conv blocks (each conv and the channel-wise layers after it)",
    "defend.anp.eps": "bound of the adversarial perturbation of each neuron's weights and bias",
    "defend.anp.alpha": "weight of the clean loss against the perturbed loss",
    "defend.anp.mask_lr": "the masks' learning rate (SGD)",
    "defend.anp.iterations": "mask optimisation steps",
    "defend.anp.batch_size": "batch size",
    "defend.anp.thresholds": "candidates, strongest first: prune neurons whose mask is below (0: none)",
    "defend.rnp.unlearn_lr": "gradient-ascent learning rate of the unlearning (SGD)",
    "defend.rnp.unlearn_epochs": "at most this many unlearning epochs",
    "defend.rnp.unlearn_floor": "stop unlearning at this clean training accuracy (%)",
    "defend.rnp.recover_lr": "the masks' learning rate in the recovery (SGD)",
    "defend.rnp.recover_epochs": "recovery epochs",
    "defend.rnp.batch_size": "batch size",
    "defend.rnp.thresholds": "candidates, strongest first: prune neurons whose mask is below (0: none)",
    "defend.ft_sam.learning_rates": "candidates, strongest first: the learning rate",
    "defend.ft_sam.rho": "radius of the adaptive SAM neighbourhood",
    "defend.ft_sam.epochs": "fine-tuning epochs",
    "defend.ft_sam.batch_size": "batch size",
    "defend.sau.learning_rates": "candidates, strongest first: the unlearning's learning rate (Adam, cosine)",
    "defend.sau.rounds": "passes over the clean training share, each batch one shared search and one step",
    "defend.sau.bound": "L-infinity radius of each image's perturbation, on images scaled to [0, 1]",
    "defend.sau.pgd_lr": "the search's signed-gradient step, on the same [0, 1] scale",
    "defend.sau.pgd_steps": "the search's steps per batch (it stops early once every image is shared)",
    "defend.sau.beta_1": "the search's weight of the adversarial loss",
    "defend.sau.beta_2": "the search's weight of the two nets' disagreement (Jensen-Shannon)",
    "defend.sau.lambda_1": "the step's weight of the clean loss",
    "defend.sau.lambda_2": "the step's weight of adversarial training on the perturbed images",
    "defend.sau.lambda_3": "the step's weight of the shared adversarial loss",
    "defend.sau.batch_size": "batch size",
    "defend.i_bau.learning_rates": "candidates, strongest first: the unlearning's learning rate (Adam); one, since the rounds stop by `stop_share`",
    "defend.i_bau.rounds": "rounds of (universal perturbation, one epoch of unlearning)",
    "defend.i_bau.bound": "L2 radius of the universal perturbation, on images scaled to [0, 1] whatever `input_divisor` the model takes",
    "defend.i_bau.perturbation_lr": "gradient-ascent step of the perturbation, on the same [0, 1] scale",
    "defend.i_bau.perturbation_batch_size": "batch size of the perturbation's ascent",
    "defend.i_bau.perturbed": "images of each unlearning batch that also go in carrying the perturbation",
    "defend.i_bau.clipnorm": "the unlearning's gradient-norm clip",
    "defend.i_bau.batch_size": "batch size of the unlearning and the recovery",
    "defend.i_bau.recover_lr": "learning rate of the recovery fine-tuning (Adam, cosine to 0)",
    "defend.i_bau.recover_epochs": "recovery fine-tuning epochs",
    "defend.i_bau.targeted": "each round also unlearns a perturbation aimed at each target the scan finds on B ([scan](scan.md)); `false`: the paper's untargeted search alone",
    "defend.i_bau.stop_share": "the rounds stop at the `stop_rounds`-th in a row whose targeted perturbations each send less than this share of the holdout to their target, and whose untargeted one less than `scan.threshold` of the sample to one class ([defenses](defenses.md)); 0: all `rounds`",
    "defend.i_bau.stop_rounds": "rounds in a row that must show no backdoor (by `stop_share`) before the rounds stop; the quiet rounds before the last are trained on; a quiet round 1 still leaves the net as it is",
    "defend.i_bau.untargeted_stop": "`false`: where the scan names no target on B, every round runs, as the paper's (the stopping rule has no target to watch, and the scan cannot see an all-to-all backdoor); `true`: the untargeted share alone may stop the rounds there, and a net with no named target is left as it is ([defenses](defenses.md))",
    "defend.i_bau.rounds_on_sample": "`true`: each round's epoch trains on the searches' sample (`scan.images` of the training share), as the paper unlearns on the set it searches; `false`: on the whole training share. The recovery trains on the whole share either way",
    "defend.i_bau.targeted_bound": "`> 0`: each round's perturbation towards a target the scan names is unlearnt from this larger L2 ball (on [0, 1] images), so that it can hold a worn trigger; the stopping rule still reads the share of the one within `bound`. `0`: the one within `bound` is unlearnt. Offsets keep `bound`",
    "defend.i_bau.masked_epochs": "`> 0`: each round also unlearns, per target the scan names, the trigger Neural Cleanse reverse-engineers (a mask and a pattern, the mask's L1 as small as will send the sample there; `scan.masked_trigger`), its search going on this many epochs from the last round's; `0`: none",
    "defend.i_bau.masked_controls": "with `masked_epochs`: a round shows no backdoor only where each target's mask is at least the median L1 of this many seeded other classes' masks on B (searched for `2 * masked_epochs` epochs): no easier to reach than a typical class; `0`: the rule reads the L2 shares alone",
    "scan.top_k": "K-Arm's pre-screening: the classes counted in each clean image's top, after its own",
    "scan.candidates": "classes verified, the highest pull first",
    "scan.shifts": "offsets k verified for an all-to-all backdoor (each image to its own class + k), the highest pull first; 0: no offset search",
    "scan.images": "training-share images the targeted perturbation search passes over, once",
    "scan.batch_size": "images per step of the search",
    "scan.bound": "L2 radius of the targeted universal perturbation, on images scaled to [0, 1]",
    "scan.step": "length of each step of the search, a share of `bound`",
    "scan.threshold": "a candidate whose perturbation sends this share of the holdout to it is a target",
}


def working_tree(path: str) -> str:
    return (ROOT / path).read_text()


def git_index(path: str) -> str:
    """`path` as staged in git (as committed when nothing is staged): the run the pages
    describe, even after a `dvc repro` on another CPU has rewritten the working tree's
    metrics. Outside a git checkout, the working tree's."""
    import subprocess

    res = subprocess.run(["git", "show", f":{path}"], cwd=ROOT, capture_output=True, text=True)
    return res.stdout if res.returncode == 0 else working_tree(path)


_read = working_tree  # where the renderers read files; render(..., read=git_index) switches


def _json(path: str) -> dict:
    return json.loads(_read(path))


def _csv(path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(_read(path))))


def _frame(path: str):
    import pandas as pd

    return pd.read_csv(io.StringIO(_read(path)))


def _yaml(path: str):
    return yaml.safe_load(_read(path))


def _table(header: list[str], rows: list[list], align: str | None = None) -> str:
    align = align or "|---" + "|---:" * (len(header) - 1) + "|"
    return "\n".join(["| " + " | ".join(header) + " |", align] +
                     ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]) + "\n"


def _f(v) -> str:
    return f"{float(v):.2f}"


def _thresholds() -> list:
    return _yaml("params.yaml")["prune"]["thresholds"]


def mission() -> str:
    """B, then B'_X and G_X for every X: the assignment's table (test data)."""
    b, r = _json("metrics/baseline.json"), _json("metrics/repaired.json")
    rows = [["B", "0", "0", "0.000", _f(b["clean_accuracy_test"]), _f(b["attack_success_rate_test"]), "", ""]]
    for x in _thresholds():
        p = f"x{x:g}_"
        if not r[p + "reached"]:
            rows.append([f"B'_{x:g}, G_{x:g}", f"{x:g}", "not reached", "", "", "", "", ""])
            continue
        n, frac = r[p + "channels_pruned"], f"{r[p + 'fraction_pruned']:.3f}"
        rows.append([f"B'_{x:g} (pruned)", f"{x:g}", n, frac, _f(r[p + "pruned_clean_accuracy"]),
                     _f(r[p + "pruned_attack_success_rate"]), "", ""])
        rows.append([f"G_{x:g} (repaired)", f"{x:g}", n, frac, _f(r[p + "repaired_clean_accuracy"]),
                     _f(r[p + "repaired_attack_success_rate"]), _f(r[p + "repaired_detection_rate"]),
                     _f(r[p + "repaired_false_positive_rate"])])
    return _table(["net", "X (points)", "channels pruned", "fraction pruned", "clean accuracy %",
                   "attack success rate %", "detection rate %", "false-positive rate %"], rows)


def fine_pruned() -> str:
    """The fine-pruned B'_X and their G (test data)."""
    r, fp = _json("metrics/repaired.json"), _json("metrics/fine_prune.json")
    rows = []
    for x in _thresholds():
        p = f"x{x:g}_fine_"
        if not r[p + "reached"]:
            continue
        rows.append([f"{x:g}", r[p + "channels_pruned"], fp.get(f"x{x:g}_chosen_epoch", ""),
                     _f(r[p + "pruned_clean_accuracy"]), _f(r[p + "pruned_attack_success_rate"]),
                     _f(r[p + "repaired_clean_accuracy"]), _f(r[p + "repaired_detection_rate"]),
                     _f(r[p + "repaired_false_positive_rate"])])
    return _table(["X (points)", "channels pruned", "chosen epoch", "B' clean accuracy %", "B' ASR %",
                   "G clean accuracy %", "G detection rate %", "G false-positive rate %"], rows)


def attack() -> str:
    """The default BadNet and its training set (metrics/attack.json)."""
    a = _json("metrics/attack.json")
    return _table(["trigger", "target", "poison rate", "training images (poisoned)", "training accuracy %",
                   "clean validation accuracy %", "ASR on bd_valid %"],
                  [[a["attack"], a["target"], a["poison_rate"], f"{a['train_images']} ({a['train_poisoned']})",
                    _f(a["train_accuracy"]), _f(a["clean_valid_accuracy"]), _f(a["attack_success_rate"])]])


def defenses() -> str:
    """Every defense of `dvc repro` on the default BadNet (metrics/defenses.json), with its G
    and its scan-gated detector."""
    m = _json("metrics/defenses.json")
    names = [k.removesuffix("_clean_accuracy_test") for k in m
             if k.endswith("_clean_accuracy_test") and k != "badnet_clean_accuracy_test"]
    keys = ("clean_accuracy", "attack_success_rate", "detection_rate", "false_positive_rate",
            "detector_detection_rate", "detector_false_positive_rate")
    rows = [["B (no defense)", _f(m["badnet_clean_accuracy_test"]),
             _f(_json("metrics/baseline.json")["attack_success_rate_test"]), "", "", "", ""]]
    for d in names:
        label = f"{d} (default)" if d == m["default_defense"] else d
        rows.append([label] + [_f(m[f"{d}_{k}_test"]) for k in keys])
    return _table(["defense", "clean accuracy %", "ASR %", "G detection %", "G false positives %",
                   "detector detection %", "detector false positives %"], rows)


def prune_orders() -> str:
    """B' in both pruning orders at each X (metrics/prune_orders.json), as the report shows it."""
    from badnet_repair.report import orders_table

    return orders_table(_json("metrics/prune_orders.json"), _yaml("params.yaml")["prune"]) + "\n"


def _leaderboard():
    from badnet_repair.leaderboard import LEADERBOARD

    return _frame(LEADERBOARD)


def leaderboard() -> str:
    from badnet_repair.leaderboard import leaderboard_markdown

    return leaderboard_markdown(_leaderboard())


def leaderboard_grid() -> str:
    from badnet_repair.report import leaderboard_grid as grid

    return grid(_leaderboard())


def suite_scan() -> str:
    """The scan's verdicts on the suite's nets, B and the default defense's (docs/scan.md)."""
    from badnet_repair.leaderboard import scan_markdown

    return scan_markdown(_leaderboard(), _yaml("params.yaml")["defend"]["default"])


def suite_badnets() -> str:
    from badnet_repair.leaderboard import markdown

    return markdown(_frame("suite/metrics/badnets.csv"))


def frontier() -> str:
    """The oracle fine-pruning frontier (plots/fine_prune_frontier.csv): it reads bd_valid."""
    rows = [[r["channels_pruned"], "none (B' only)" if r["optimizer"] == "none" else
             f"{r['optimizer']}, lr {float(r['learning_rate']):g}, {r['epochs']} epochs", r["chosen_epoch"],
             _f(r["holdout_accuracy"]), _f(r["attack_success_rate_valid"]), _f(r["clean_accuracy_test"]),
             _f(r["attack_success_rate_test"])] for r in _csv("plots/fine_prune_frontier.csv")]
    return _table(["channels pruned", "fine-tuning", "chosen epoch", "holdout accuracy %", "ASR bd_valid %",
                   "clean accuracy test %", "ASR bd_test %"], rows)


def params() -> str:
    """Every param, its value in params.yaml and what it does."""
    doc = _yaml("params.yaml")

    def leaves(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict):
                yield from leaves(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}", v

    def value(v):
        if isinstance(v, list):
            return "[" + ", ".join(str(i) for i in v) + "]"
        return f"`{v}`" if isinstance(v, str) and v else ('`""`' if v == "" else str(v))

    return _table(["param", "default", "what it does"],
                  [[f"`{k}`", value(v), PARAM_DOCS[k]] for k, v in leaves(doc)], "|---|---|---|")


def commands(every_cpu: bool = False) -> str:
    """The README's two commands, timed in a fresh clone (benchmarks/results/commands.csv):
    the README shows the rows of the two AMD CPUs with AVX-512 (keys `repro`, `pytest` and
    their `-family26` twins), docs/speed.md every CPU's."""
    readme = ("repro", "repro-family26", "pytest", "pytest-family26")
    rows = [r for r in _csv(f"{RESULTS}/commands.csv") if every_cpu or r["key"] in readme]
    return _table(["command", "CPU (`lscpu`), 2 cores", "wall time", "measured beside"],
                  [[r["command"], r["cpu"], r["wall_time"], r["beside"]] for r in rows], "|---|---|---:|---|")


def commands_by_cpu() -> str:
    """Every timing of the two commands, on every CPU (benchmarks/results/commands.csv)."""
    return commands(every_cpu=True)


def tests() -> str:
    """The tests' slowest parts (pytest's --durations) in a fresh clone, solo, before and after
    issue 23's cuts (benchmarks/results/tests.csv)."""
    groups: dict = {}  # one table per round of cuts: its two runs and CPU
    for r in _csv(f"{RESULTS}/tests.csv"):
        groups.setdefault((r["before_run"], r["after_run"], r["cpu"]), []).append(r)
    return "\n".join(
        f"Before: {before}. After: {after}. CPU: {cpu}, 2 cores.\n\n"
        + _table(["part", "before (s)", "after (s)", "after / before"],
                 [[r["part"], r["before_seconds"], r["after_seconds"],
                   f"{float(r['after_seconds']) / float(r['before_seconds']):.2f}"] for r in rows],
                 "|---|---:|---:|---:|")
        for (before, after, cpu), rows in groups.items())


def suite_steps() -> str:
    """benchmarks/suite_steps.py: a suite BadNet's steps in one Python against one each
    (benchmarks/results/suite_steps.csv)."""
    rows = _csv(f"{RESULTS}/suite_steps.csv")
    return _table(["net", "steps in one Python (s)", "a Python per step (s)", "ratio", "same bytes", "measured beside",
                   "CPU"],
                  [[r["net"], r["one_python_seconds"], r["python_per_step_seconds"], f"**{r['ratio']}×**",
                    f"{r['same_bytes']} ({r['files']} files)", r["beside"], r["cpu"]] for r in rows],
                  "|---|---:|---:|---:|---|---|---|")


def pipeline() -> str:
    """benchmarks/pipeline.py --out: a whole `dvc repro` in a fresh clone, stage by stage
    (benchmarks/results/pipeline.csv), one table per preset, commit and CPU."""
    groups: dict = {}
    for r in _csv(f"{RESULTS}/pipeline.csv"):
        groups.setdefault((r["preset"], r["rev"], r["cpu"], r["beside"]), []).append(r)
    out = []
    for (preset, rev, cpu, beside), rows in groups.items():
        whole = next(float(r["seconds"]) for r in rows if r["run"].startswith("`dvc repro` from scratch"))
        out.append(f"The {preset} params at {rev}, {cpu}, 2 cores, measured beside: {beside}.\n\n" + _table(
            ["run", "seconds", "share of the whole"],
            [[r["run"], r["seconds"], "" if r["run"].startswith("no-op") else f"{100 * float(r['seconds']) / whole:.0f} %"]
             for r in rows], "|---|---:|---:|"))
    return "\n\n".join(out)


def drawing() -> str:
    """benchmarks/render.py: a multi BadNet's clean images drawn once per trigger against
    once for all (benchmarks/results/render.csv)."""
    rows = _csv(f"{RESULTS}/render.csv")
    return _table(["images drawn", "once per trigger (s)", "once for all (s)", "ratio", "same bytes",
                   "`_paint`'s share of a drawing", "measured beside", "CPU"],
                  [[r["what"], r["per_trigger_seconds"], r["one_pass_seconds"], f"**{r['ratio']}×**", r["same_bytes"],
                    f"{100 * float(r['paint_share']):.0f} %", r["beside"], r["cpu"]] for r in rows],
                  "|---|---:|---:|---:|---|---:|---|---|")


def sweep() -> str:
    """benchmarks/sweep.py's rows (benchmarks/results/sweep.csv)."""
    rows = _csv(f"{RESULTS}/sweep.csv")
    return _table(["BadNet swept", "CPU", "front, once (s)", "sweep, 61 steps (s)", "per step (s)",
                   "naive, per step (s)", "ratio", "identical predictions"],
                  [[r["model"], r["cpu"], r["front_s"], r["sweep_s"], r["per_step_s"], r["naive_per_step_s"],
                    f"**{r['ratio']}×**", r["identical"]] for r in rows], "|---|---|---:|---:|---:|---:|---:|---|")


def training() -> str:
    """benchmarks/training.py's rows (benchmarks/results/training.csv)."""
    rows = _csv(f"{RESULTS}/training.csv")
    return _table(["training", "images/s", "ratio to the pipeline's", "CPU"],
                  [[f"{r['config']}: {r['what']}", r["images_per_s"], f"{r['ratio']}×", r["cpu"]] for r in rows],
                  "|---|---:|---:|---|")


def evaluation() -> str:
    """benchmarks/evaluate.py's rows (benchmarks/results/evaluate.csv)."""
    rows = _csv(f"{RESULTS}/evaluate.csv")
    return _table(["routine", "images", "seconds (fastest of 3)", "time / the project's", "CPU"],
                  [[r["routine"], r["images"], r["seconds"], f"{r['ratio']}×", r["cpu"]] for r in rows],
                  "|---|---:|---:|---:|---|")


def defense_times() -> str:
    """Each defense's wall time per net over the suite (suite/metrics/leaderboard.csv), apart
    for each CPU that ran nets of the run (benchmarks/results/machines.csv: one row per net)."""
    lb = _leaderboard()
    cpu = {r["name"]: r["cpu"] for r in _csv(f"{RESULTS}/machines.csv")}
    missing = sorted(set(lb["name"]) - set(cpu))
    if missing:
        raise SystemExit(f"{RESULTS}/machines.csv: no CPU for the suite's nets {', '.join(missing)}")
    lb = lb.assign(cpu=lb["name"].map(cpu))
    rows = [[d, c, str(g["name"].nunique()), f"{g['seconds'].mean():.0f}", f"{g['seconds'].max():.0f}"]
            for (d, c), g in lb.groupby(["defense", "cpu"], sort=False)]
    return _table(["defense", "CPU", "nets", "mean s per net", "max s"], rows, "|---|---|---:|---:|---:|")


def raw_pixels() -> str:
    """The default defense on the default BadNet fed x / 255 and behind Rescaling(1/255) fed
    raw pixels (benchmarks/results/raw_pixels.csv)."""
    rows = [[r["key"], r["input_divisor"], r["defense"], r["badnet_clean_accuracy_test"], r["clean_accuracy_test"],
             r["attack_success_rate_test"], r["cpu"]] for r in _csv(f"{RESULTS}/raw_pixels.csv")]
    return _table(["B fed", "input_divisor", "defense", "B's clean accuracy %", "defended clean accuracy %",
                   "ASR %", "CPU"], rows, "|---|---:|---|---:|---:|---:|---|")


def i_bau_stop() -> str:
    """I-BAU on the tuning BadNets with and without the scan's stopping rule
    (benchmarks/results/i_bau_stop.csv): test figures, points lost, rounds trained."""
    rows = []
    for r in sorted(_csv(f"{RESULTS}/i_bau_stop.csv"), key=lambda r: r["badnet"]):
        lost = float(r["badnet_clean_accuracy_test"]) - float(r["clean_accuracy_test"])
        rows.append([r["badnet"], r["variant"], f"{r['badnet_clean_accuracy_test']} / {r['badnet_attack_success_rate_test']}",
                     f"{r['clean_accuracy_test']} / {r['attack_success_rate_test']}", f"{lost:.2f}",
                     r["rounds_trained"], r["learning_rate"], r["seconds"], r["cpu"]])
    return _table(["tuning BadNet", "I-BAU", "B: clean % / ASR %", "I-BAU: clean % / ASR %", "points lost",
                   "rounds trained", "learning rate kept", "seconds", "CPU"], rows,
                  "|---|---|---|---|---:|---:|---:|---:|---|")


def i_bau_speed() -> str:
    """benchmarks/i_bau_stop.py's rows of the speed study (benchmarks/results/i_bau_speed.csv):
    each setting on each tuning BadNet, its test figures, whether it meets the target (ASR at
    most 1 %, at most 1 point lost), and its time against today's setting's (variant "V0: ...")
    on the same net and CPU."""
    from badnet_repair.leaderboard import meets_target

    found = _csv(f"{RESULTS}/i_bau_speed.csv")
    today = {(r["badnet"], r["cpu"]): float(r["seconds"]) for r in found if r["variant"].startswith("V0:")}
    rows = []
    for r in sorted(found, key=lambda r: (r["badnet"], r["variant"])):
        lost = float(r["badnet_clean_accuracy_test"]) - float(r["clean_accuracy_test"])
        meets = "yes" if meets_target(float(r["attack_success_rate_test"]), lost) else "no"
        ref = today.get((r["badnet"], r["cpu"]))
        b = f"{r['badnet_clean_accuracy_test']} / {r['badnet_attack_success_rate_test']}"
        rows.append([r["badnet"], r["variant"], b, f"{r['clean_accuracy_test']} / {r['attack_success_rate_test']}",
                     f"{lost:.2f}", meets,
                     r["rounds_trained"], r["seconds"], f"{float(r['seconds']) / ref:.2f}×" if ref else "", r["cpu"]])
    return _table(["tuning BadNet", "I-BAU", "B: clean % / ASR %", "I-BAU: clean % / ASR %", "points lost",
                   "meets the target", "rounds trained", "seconds", "time / V0's", "CPU"], rows,
                  "|---|---|---|---|---:|---|---:|---:|---:|---|")


def _settings_table(name: str, nets: str) -> str:
    """benchmarks/results/NAME.csv (benchmarks/i_bau_stop.py --out NAME): one row per BadNet, one
    column per I-BAU setting, each cell its test clean accuracy / ASR, the rounds trained, and
    whether it meets the repair target; the last row counts the BadNets each setting meets it on."""
    from badnet_repair.leaderboard import meets_target

    found = [r for r in _csv(f"{RESULTS}/{name}.csv") if ", defend.seed " not in r["variant"]]  # i_bau_seeds'
    variants = list(dict.fromkeys(r["variant"] for r in found))
    cell, b, cpus, met = {}, {}, {}, {v: [] for v in variants}
    for r in found:
        lost = float(r["badnet_clean_accuracy_test"]) - float(r["clean_accuracy_test"])
        ok = bool(meets_target(float(r["attack_success_rate_test"]), lost))
        met[r["variant"]].append(ok)
        cell[r["badnet"], r["variant"]] = (f"{r['clean_accuracy_test']} / {r['attack_success_rate_test']}, "
                                          f"{r['rounds_trained']} rounds, {'meets' if ok else '**misses**'}")
        b[r["badnet"]] = f"{r['badnet_clean_accuracy_test']} / {r['badnet_attack_success_rate_test']}"
        cpus.setdefault(r["badnet"], set()).add(r["cpu"])
    rows = [[n, b[n]] + [cell.get((n, v), "") for v in variants] + ["; ".join(sorted(cpus[n]))] for n in sorted(b)]
    rows.append(["target met", ""] + [f"{sum(met[v])} of {len(met[v])}" for v in variants] + [""])
    return _table([nets, "B: clean % / ASR %"] + [f"{v}: clean % / ASR %" for v in variants] + ["CPU"],
                  rows, "|---|---|" + "---|" * len(variants) + "---|")


def i_bau_bound() -> str:
    """The worn-trigger study, on tuning BadNets (benchmarks/i_bau_stop.py --out i_bau_bound)."""
    return _settings_table("i_bau_bound", "tuning BadNet")


def i_bau_seeds() -> str:
    """The same tuning rows read by seed: every setting of benchmarks/results/i_bau_bound.csv also run
    with another `defend.seed` (a variant "X, defend.seed N"; X's own rows are params.yaml's seed), on
    the nets run with more than one seed. A row per setting and seed, each net's points lost / ASR %
    and its verdict; then, per setting, on how many of its seeds each net meets the target."""
    from badnet_repair.leaderboard import meets_target

    found, own = _csv(f"{RESULTS}/i_bau_bound.csv"), int(_yaml("params.yaml")["defend"]["seed"])
    split = [(v.rsplit(", defend.seed ", 1) + [own])[:2] for v in (r["variant"] for r in found)]
    seeded = list(dict.fromkeys(setting for setting, seed in split if int(seed) != own))
    runs = {}  # (setting, seed) -> {net: (lost, asr)}
    for r, (setting, seed) in zip(found, split):
        if setting in seeded:
            lost = float(r["badnet_clean_accuracy_test"]) - float(r["clean_accuracy_test"])
            runs.setdefault((setting, int(seed)), {})[r["badnet"]] = (lost, float(r["attack_success_rate_test"]))
    nets = sorted({n for (setting, seed), by in runs.items() if seed != own for n in by})
    ok = {k: {n: bool(meets_target(a, lost)) for n, (lost, a) in by.items()} for k, by in runs.items()}
    rows = []
    for (setting, seed), by in sorted(runs.items(), key=lambda kv: (seeded.index(kv[0][0]), kv[0][1])):
        cells = [f"{by[n][0]:.2f} / {by[n][1]:.2f}, {'meets' if ok[setting, seed][n] else '**misses**'}"
                 if n in by else "" for n in nets]
        rows.append([setting, seed] + cells + [f"{sum(ok[setting, seed].get(n, False) for n in nets)} of "
                                               f"{sum(n in by for n in nets)}"])
    for setting in seeded:
        seeds = sorted(s for (v, s) in runs if v == setting)
        full = [n for n in nets if all(n in runs[setting, s] for s in seeds)]
        met = {n: sum(ok[setting, s][n] for s in seeds) for n in full}
        most = sum(2 * v > len(seeds) for v in met.values())
        rows.append([f"{setting}: seeds met", ", ".join(map(str, seeds))]
                    + [f"{met[n]} of {len(seeds)}" if n in met else "" for n in nets]
                    + [f"{sum(met.values())} of {len(seeds) * len(full)} runs; "
                       f"{most} of {len(full)} nets on most seeds"])
    return _table(["setting", "defend.seed"] + [f"{n}: points lost / ASR %" for n in nets] + ["target met"],
                  rows, "|---|---:|" + "---|" * (len(nets) + 1))


def i_bau_evaluation() -> str:
    """The settings the worn-trigger study compared, on evaluation nets (BadNets and clean nets)
    after the choice (benchmarks/i_bau_stop.py --out i_bau_evaluation)."""
    return _settings_table("i_bau_evaluation", "evaluation net")


def defense_solo() -> str:
    """benchmarks/defenses.py --write: each defense alone on one BadNet, against the 90 s budget."""
    rows = [[r["badnet"], r["defense"], r["seconds"], r["budget_ratio"], r["kept"], r["cpu"]]
            for r in _csv(f"{RESULTS}/defense_solo.csv")]
    return _table(["BadNet", "defense", "seconds", "/ 90 s", "setting kept", "CPU"], rows,
                  "|---|---|---:|---:|---|---|")


def family_strength() -> str:
    """benchmarks/family_strength.py's rows: each family's BadNet at CSAW scale under each
    setting tried, against the strength bar (95 % clean, 99 % ASR, validation)."""
    rows = []
    for r in _csv(f"{RESULTS}/family_strength.csv"):
        strong = float(r["clean_accuracy_valid"]) >= 95 and float(r["attack_success_rate_valid"]) >= 99
        cross = f" + {r['train_cross']}" if int(r["train_cross"]) else ""
        rows.append([f"`{r['attack']}`", r["poison_rate"], r["setting"].replace(" ", ", "), r["clean_accuracy_valid"],
                     r["attack_success_rate_valid"], "yes" if strong else "no", f"{r['train_poisoned']}{cross}",
                     r["train_seconds"], r["seconds"], r["beside"], r["cpu"]])
    return _table(["attack", "poison rate", "setting (families.py)", "clean % (valid)", "ASR % (valid)",
                   "meets the bar", "poisoned (+ noise/cross) images", "training s", "drawing + training s",
                   "measured beside", "CPU"], rows, "|---|---:|---|---:|---:|---|---:|---:|---:|---|---|")


def defense_compare() -> str:
    """benchmarks/defenses.py --compare's rows: a defense under two params files on one
    BadNet, side by side: seconds, their ratio, the setting kept, identical weights or not."""
    rows = [[r["badnet"], r["defense"], f"`{r['before']}`", r["seconds_before"], r["seconds_after"], f"{r['ratio']}×",
             r["kept_before"], r["kept_after"], "yes" if r["same_weights"] == "True" else "no", r["cpu"]]
            for r in _csv(f"{RESULTS}/defense_compare.csv")]
    return _table(["BadNet", "defense", "before", "s before", "s after", "after / before", "kept before",
                   "kept after", "same weights", "CPU"], rows, "|---|---|---|---:|---:|---:|---|---|---|---|")


def scan_calibration() -> str:
    """benchmarks/scan_calibration.py's rows: per net and bound, the share of the holdout the
    perturbation sends to each true target and the largest share of any other candidate;
    then the bound scan.calibrate chooses from the clean nets' rows alone."""
    from badnet_repair import scan

    rows = _csv(f"{RESULTS}/scan_calibration.csv")
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["net"], r["kind"], r["bound"], r["seconds"], r["cpu"]), []).append(r)
    out = []
    for (net, kind, bound, seconds, cpu), rs in groups.items():
        hits = [f"{r['class']}: {100 * float(r['share']):.1f}" for r in rs if r["is_target"] == "True"]
        other = max((float(r["share"]) for r in rs if r["is_target"] != "True"), default=0.0)
        out.append([net, kind, bound, ", ".join(hits) or "none", f"{100 * other:.1f}", seconds, cpu])
    threshold = _yaml("params.yaml")["scan"]["threshold"]
    table = _table(["net", "kind", "bound", "the attack's targets (class: share %)", "largest other share %", "seconds", "CPU"],
                   out, "|---|---|---:|---|---:|---:|---|")
    return (table + f"\n\nFrom the clean nets' rows alone, `scan.calibrate` chooses bound "
            f"**{scan.calibrate(rows, threshold):g}** (threshold {threshold:g}, margin 2).\n")


def scan_offsets() -> str:
    """benchmarks/scan_offsets.py's rows: the scan's time per net without and with its offset
    search, in turns in one process."""
    rows = [[r["net"], r["shifts"], r["repeats"], r["median_seconds"], r["ratio"], r["found"], r["beside"], r["cpu"]]
            for r in _csv(f"{RESULTS}/scan_offsets.csv")]
    return _table(["net", "scan.shifts", "repeats", "median s", "ratio to no offsets", "found", "beside", "CPU"],
                  rows, "|---|---:|---:|---:|---:|---|---|---|")


def scan_trace() -> str:
    """benchmarks/scan_trace.py's rows: one scan of B with the search traced once per net and
    once per search, in turns in one process."""
    rows = [[r["net"], r["form"], r["searches"], r["seconds"], r["ratio"], r["beside"], r["cpu"]]
            for r in _csv(f"{RESULTS}/scan_trace.csv")]
    return _table(["net", "the search's tf.function", "searches", "s", "ratio", "beside", "CPU"],
                  rows, "|---|---|---:|---:|---:|---|---|")


def offset_detector() -> str:
    """benchmarks/offset_detector.py's rows: an all-to-all net's detector if it looked at the
    defended net's m highest classes, m chosen on the clean holdout."""
    rows = [[r["net"], r["defense"], r["m"], "yes" if r["chosen"] == "True" else "", r["holdout_flagged"],
             r["test_flagged"], r["detection"], r["detection_of_obeyed"], r["cpu"]]
            for r in _csv(f"{RESULTS}/offset_detector.csv")]
    return _table(["net", "defense", "m", "chosen", "holdout flagged %", "clean test flagged %", "detection %",
                   "detection of what B obeys %", "CPU"], rows, "|---|---|---:|---|---:|---:|---:|---:|---|")


def i_bau_phases() -> str:
    """benchmarks/i_bau_phases.py's rows: where one I-BAU run's time goes, per net."""
    rows = [[r["net"], r["phase"], r["seconds"], r["calls"], r["share"], r["run_seconds"], r["rounds_trained"],
             r["beside"], r["cpu"]] for r in _csv(f"{RESULTS}/i_bau_phases.csv")]
    return _table(["net", "phase", "s", "calls", "% of the run", "run s", "rounds trained", "beside", "CPU"],
                  rows, "|---|---|---:|---:|---:|---:|---:|---|---|")


def holdout_split() -> str:
    """benchmarks/holdout_split.py's rows: I-BAU with each holdout split, where its clean loss reads."""
    rows = []
    for r in _csv(f"{RESULTS}/holdout_split.csv"):
        lost = [float(r[f"badnet_{w}"]) - float(r[f"defended_{w}"]) for w in ("holdout", "test")]
        by = ", ".join("{}: {} of {}".format(*c.replace(":", "/").split("/"))
                       for c in r["defended_test_by_trained"].split())
        rows.append([r["badnet"], r["split"], r["holdout_images"], r["trained_per_class"],
                     f"{r['badnet_holdout']} / {r['badnet_test']}",
                     f"{r['defended_train']} / {r['defended_holdout']} / {r['defended_test']}",
                     f"{lost[0]:.2f} / {lost[1]:.2f}", by, r["cpu"]])
    return _table(["tuning BadNet", "split", "holdout images", "images a class trains on", "B: holdout / test %",
                   "I-BAU: training share / holdout / test %", "points lost: holdout / test",
                   "I-BAU's test accuracy by the images its class trained on (images: % of so many test images)",
                   "CPU"],
                  rows, "|---|---|---:|---|---|---|---|---|---|")


RENDERERS = {f.__name__: f for f in (mission, fine_pruned, attack, defenses, leaderboard, leaderboard_grid,
                                     suite_badnets, suite_scan, frontier, params, commands, sweep, evaluation, training,
                                     defense_times, raw_pixels, scan_calibration, scan_offsets, scan_trace, offset_detector,
                                     i_bau_phases, prune_orders, i_bau_stop, i_bau_speed, i_bau_bound, i_bau_evaluation,
                                     i_bau_seeds, defense_solo, family_strength, defense_compare, tests, suite_steps, pipeline,
                                     drawing, commands_by_cpu, holdout_split)}


def pages(root: Path = ROOT) -> list[Path]:
    return sorted(p for pattern in PAGES for p in root.glob(pattern))


def render(text: str, where: str = "page", read=working_tree) -> str:
    """`text` with every render block refilled from the files `read` gives."""
    global _read

    def fill(m):
        name = m.group(2)
        if name not in RENDERERS:
            raise KeyError(f"{where}: unknown render block {name!r}")
        return m.group(1) + "\n" + RENDERERS[name]() + "\n" + m.group(4)

    _read, before = read, _read
    try:
        return BLOCK.sub(fill, text)
    finally:
        _read = before


def machine() -> str:
    """This CPU as the pages name it: model, family and whether it has AVX-512 (`lscpu`)."""
    info = {}
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())
    avx = "AVX-512" if "avx512f" in info.get("flags", "").split() else "no AVX-512"
    return f"{info.get('model name', 'unknown CPU')}, family {info.get('cpu family', '?')}, {avx}"


def append(name: str, row: dict, root: Path = ROOT) -> Path:
    """Add `row`, with this CPU in a `cpu` column, to benchmarks/results/NAME.csv (its header
    first where the file is new): a benchmark's rows add up over runs, as its study reads them."""
    path = root / RESULTS / f"{name}.csv"
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(row) + ["cpu"], lineterminator="\n")
        if new:
            w.writeheader()
        w.writerow(dict(row, cpu=machine()))
    return path


def record(name: str, rows: list[dict], root: Path = ROOT) -> Path:
    """Replace benchmarks/results/NAME.csv's rows for the same `key` with `rows` (each with
    a `cpu` column), so a rerun updates the figures the pages render."""
    path = root / RESULTS / f"{name}.csv"
    old = list(csv.DictReader(io.StringIO(path.read_text()))) if path.exists() else []
    keys = {r["key"] for r in rows}
    out = [r for r in old if r["key"] not in keys] + rows
    fields = list(dict.fromkeys(k for r in out for k in r))
    path.parent.mkdir(parents=True, exist_ok=True)
    from badnet_repair.atomic import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fields)
        w.writeheader()
        w.writerows(out)
    return path
