"""Scores of B, B' and G from predicted classes, and the results table."""
from __future__ import annotations

import numpy as np

from .evaluate import percent


def baseline(pred: dict, labels: dict, files: dict | None = None) -> dict:
    """B's clean accuracy and ASR (percent) on the four files, and macro P/R/F1 on clean test;
    with the datasets in `files`, the ASR of each trigger of a multi-trigger file too."""
    p, r, f = macro_scores(labels["test"], pred["test"])
    return {
        "clean_accuracy_valid": percent(pred["valid"], labels["valid"]),
        "clean_accuracy_test": percent(pred["test"], labels["test"]),
        "attack_success_rate_valid": percent(pred["bd_valid"], labels["bd_valid"]),
        "attack_success_rate_test": percent(pred["bd_test"], labels["bd_test"]),
        "precision_macro_test": 100.0 * p,
        "recall_macro_test": 100.0 * r,
        "f1_macro_test": 100.0 * f,
        **{f"attack_success_rate_{split.removeprefix('bd_')}_{name}": v
           for split in ("bd_valid", "bd_test") if files and split in files
           for name, v in attack_success_rates(pred[split], files[split]).items()},
    }


def macro_scores(labels, pred) -> tuple:
    """Macro precision, recall and F1 (fractions) over every class among the labels or the
    predictions; a ratio with nothing to count (a class never predicted, say) is 0."""
    classes, index = np.unique(np.concatenate([labels, pred]), return_inverse=True)
    true, said, n = index[:len(labels)], index[len(labels):], len(classes)
    tp, true_sum, pred_sum = (np.bincount(i, minlength=n) for i in (true[true == said], true, said))

    def mean_ratio(num, den):
        return float(np.divide(num, den, out=np.zeros(n), where=den > 0).mean())

    return mean_ratio(tp, pred_sum), mean_ratio(tp, true_sum), mean_ratio(2 * tp, true_sum + pred_sum)


def attack_success_rates(bd_pred, bd) -> dict:
    """ASR (percent) per trigger of a multi-trigger poisoned file; {} for a one-trigger file."""
    if bd.trigger is None:
        return {}
    return {name: percent(bd_pred[bd.trigger == i], bd.y[bd.trigger == i]) for i, name in enumerate(bd.names)}


def repaired(clean_pred, clean_labels, bd_pred, bd_labels, num_classes: int) -> dict:
    """G's scores (percent). Class `num_classes` (N) is G's "poisoned" answer: it counts as
    wrong for clean accuracy, as a detection on poisoned inputs and a false positive on clean."""
    return {
        "clean_accuracy": percent(clean_pred, clean_labels),
        "attack_success_rate": percent(bd_pred, bd_labels),
        "detection_rate": percent(bd_pred, np.full(len(bd_pred), num_classes)),
        "false_positive_rate": percent(clean_pred, np.full(len(clean_pred), num_classes)),
    }


KIND_NAMES = {"pruned": "pruned", "fine_pruned": "fine-pruned"}


def threshold_label(drop: str) -> str:
    """The heading of X: points (prune.drop: absolute) or percent of B's accuracy (relative)."""
    return "X (points)" if drop == "absolute" else "X (% of B's accuracy)"


def results_table(rows: list[dict], baseline_row: dict, drop: str) -> str:
    """Markdown tables in the manner of the seed report's Tables 1 and 2, one row per
    threshold X and kind of B' (pruned only, fine-pruned)."""
    x = threshold_label(drop)

    def f(v):
        return "n/a" if v is None else f"{v:.2f}"

    out = ["## Pruned net B' (test data)", "",
           f"| {x} | B' | channels pruned | fraction pruned | clean accuracy % | attack success rate % |",
           "|---:|---|---:|---:|---:|---:|",
           f"| B (0) | none | 0 | 0.000 | {f(baseline_row['clean_accuracy_test'])} | "
           f"{f(baseline_row['attack_success_rate_test'])} |"]
    for r in rows:
        frac = "n/a" if r["fraction_pruned"] is None else f"{r['fraction_pruned']:.3f}"
        steps = "not reached" if r["channels_pruned"] is None else r["channels_pruned"]
        out.append(f"| {r['threshold']:g} | {KIND_NAMES[r['kind']]} | {steps} | {frac} | "
                   f"{f(r['pruned_clean_accuracy'])} | {f(r['pruned_attack_success_rate'])} |")
    out += ["", "## Repaired net G (test data; class N = poisoned)", "",
            f"| {x} | B' in G | clean accuracy % | attack success rate % | detection rate % | false-positive rate % |",
            "|---:|---|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['threshold']:g} | {KIND_NAMES[r['kind']]} | {f(r['repaired_clean_accuracy'])} | "
                   f"{f(r['repaired_attack_success_rate'])} | {f(r['repaired_detection_rate'])} | "
                   f"{f(r['repaired_false_positive_rate'])} |")
    return "\n".join(out) + "\n"
