"""Fine-pruning: masked fine-tuning, the holdout split, and reuse of unchanged B'."""
import json

import numpy as np
import pytest

from badnet_repair import finetune, h5data, variants
from badnet_repair.model import build_deepid, keras, save_model
from badnet_repair.pruning import prune

N = 10
CFG = {"optimizer": "adam", "learning_rate": 0.003, "epochs": 2, "batch_size": 8, "holdout": 0.25, "seed": 1}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("ft")
    keras.utils.set_random_seed(0)
    b = build_deepid(N)
    channels = list(range(0, 60, 3))
    bp = prune(b, "pool_3", channels)
    save_model(bp, root / "variants/pruned_5.h5")
    index = [{"threshold": 5, "reached": True, "channels_pruned": len(channels), "fraction_pruned": 1 / 3,
              "pruned": "pruned_5.h5"}, {"threshold": 9, "reached": False}]
    rng = np.random.default_rng(0)
    valid = h5data.Dataset(rng.integers(0, 256, (48, 55, 47, 3)).astype(np.float32), np.arange(48) % N)
    return root, b, bp, channels, index, valid


def test_holdout_split_is_seeded_and_disjoint():
    train, hold = finetune.split_holdout(100, 0.2, 3)
    assert len(hold) == 20 and len(np.intersect1d(train, hold)) == 0 and len(train) + len(hold) == 100
    assert np.array_equal(hold, finetune.split_holdout(100, 0.2, 3)[1])
    assert not np.array_equal(hold, finetune.split_holdout(100, 0.2, 4)[1])


def test_pruned_filters_stay_exactly_zero_and_the_rest_trains(setup):
    _, _, bp, channels, _, valid = setup
    assert list(finetune.pruned_channels(bp, "conv_3")) == channels
    _, hold = finetune.split_holdout(len(valid.y), CFG["holdout"], CFG["seed"])
    tuned, hist = finetune.fine_prune(bp, "conv_3", channels, valid.x, valid.y, hold,
                                      dict(CFG, learning_rate=0.01), 255.0, log=lambda *a: None)
    kernel, bias = tuned.get_layer("conv_3").get_weights()
    assert np.all(kernel[..., channels] == 0) and np.all(bias[channels] == 0)
    assert [h["epoch"] for h in hist["epochs"]] == [0, 1, 2]
    if hist["chosen_epoch"] > 0:  # a trained epoch was kept: the other filters moved
        assert not np.array_equal(kernel, bp.get_layer("conv_3").get_weights()[0])
    best = max(h["holdout_accuracy"] for h in hist["epochs"])
    assert hist["holdout_accuracy"] == best


def test_unchanged_inputs_reuse_the_previous_fine_pruned_net(setup, tmp_path, monkeypatch):
    root, b, _, _, index, valid = setup
    _, hold = finetune.split_holdout(len(valid.y), CFG["holdout"], CFG["seed"])
    inputs = {"badnet_sha256": "b", "valid_sha256": "v", "input_divisor": 255.0, "finetune": CFG}
    out = tmp_path / "fine_pruned"

    def run(cfg, inputs):
        return variants.fine_prune(b, index, valid, hold, "conv_3", cfg, 255.0, root / "variants", out,
                                   inputs, log=lambda *a: None)

    first = run(CFG, inputs)
    files = {p.name: p.read_bytes() for p in out.iterdir()}
    assert first[1] == {"threshold": 9, "reached": False}

    def no_training(*a, **k):
        raise AssertionError("trained again")

    monkeypatch.setattr(finetune, "fine_prune", no_training)
    assert run(CFG, inputs) == first
    assert {p.name: p.read_bytes() for p in out.iterdir()} == files
    changed = dict(CFG, epochs=3)
    with pytest.raises(AssertionError, match="trained again"):
        run(changed, dict(inputs, finetune=changed))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == files  # a failed run left the last one whole
    (out / "fine_pruned_5.h5").write_bytes(b"tampered")
    with pytest.raises(AssertionError, match="trained again"):
        run(CFG, inputs)
    assert json.loads((out / "variants.json").read_text()) == first
