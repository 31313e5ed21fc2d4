"""prune-sweep: remove prune.layer's channels one at a time in prune.order; score every step,
and G (B with that step's net) as a detector."""
import pandas as pd
from tqdm import tqdm

from badnet_repair import artifacts, params, plots, pruning
from badnet_repair.atomic import atomic_path
from badnet_repair.errors import cli
from badnet_repair.evaluate import percent
from badnet_repair.repaired import flagged


@cli
def main():
    cfg = params.load("prune")
    model, _ = artifacts.badnet()
    acts, labels = artifacts.read_activations(artifacts.ACTIVATIONS)
    order = pruning.prune_order(pruning.channel_scores(acts["valid"]), cfg["order"])
    fill = pruning.removed_values(model, cfg["layer"])
    n = len(order)

    table = {"channels_pruned": range(n + 1), "fraction_pruned": [round(k / n, 6) for k in range(n + 1)],
             "channel_removed": [-1] + [int(c) for c in order]}
    splits = (("valid", "clean_accuracy"), ("bd_valid", "attack_success_rate"),
              ("test", "clean_accuracy"), ("bd_test", "attack_success_rate"))
    detector = {k: table[k] for k in ("channels_pruned", "fraction_pruned")}
    with tqdm(total=len(splits) * (n + 1), desc="prune-sweep steps", ascii=True, mininterval=2) as bar:
        for split, kind in splits:
            preds = pruning.sweep_predictions(model, cfg["layer"], acts[split], order, fill,
                                              progress=lambda k: bar.update())
            table[f"{kind}_{split.removeprefix('bd_')}"] = [round(percent(p, labels[split]), 4) for p in preds]
            # G built from B and the step-k net flags exactly the inputs where the two disagree
            rate = "detection_rate" if split.startswith("bd_") else "false_positive_rate"
            detector[f"{rate}_{split.removeprefix('bd_')}"] = [round(flagged(preds[0], p), 4) for p in preds]
    sweep = pd.DataFrame(table)
    with atomic_path(artifacts.SWEEP_CSV) as tmp:
        sweep.to_csv(tmp, index=False)
    plots.sweep_figure(sweep, artifacts.SWEEP_PLOT)
    detector = pd.DataFrame(detector)
    with atomic_path(artifacts.DETECTOR_CSV) as tmp:
        detector.to_csv(tmp, index=False)
    plots.detector_figure(detector, artifacts.DETECTOR_PLOT)


if __name__ == "__main__":
    main()
