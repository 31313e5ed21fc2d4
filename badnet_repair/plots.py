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
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90, metadata={"Software": None})
    plt.close(fig)
