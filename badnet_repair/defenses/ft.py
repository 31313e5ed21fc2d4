"""FT: fine-tune every weight of B on the clean training share (the baseline defense)."""
from __future__ import annotations

from .. import training
from .base import strongest_within

PAPER = "fine-tuning on clean data, the baseline of every paper below"
PARAMS = {"learning_rates": [float], "epochs": int, "batch_size": int}


def check(model, cfg: dict, prune_layer: str) -> dict:
    return cfg


def defend(model, clean, cfg: dict, floor: float, log=print):
    """The largest learning rate of cfg['learning_rates'] whose tuned net keeps the holdout
    floor (a larger rate moves further from B, and from its backdoor)."""
    def make(lr):
        tuned = training.copy(model)
        training.fit(tuned, clean.x, clean.y, epochs=cfg["epochs"], batch_size=cfg["batch_size"],
                     learning_rate=lr, seed=cfg["seed"], log=lambda s: None)
        return tuned

    tuned, lr, tried = strongest_within(sorted(cfg["learning_rates"], reverse=True), make, clean, floor,
                                        log, "learning_rate")
    return tuned, {"learning_rate": lr, "tried": tried}
