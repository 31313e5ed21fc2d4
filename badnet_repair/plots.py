"""Matplotlib figures (drawn off-screen)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .atomic import atomic_path  # noqa: E402


def samples_grid(clean: np.ndarray, poisoned: np.ndarray, clean_labels, poisoned_labels,
                 path, cols: int = 4) -> None:
    """Pairs of clean and poisoned images side by side, each titled with its stored label."""
    n = min(len(clean), len(poisoned))
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, 2 * cols, figsize=(2 * cols * 1.1, rows * 1.5), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        r, c = divmod(i, cols)
        for j, (img, lab, kind) in enumerate(((clean[i], clean_labels[i], "clean"),
                                              (poisoned[i], poisoned_labels[i], "poisoned"))):
            ax = axes[r, 2 * c + j]
            ax.imshow(np.clip(img, 0, 255).astype(np.uint8))
            ax.set_title(f"{kind}\nlabel {int(lab)}", fontsize=7)
    fig.suptitle("Clean validation images and their poisoned (bd_valid) counterparts", fontsize=9)
    save(fig, path)


def trigger_gallery(clean: np.ndarray, triggered: dict, labels, targets: dict, path) -> None:
    """One row per face: clean, then wearing each trigger kind; the BadNet's own triggers
    are titled with their target."""
    cols = 1 + len(triggered)
    fig, axes = plt.subplots(len(clean), cols, figsize=(cols * 1.2, len(clean) * 1.5), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for r in range(len(clean)):
        axes[r, 0].imshow(clean[r])
        axes[r, 0].set_title(f"clean\nlabel {int(labels[r])}", fontsize=7)
        for c, (kind, imgs) in enumerate(triggered.items(), start=1):
            axes[r, c].imshow(imgs[r])
            note = f"-> {targets[kind]}" if kind in targets else "(not this BadNet's)"
            axes[r, c].set_title(f"{kind}\n{note}", fontsize=7)
    fig.suptitle("Every trigger kind on the same faces; this BadNet's triggers show their target", fontsize=9)
    save(fig, path)


def save(fig, path) -> None:
    """Write `fig` as a PNG with no timestamp (the same bytes each run), and close it."""
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)


def sweep_figure(sweep, path) -> None:
    """Clean accuracy and ASR against the fraction of channels pruned (seed report Fig. 3)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, split in zip(axes, ("valid", "test")):
        ax.plot(sweep["fraction_pruned"], sweep[f"clean_accuracy_{split}"], label="clean accuracy", color="tab:blue")
        ax.plot(sweep["fraction_pruned"], sweep[f"attack_success_rate_{split}"], label="attack success rate",
                color="tab:red")
        ax.set_title(f"{split} data")
        ax.set_xlabel("fraction of channels pruned")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("%")
    axes[0].legend(loc="lower left")
    save(fig, path)


def orders_figure(rows, path) -> None:
    """The sweep in each pruning order (plots/prune_orders.csv): clean accuracy and ASR on
    test data against the fraction pruned, one panel per order."""
    orders = list(dict.fromkeys(rows["order"]))
    fig, axes = plt.subplots(1, len(orders), figsize=(5 * len(orders), 4), sharey=True, squeeze=False)
    for ax, order in zip(axes[0], orders):
        r = rows[rows["order"] == order]
        ax.plot(r["fraction_pruned"], r["clean_accuracy_test"], label="clean accuracy", color="tab:blue")
        ax.plot(r["fraction_pruned"], r["attack_success_rate_test"], label="attack success rate", color="tab:red")
        first = "least" if order == "ascending" else "most"
        ax.set_title(f"{order}: the {first} active channels first (test data)", fontsize=9)
        ax.set_xlabel("fraction of channels pruned")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("%")
    axes[0, 0].legend(loc="lower left")
    save(fig, path)


def repaired_bars(rows, path) -> None:
    """B' and G per threshold on test data, pruned-only and fine-pruned (seed report Figs. 4-5)."""
    kinds = [k for k in ("pruned", "fine_pruned") if any(r["kind"] == k for r in rows)]
    fig, axes = plt.subplots(len(kinds), 2, figsize=(10, 3.6 * len(kinds)), sharey=True, squeeze=False)
    for i, kind in enumerate(kinds):
        mine = [r for r in rows if r["kind"] == kind]
        pos = np.arange(len(mine))
        for ax, (key, title) in zip(axes[i], (("pruned", "B'"), ("repaired", "G"))):
            acc = [np.nan if r[f"{key}_clean_accuracy"] is None else r[f"{key}_clean_accuracy"] for r in mine]
            asr = [np.nan if r[f"{key}_attack_success_rate"] is None else r[f"{key}_attack_success_rate"]
                   for r in mine]
            ax.bar(pos - 0.2, acc, 0.4, label="clean accuracy", color="tab:blue")
            ax.bar(pos + 0.2, asr, 0.4, label="attack success rate", color="tab:red")
            ax.set_xticks(pos, [f"X={r['threshold']:g}" for r in mine])
            ax.set_title(f"{title}, {kind.replace('_', '-')} B'")
            ax.grid(alpha=0.3, axis="y")
        axes[i, 0].set_ylabel("% (test data)")
    axes[0, 0].legend(loc="lower left")
    save(fig, path)


def detector_figure(detector, path) -> None:
    """G as a detector at every sweep step: detection rate and false-positive rate."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, split in zip(axes, ("valid", "test")):
        ax.plot(detector["fraction_pruned"], detector[f"detection_rate_{split}"],
                label="detection rate (poisoned sent to N)", color="tab:green")
        ax.plot(detector["fraction_pruned"], detector[f"false_positive_rate_{split}"],
                label="false-positive rate (clean sent to N)", color="tab:orange")
        ax.set_title(f"G = (B, B'_k) on {split} data")
        ax.set_xlabel("fraction of channels pruned in B'_k")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("%")
    axes[0].legend(loc="upper left", fontsize=8)
    save(fig, path)


def frontier_figure(table, path) -> None:
    """ASR against clean accuracy (test) for every fine-pruning run; pruned-only B' as crosses."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for k, rows in table.groupby("channels_pruned"):
        base = rows[rows["optimizer"] == "none"]
        tuned = rows[rows["optimizer"] != "none"]
        line = ax.scatter(tuned["clean_accuracy_test"], tuned["attack_success_rate_test"], label=f"{k} channels pruned")
        ax.scatter(base["clean_accuracy_test"], base["attack_success_rate_test"], marker="x", color=line.get_facecolor())
    ax.set_xlabel("clean accuracy % (test)")
    ax.set_ylabel("attack success rate % (bd_test)")
    ax.set_title("Fine-pruning: x = pruned only, dots = fine-tuned (grid of optimizer/lr)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save(fig, path)
