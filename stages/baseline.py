"""baseline: B's clean accuracy and ASR on the four files, macro P/R/F1 on clean test."""
from badnet_repair import artifacts, h5data, metrics
from badnet_repair.atomic import write_json
from badnet_repair.errors import cli
from badnet_repair.evaluate import predict_classes


@cli
def main():
    model, info = artifacts.badnet()
    pred, labels, files = {}, {}, {}
    for split in h5data.FILES:
        ds = artifacts.read_split(split, model)
        pred[split], labels[split] = predict_classes(model, ds.x, info["input_divisor"]), ds.y
        files[split] = ds
        ds.x = None  # keep labels and triggers, not the images
    scores = {k: round(v, 4) for k, v in metrics.baseline(pred, labels, files).items()}
    write_json(artifacts.BASELINE_METRICS, scores)
    print(", ".join(f"{k} {v:.2f}" for k, v in scores.items()))


if __name__ == "__main__":
    main()
