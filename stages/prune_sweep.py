"""prune-sweep: remove prune.layer's channels one at a time in prune.order; score every step,
and G (B with that step's net) as a detector."""
import pandas as pd
from tqdm import tqdm

from badnet_repair import artifacts, params, plots, pruning
from badnet_repair.atomic import atomic_path
from badnet_repair.errors import cli
from badnet_repair.repaired import flagged


@cli
def main():
    cfg = params.load("prune")
    model, _ = artifacts.badnet()
    acts, labels = artifacts.read_activations(artifacts.ACTIVATIONS)
    order = pruning.prune_order(pruning.channel_scores(acts["valid"]), cfg["order"])
    fill = pruning.removed_values(model, cfg["layer"])
    splits = pruning.SWEEP_SPLITS
    with tqdm(total=len(splits) * (len(order) + 1), desc="prune-sweep steps", ascii=True, mininterval=2) as bar:
        table, preds = pruning.sweep_table(model, cfg["layer"], acts, labels, order, fill,
                                           progress=lambda k: bar.update())
    detector = {k: table[k] for k in ("channels_pruned", "fraction_pruned")}
    for split, _ in splits:  # G built from B and the step-k net flags exactly the inputs where the two disagree
        rate = "detection_rate" if split.startswith("bd_") else "false_positive_rate"
        detector[f"{rate}_{split.removeprefix('bd_')}"] = [round(flagged(preds[split][0], p), 4) for p in preds[split]]
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
