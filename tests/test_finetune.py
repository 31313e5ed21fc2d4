"""Fine-pruning: masked fine-tuning and the holdout split."""
import numpy as np
import pytest

from badnet_repair import finetune, h5data, training
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
    save_model(bp, root / "variants/pruned.h5")
    index = [{"threshold": 5, "reached": True, "channels_pruned": len(channels), "fraction_pruned": 1 / 3,
              "pruned": "pruned.h5"}, {"threshold": 9, "reached": False}]
    rng = np.random.default_rng(0)
    valid = h5data.Dataset(rng.integers(0, 256, (48, 55, 47, 3)).astype(np.float32), np.arange(48) % N)
    return root, b, bp, channels, index, valid


def test_holdout_split_is_seeded_and_disjoint():
    train, hold = training.split_holdout(100, 0.2, 3)
    assert len(hold) == 20 and len(np.intersect1d(train, hold)) == 0 and len(train) + len(hold) == 100
    assert np.array_equal(hold, training.split_holdout(100, 0.2, 3)[1])
    assert not np.array_equal(hold, training.split_holdout(100, 0.2, 4)[1])


@pytest.mark.parametrize("seed", [0, 5, 2020])
def test_the_defenses_holdout_is_drawn_per_class(seed):
    """With labels the split is stratified: as many held out as without, each class its share of
    them, floor or one more, the extra ones to the largest remainders, and within a class the images
    the seeded shuffle meets first. Checked against a plain loop over the classes; without labels
    it is the shuffle's first images, as fine-pruning has always drawn them."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(40), rng.integers(1, 12, 40))  # 1 to 11 images a class
    labels = labels[rng.permutation(len(labels))]
    n, k = len(labels), int(round(0.2 * len(labels)))
    train, hold = training.split_holdout(n, 0.2, seed, labels=labels)
    assert len(hold) == k and np.array_equal(np.sort(np.concatenate([train, hold])), np.arange(n))
    perm = np.random.default_rng([seed, 7]).permutation(n)
    assert np.array_equal(training.split_holdout(n, 0.2, seed)[1], np.sort(perm[:k]))
    quota = {c: k * np.sum(labels == c) / n for c in np.unique(labels)}
    held = {c: int(np.sum(labels[hold] == c)) for c in quota}
    extra = [c for c in quota if held[c] == np.floor(quota[c]) + 1]
    assert all(held[c] in (np.floor(q), np.floor(q) + 1) for c, q in quota.items())
    assert not extra or min(quota[c] % 1 for c in extra) >= max(
        [quota[c] % 1 for c in quota if c not in extra] or [0.0])
    for c in quota:  # the class's first images in the shuffle's order
        assert set(hold[labels[hold] == c]) == set([i for i in perm if labels[i] == c][:held[c]])
    assert np.array_equal(hold, training.split_holdout(n, 0.2, seed, labels=labels)[1])


def test_pruned_filters_stay_exactly_zero_and_the_rest_trains(setup):
    _, _, bp, channels, _, valid = setup
    assert list(finetune.pruned_channels(bp, "pool_3")) == channels
    _, hold = training.split_holdout(len(valid.y), CFG["holdout"], CFG["seed"])
    train = np.setdiff1d(np.arange(len(valid.y)), hold)

    def holdout_accuracy(m):  # the slow, obvious way: plain Keras on the raw holdout / 255
        return 100 * float(np.mean(np.argmax(m.predict(valid.x[hold] / 255.0, verbose=0), 1) == valid.y[hold]))

    tuned, hist = finetune.fine_prune(bp, "pool_3", channels, (valid.x[train] / 255.0).astype(np.float32),
                                      valid.y[train], holdout_accuracy, dict(CFG, learning_rate=0.01),
                                      log=lambda *a: None)
    kernel, bias = tuned.get_layer("conv_3").get_weights()
    assert np.all(kernel[..., channels] == 0) and np.all(bias[channels] == 0)
    assert [h["epoch"] for h in hist["epochs"]] == [0, 1, 2]
    if hist["chosen_epoch"] > 0:  # a trained epoch was kept: the other filters moved
        assert not np.array_equal(kernel, bp.get_layer("conv_3").get_weights()[0])
    best = max(h["holdout_accuracy"] for h in hist["epochs"])
    assert hist["holdout_accuracy"] == best
    assert holdout_accuracy(tuned) == pytest.approx(best, abs=1e-3)  # the kept weights are the best epoch's


def test_fine_prune_folder_holds_the_chosen_epoch_and_its_holdout_accuracy(setup, tmp_path):
    """variants.fine_prune for one X: the saved net is the epoch with the best holdout accuracy
    (the first such), its pruned filters are zero, and its holdout accuracy, recomputed from the
    saved file with plain Keras, is the one reported."""
    import json

    from badnet_repair import variants

    root, b, _, channels, index, valid = setup
    _, hold = training.split_holdout(len(valid.y), CFG["holdout"], CFG["seed"])
    entry = dict(index[0], dir=str(root / "variants"))
    row = variants.fine_prune(b, entry, valid, hold, "pool_3", dict(CFG, learning_rate=0.01), 255.0,
                              tmp_path / "5", log=lambda *a: None)
    assert json.loads((tmp_path / "5" / "variant.json").read_text()) == row
    accs = [h["holdout_accuracy"] for h in row["epochs"]]
    assert row["chosen_epoch"] == accs.index(max(accs)) and row["holdout_accuracy"] == max(accs)
    tuned = keras.models.load_model(tmp_path / "5" / "fine_pruned.h5", compile=False)
    kernel, bias = tuned.get_layer("conv_3").get_weights()
    assert np.all(kernel[..., channels] == 0) and np.all(bias[channels] == 0)
    pred = np.argmax(tuned.predict(valid.x[hold] / 255.0, verbose=0), 1)
    assert 100 * np.mean(pred == valid.y[hold]) == pytest.approx(row["holdout_accuracy"], abs=1e-3)
    never = variants.fine_prune(b, index[1], valid, hold, "pool_3", CFG, 255.0, tmp_path / "9", log=lambda *a: None)
    assert never == {"threshold": 9, "reached": False}
    assert [p.name for p in (tmp_path / "9").iterdir()] == ["variant.json"]
