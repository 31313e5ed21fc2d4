"""evaluate-defenses: every defense of defend.names on the test files, its G and its
scan-gated detector (suspects: the scan's targets and offsets on B): metrics/defenses.json (params:
defend.names, defend.default)."""
from badnet_repair import artifacts, defenses, params
from badnet_repair.defenses import base
from badnet_repair.atomic import write_json
from badnet_repair.errors import cli
from badnet_repair.evaluate import percent, predict_classes


@cli
def main():
    cfg = params.load("defend")
    base.check_names(cfg, defenses.names())
    targets, shifts = artifacts.scan_targets(), artifacts.scan_targets(key="shifts")
    model, info = artifacts.badnet()
    div = info["input_divisor"]
    test, bd = artifacts.read_split("test", model), artifacts.read_split("bd_test", model)
    pred = {"test": predict_classes(model, test.x, div), "bd_test": predict_classes(model, bd.x, div)}
    out = {"default_defense": cfg["default"], "badnet_clean_accuracy_test": percent(pred["test"], test.y)}
    for name in cfg["names"]:
        out.update(base.score(name, f"{artifacts.DEFENSES_DIR}/{name}", pred, test, bd, div, f"defend@{name}", targets,
                              shifts))
    write_json(artifacts.DEFENSES_METRICS, out)
    for name in cfg["names"]:
        print(f"{name}: clean {out[f'{name}_clean_accuracy_test']:.2f}%, "
              f"ASR {out[f'{name}_attack_success_rate_test']:.2f}%, G detection "
              f"{out[f'{name}_detection_rate_test']:.2f}% at FPR {out[f'{name}_false_positive_rate_test']:.2f}%, "
              f"detector {out[f'{name}_detector_detection_rate_test']:.2f}% at FPR "
              f"{out[f'{name}_detector_false_positive_rate_test']:.2f}%")


if __name__ == "__main__":
    main()
