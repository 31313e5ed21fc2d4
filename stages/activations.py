"""activations: cache prune.layer's activations on the four files; rank its channels."""
import pandas as pd

from badnet_repair import artifacts, h5data, params, pruning
from badnet_repair.atomic import atomic_path
from badnet_repair.errors import cli
from badnet_repair.evaluate import predict


@cli
def main():
    layer = params.load("prune")["layer"]
    model, info = artifacts.badnet()
    pruning.source_conv(model, layer)  # fail now, not in prune-sweep, if it cannot be pruned
    front, _ = pruning.split(model, layer)
    acts, labels = {}, {}
    for split in h5data.FILES:
        ds = artifacts.read_split(split, model)
        acts[split] = predict(front, ds.x, info["input_divisor"])
        labels[split] = ds.y
        print(f"{split}: {acts[split].shape[0]} images -> {layer} {acts[split].shape[1:]}", flush=True)
    artifacts.write_activations(artifacts.ACTIVATIONS, acts, labels)

    scores = pruning.channel_scores(acts["valid"])
    table = pd.DataFrame({"channel": range(len(scores)), "mean_activation": scores})
    table["ascending_rank"] = pruning.prune_order(scores, "ascending").argsort()
    with atomic_path(artifacts.CHANNEL_SCORES) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")


if __name__ == "__main__":
    main()
