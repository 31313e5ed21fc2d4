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
    _save(fig, path)


def _save(fig, path) -> None:
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
    _save(fig, path)


def repaired_bars(rows, path) -> None:
    """B' and G per threshold on test data (seed report Figs. 4-5)."""
    labels = [f"X={r['threshold']:g}" for r in rows]
    pos = np.arange(len(rows))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    panels = (("pruned", "pruned net B'"), ("repaired", "repaired net G"))
    for ax, (key, title) in zip(axes, panels):
        acc = [np.nan if r[f"{key}_clean_accuracy"] is None else r[f"{key}_clean_accuracy"] for r in rows]
        asr = [np.nan if r[f"{key}_attack_success_rate"] is None else r[f"{key}_attack_success_rate"] for r in rows]
        ax.bar(pos - 0.2, acc, 0.4, label="clean accuracy", color="tab:blue")
        ax.bar(pos + 0.2, asr, 0.4, label="attack success rate", color="tab:red")
        ax.set_xticks(pos, labels)
        ax.set_title(title)
        ax.grid(alpha=0.3, axis="y")
    axes[0].set_ylabel("% (test data)")
    axes[0].legend(loc="lower left")
    _save(fig, path)
