"""The attack suite's two summaries: the table of BadNets (suite/metrics/badnets.csv) and the
leaderboard of defenses (suite/metrics/leaderboard.csv), with their markdown. Both read each
net's scores file (suite/scores/NAME.json), which `scores@NAME` gathers from the net's folder
once its stages have run (scores.py). Apart from suite.py and scores.py, which the per-net
stages run, so a change here re-runs only the table and the leaderboard."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from .artifacts import ATTACK_METRICS, BASELINE_METRICS, DEFENSES_METRICS, SCAN_METRICS, TRAIN_TIME
from .errors import BadInput
from .scores import SCORES, read_scores
from .suite import DEFENSE_TIMES, SUITE_PARAMS, entries

TUNING, EVALUATION = "tuning", "evaluation"


def tuning(path=SUITE_PARAMS) -> list:
    """The tuning set (suite/params.yaml: tuning): the nets every choice made by looking at
    ASR was made on. Every other net of the suite is the evaluation set."""
    import yaml

    names = (yaml.safe_load(Path(path).read_text()) or {}).get("tuning")
    known = entries(path)
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
        raise BadInput(f"{path}: 'tuning' must list distinct nets of 'badnets'")
    if set(names) - set(known):
        raise BadInput(f"{path}: 'tuning' names {sorted(set(names) - set(known))[0]!r}, not a net of 'badnets'")
    if not set(known) - set(names):
        raise BadInput(f"{path}: 'tuning' holds every net; the evaluation set must not be empty")
    return names


TABLE = "suite/metrics/badnets.csv"


def scored(names, root=SCORES) -> list:
    """The nets of `names` whose scores file exists, in `names`' order; the others, whose
    scores@ has not run yet, are named on stderr. The table and the leaderboard are built
    from these: a suite run across sessions or machines shows what has finished."""
    here = [n for n in names if (Path(root) / f"{n}.json").is_file()]
    if not here:
        raise BadInput(f"{root}: no net of the suite has scores yet; run `cd suite && dvc repro`")
    missing = [n for n in names if n not in here]
    if missing:
        print(f"not run yet (no scores in {root}): {', '.join(missing)}", file=sys.stderr)
    return here


def _row(name: str, root: Path) -> dict:
    files = read_scores(name, root)
    attack, base = files[ATTACK_METRICS], files[BASELINE_METRICS]
    seconds = files[TRAIN_TIME]["train_seconds"]
    triggers = list(attack["triggers"])
    per = {}
    for split in ("valid", "test"):
        if len(triggers) == 1:  # one trigger: the file's ASR is that trigger's
            per[split] = {triggers[0]: base[f"attack_success_rate_{split}"]}
        else:
            per[split] = {t: base[f"attack_success_rate_{split}_{t}"] for t in triggers}
    row = {"name": name, "attack": attack["attack"], "seed": attack["seed"],
           "targets": " ".join(f"{t}:{g}" for t, g in attack["triggers"].items()),
           "poison_rate": attack["poison_rate"],
           "clean_accuracy_valid": base["clean_accuracy_valid"],
           "attack_success_rate_valid": min(per["valid"].values()),
           "clean_accuracy_test": base["clean_accuracy_test"],
           "attack_success_rate_test": min(per["test"].values())}
    row.update({f"attack_success_rate_test_{t}": v for t, v in per["test"].items()})
    row["train_seconds"] = seconds
    return row


def table(names, root=SCORES) -> pd.DataFrame:
    """One row per BadNet; ASR is the lowest over its triggers, then one column per trigger."""
    rows = [_row(n, Path(root)) for n in names]
    per_trigger = sorted({k for r in rows for k in r if k.startswith("attack_success_rate_test_")})
    first = [k for k in rows[0] if not k.startswith("attack_success_rate_test_") and k != "train_seconds"]
    return pd.DataFrame(rows, columns=first + per_trigger + ["train_seconds"]).replace({np.nan: None})


def markdown(rows: pd.DataFrame) -> str:
    """The suite table as docs/pipeline.md shows it, from badnets.csv."""
    per = [c for c in rows.columns if c.startswith("attack_success_rate_test_")]
    lines = ["| BadNet | triggers → targets | poison rate | clean accuracy % (test) | "
             "ASR % (test, lowest) | ASR % per trigger | training s |", "|---|---|---:|---:|---:|---|---:|"]
    for _, r in rows.iterrows():
        each = ", ".join(f"{c.removeprefix('attack_success_rate_test_')} {r[c]:.2f}" for c in per if pd.notna(r[c]))
        lines.append(f"| {r['name']} | {r['targets'].replace(':', ' → ')} | {r['poison_rate']:g} | "
                     f"{r['clean_accuracy_test']:.2f} | {r['attack_success_rate_test']:.2f} | {each} | "
                     f"{r['train_seconds']:.0f} |")
    return "\n".join(lines) + "\n"


LEADERBOARD = "suite/metrics/leaderboard.csv"
LEADERBOARD_PLOT = "suite/plots/leaderboard.png"
LEADERBOARD_COLUMNS = ["name", "set", "attack", "seed", "poison_rate", "targets", "defense", "clean_accuracy_test",
                       "attack_success_rate_test", "baseline_clean_accuracy_test", "baseline_attack_success_rate_test",
                       "detection_rate_test", "false_positive_rate_test", "detector_detection_rate_test",
                       "detector_false_positive_rate_test", "badnet_scan_targets", "badnet_scan_share", "scan_targets",
                       "scan_share", "seconds"]


def _found(scan: dict, net: str, path) -> str:
    """The targets the scan named on one net and its offsets as y+k, space-separated ("" where
    it found none; a scan from before offsets has none)."""
    if not isinstance(scan.get(net), dict) or not isinstance(scan[net].get("targets"), list):
        raise BadInput(f"{path}: no scan of {net!r}; run `cd suite && dvc repro` again")
    return " ".join([*map(str, scan[net]["targets"]), *(f"y+{k}" for k in scan[net].get("shifts", []))])


def _share(scan: dict, net: str, path) -> float:
    """The largest share of clean images the scan's perturbations sent to one class on one
    net, in percent: the figure its verdict compares with the threshold."""
    if not isinstance(scan.get(net), dict) or not isinstance(scan[net].get("share"), (int, float)):
        raise BadInput(f"{path}: no scan share of {net!r}; run `cd suite && dvc repro` again")
    return round(100.0 * scan[net]["share"], 2)


def leaderboard(names, defense_names, tuned=(), root=SCORES) -> pd.DataFrame:
    """One row per (net, defense), its set the tuning set where its name is in `tuned`, the
    evaluation set otherwise: the defended net on test (ASR: the highest over the
    triggers), B's scores beside it, G's and the scan-gated detector's detection and
    false-positive rates, the targets the scan found on B and on the defended net, and the
    time. A clean net (poison rate 0) has rows as a BadNet has."""
    rows = []
    for name in names:
        files = read_scores(name, root)
        where = Path(root) / f"{name}.json"  # named in a missing score's error
        scan_file = f"{where} ({SCAN_METRICS})"
        info, base = files[ATTACK_METRICS], files[BASELINE_METRICS]  # the attack's facts, B's scores
        scores, scan, times = files[DEFENSES_METRICS], files[SCAN_METRICS], files[DEFENSE_TIMES]
        b_asr = max([base["attack_success_rate_test"]] +
                    [base[f"attack_success_rate_test_{t}"] for t in info["triggers"] if len(info["triggers"]) > 1])
        for d in defense_names:
            if f"{d}_clean_accuracy_test" not in scores:
                raise BadInput(f"{where} ({DEFENSES_METRICS}): no scores for {d!r}; run "
                               f"`cd suite && dvc repro defend@{name}`")
            if d not in times:
                raise BadInput(f"{where} ({DEFENSE_TIMES}): no time for {d!r}; run `cd suite && dvc repro defend@{name}`")
            if f"{d}_detector_detection_rate_test" not in scores:
                raise BadInput(f"{where} ({DEFENSES_METRICS}): no detector scores for {d!r}; run "
                               f"`cd suite && dvc repro defend@{name}`")
            rows.append({"name": name, "set": TUNING if name in tuned else EVALUATION, "attack": info["attack"],
                         "seed": info["seed"], "poison_rate": info["poison_rate"],
                         "targets": " ".join(f"{t}:{g}" for t, g in info["triggers"].items()), "defense": d,
                         "clean_accuracy_test": scores[f"{d}_clean_accuracy_test"],
                         "attack_success_rate_test": scores[f"{d}_attack_success_rate_test"],
                         "baseline_clean_accuracy_test": base["clean_accuracy_test"],
                         "baseline_attack_success_rate_test": b_asr,
                         "detection_rate_test": scores[f"{d}_detection_rate_test"],
                         "false_positive_rate_test": scores[f"{d}_false_positive_rate_test"],
                         "detector_detection_rate_test": scores[f"{d}_detector_detection_rate_test"],
                         "detector_false_positive_rate_test": scores[f"{d}_detector_false_positive_rate_test"],
                         "badnet_scan_targets": _found(scan, "badnet", scan_file),
                         "badnet_scan_share": _share(scan, "badnet", scan_file),
                         "scan_targets": _found(scan, d, scan_file),
                         "scan_share": _share(scan, d, scan_file),
                         "seconds": times[d]})
    return pd.DataFrame(rows, columns=LEADERBOARD_COLUMNS)


def _sets(rows: pd.DataFrame) -> pd.Series:
    """Each row's set. A leaderboard written before the split has no set column: every net of
    it was looked at while the defaults were chosen, so all of them are tuning nets."""
    return rows["set"] if "set" in rows else pd.Series(TUNING, index=rows.index)


def _split(rows: pd.DataFrame):
    """(BadNets' rows, clean nets' rows). A leaderboard written before the suite had clean
    nets has no poison_rate column: all its rows are BadNets'."""
    if "poison_rate" not in rows:
        return rows, rows.iloc[:0]
    return rows[rows["poison_rate"] > 0], rows[rows["poison_rate"] == 0]


def _points(v: float) -> str:
    """A loss in points, 2 decimals; a loss that rounds to zero from below shows as 0.00."""
    text = f"{v:.2f}"
    return "0.00" if text == "-0.00" else text


def _by_set(rows: pd.DataFrame):
    """((set, defense), rows) groups: the evaluation set first, whose figures the README
    claims, then the tuning set; defenses in the leaderboard's order within each."""
    sets = _sets(rows)
    for s in (EVALUATION, TUNING):
        yield from (((s, d), g) for d, g in rows[sets == s].groupby("defense", sort=False))


def meets_target(attack_success_rate, points_lost):
    """The repair target: ASR at most 1 % with at most 1 point of clean accuracy lost (test).
    Floats or pandas Series alike."""
    return (attack_success_rate <= 1.0) & (points_lost <= 1.0)


def leaderboard_markdown(rows: pd.DataFrame) -> str:
    """The leaderboard summary (README, docs/defenses.md): per set and defense, over the suite's BadNets, the clean loss, the ASR
    and G (and the scan-gated detector, where the leaderboard has it), and how many BadNets meet the target (ASR <= 1%,
    loss <= 1 point); then, where the suite has clean nets, what each defense costs on them and how often each detector
    flags their clean images."""
    bad, clean = _split(rows)
    det = "detector_detection_rate_test" in rows
    lines = ["| set | defense | BadNets | clean loss, points (mean / worst) | ASR % (median / worst) | "
             "G detection % (mean) | G false positives % (mean) | "
             + ("detector detection % (mean / worst) | detector false positives % (mean / worst) | " if det else "")
             + "target met | seconds (mean) |",
             "|---|---|---:|---:|---:|---:|---:|" + ("---:|---:|" if det else "") + "---:|---:|"]
    for (s, d), g in _by_set(bad):
        loss = g["baseline_clean_accuracy_test"] - g["clean_accuracy_test"]
        met = int(meets_target(g["attack_success_rate_test"], loss).sum())
        lines.append(f"| {s} | {d} | {len(g)} | {_points(loss.mean())} / {_points(loss.max())} | "
                     f"{g['attack_success_rate_test'].median():.2f} / {g['attack_success_rate_test'].max():.2f} | "
                     f"{g['detection_rate_test'].mean():.2f} | {g['false_positive_rate_test'].mean():.2f} | "
                     + (f"{g['detector_detection_rate_test'].mean():.2f} / {g['detector_detection_rate_test'].min():.2f} | "
                        f"{g['detector_false_positive_rate_test'].mean():.2f} / "
                        f"{g['detector_false_positive_rate_test'].max():.2f} | " if det else "")
                     + f"{met} of {len(g)} | {g['seconds'].mean():.0f} |")
    if len(clean):
        lines += ["", "| set | defense | clean nets | clean loss, points (mean / worst) | G flags % (mean / worst) | "
                      "detector flags % (mean / worst) | scan calls the defended net clean | seconds (mean) |",
                      "|---|---|---:|---:|---:|---:|---:|---:|"]
        for (s, d), g in _by_set(clean):
            loss = g["baseline_clean_accuracy_test"] - g["clean_accuracy_test"]
            quiet = int((g["scan_targets"].fillna("").astype(str).str.strip() == "").sum())
            lines.append(f"| {s} | {d} | {len(g)} | {_points(loss.mean())} / {_points(loss.max())} | "
                         f"{g['false_positive_rate_test'].mean():.2f} / {g['false_positive_rate_test'].max():.2f} | "
                         f"{g['detector_false_positive_rate_test'].mean():.2f} / "
                         f"{g['detector_false_positive_rate_test'].max():.2f} | {quiet} of {len(g)} | "
                         f"{g['seconds'].mean():.0f} |")
    return "\n".join(lines) + "\n"


def _verdict(targets, share) -> str:
    # as read back from the CSV: a column of single targets and empty cells comes as floats
    found = "" if pd.isna(targets) else str(int(targets)) if isinstance(targets, (float, int, np.integer)) \
        else str(targets).strip()
    return f"backdoor → {found.replace(' ', ', ')} ({share:.1f} %)" if found else f"clean ({share:.1f} %)"


NO_SCAN = "The committed leaderboard predates the scan's columns: this table appears with the suite's next finished run.\n"


def scan_markdown(rows: pd.DataFrame, default: str) -> str:
    """The scan on the suite (docs/scan.md): per net, the attack's targets (which the scan
    never reads), the scan's verdict on B and on the net `default` defended, with the
    largest share it sent to one class; BadNets first, then clean nets."""
    if "badnet_scan_share" not in rows:
        return NO_SCAN
    bad, clean = _split(rows)
    lines = ["| net | poison rate | the attack's targets | scan of B: verdict (share) | "
             f"{default} ASR % (test) | scan of the {default} net: verdict (share) |",
             "|---|---:|---|---|---:|---|"]
    for _, r in pd.concat([bad, clean]).iterrows():
        if r["defense"] != default:
            continue
        truth = " ".join(t.split(":")[1] for t in r["targets"].split()) if r["poison_rate"] > 0 else "none (clean net)"
        lines.append(f"| {r['name']} | {r['poison_rate']:g} | {truth} | "
                     f"{_verdict(r['badnet_scan_targets'], r['badnet_scan_share'])} | "
                     f"{r['attack_success_rate_test']:.2f} | {_verdict(r['scan_targets'], r['scan_share'])} |")
    return "\n".join(lines) + "\n"


LEADERBOARD_TITLE = ("Defenses on the attack suite: ASR against clean accuracy lost (test)\n"
                     "filled: evaluation nets, hollow: tuning nets; dashed: the target, ASR <= 1% within 1 point")


def figure(rows: pd.DataFrame, path) -> None:
    """ASR against clean loss, one mark per (net, defense), one colour and marker per defense,
    filled for the evaluation set and hollow for the tuning set. The ASR axis is symlog,
    linear up to 1 %, so the 0-3 % region where repairs land can be read beside 100 %."""
    from .plots import plt, save

    fig, ax = plt.subplots(figsize=(8, 5.2))
    sets = _sets(rows)
    for i, (d, g) in enumerate(rows.groupby("defense", sort=False)):
        colour, marker = f"C{i % 10}", "osD^vP*X"[i % 8]
        label = d  # once per defense, on its first marks
        for s, fill in ((EVALUATION, colour), (TUNING, "none")):
            part = g[sets[g.index] == s]
            if len(part):
                ax.scatter(part["baseline_clean_accuracy_test"] - part["clean_accuracy_test"],
                           part["attack_success_rate_test"], facecolors=fill, edgecolors=colour, marker=marker,
                           alpha=0.85, label=label)
                label = None
    ax.set_yscale("symlog", linthresh=1.0, linscale=1.0)
    ax.set_ylim(0, 130)  # room above 100 % for the marks there
    ax.set_yticks([0, 0.5, 1, 3, 10, 30, 100])
    ax.set_yticklabels(["0", "0.5", "1", "3", "10", "30", "100"])
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.axvline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("clean accuracy lost, points (test)")
    ax.set_ylabel("attack success rate % (test, worst trigger; symlog)")
    ax.set_title(LEADERBOARD_TITLE, fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="center right")
    save(fig, path)
