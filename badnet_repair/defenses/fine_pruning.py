"""Fine-pruning as a defense (Liu et al. 2018): prune the least active channels of a layer,
then fine-tune with the pruned filters held at zero (finetune.fine_prune)."""
from __future__ import annotations

from .base import strongest_within

PAPER = "Liu, Dolan-Gavitt and Garg, Fine-Pruning, RAID 2018"
PARAMS = {"layer": str, "fractions": [float], "optimizer": ("adam", "sgd"), "learning_rate": float,
          "epochs": int, "batch_size": int}


def check(model, cfg: dict, prune_layer: str) -> dict:
    """cfg['layer'], or prune.layer when it is empty, traced back to one conv layer's filters."""
    from ..pruning import source_conv

    param = "defend.fine_pruning.layer" if cfg["layer"] else "prune.layer"
    layer = cfg["layer"] or prune_layer
    source_conv(model, layer, param)
    return dict(cfg, layer=layer)


def defend(model, clean, cfg: dict, floor: float, log=print):
    """Rank the channels of cfg['layer'] by mean activation on the clean training share, prune
    the least active fraction, fine-tune (finetune.fine_prune). The fraction is the largest of
    cfg['fractions'] whose fine-tuned net keeps the holdout floor."""
    from ..evaluate import predict
    from ..finetune import fine_prune
    from ..pruning import channel_count, channel_scores, prune, prune_order, split

    layer = cfg["layer"]
    front, _ = split(model, layer)
    order = prune_order(channel_scores(predict(front, clean.x)), "ascending")
    n = channel_count(model, layer)
    history = {}

    def make(fraction):
        channels = order[:int(round(fraction * n))]
        tuned, history[fraction] = fine_prune(prune(model, layer, channels), layer, channels, clean.x, clean.y,
                                              clean.holdout_accuracy, cfg, log=lambda s: None,
                                              first_epoch=1)  # fine-pruning fine-tunes: B' alone is no candidate
        return tuned

    tuned, fraction, tried = strongest_within(sorted(cfg["fractions"], reverse=True), make, clean, floor, log,
                                              "fraction")
    return tuned, {"layer": layer, "fraction_pruned": fraction, "channels_pruned": int(round(fraction * n)),
                   "chosen_epoch": history[fraction]["chosen_epoch"], "tried": tried}
