"""Fine-pruning as a defense (Liu et al. 2018): prune the least active channels of a layer,
then fine-tune with the pruned filters held at zero (finetune.fine_prune)."""
from __future__ import annotations

from .defense import strongest_within
from .finetune import fine_prune


def defend(model, clean, cfg: dict, floor: float, log=print):
    """Fine-pruning as a defense: rank the channels of cfg['layer'] by mean activation on the
    clean training share, prune the least active fraction, fine-tune (finetune.fine_prune). The
    fraction is the largest of cfg['fractions'] whose fine-tuned net keeps the holdout floor."""
    from .evaluate import predict
    from .pruning import channel_count, channel_scores, prune, prune_order, split

    layer = cfg["layer"]
    front, _ = split(model, layer)
    order = prune_order(channel_scores(predict(front, clean.x)), "ascending")
    n = channel_count(model, layer)
    history = {}

    def make(fraction):
        channels = order[:int(round(fraction * n))]
        tuned, history[fraction] = fine_prune(prune(model, layer, channels), layer, channels, clean.raw_x, clean.raw_y,
                                              clean.holdout_index, cfg, clean.input_divisor, log=lambda s: None,
                                              first_epoch=1)  # fine-pruning fine-tunes: B' alone is no candidate
        return tuned

    tuned, fraction, tried = strongest_within(sorted(cfg["fractions"], reverse=True), make, clean, floor, log,
                                              "fraction")
    return tuned, {"fraction_pruned": fraction, "channels_pruned": int(round(fraction * n)),
                   "chosen_epoch": history[fraction]["chosen_epoch"], "tried": tried}
