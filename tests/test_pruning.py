"""The pruning mechanism: the head path against full-model evaluation of the pruned net."""
import numpy as np
import pytest

from badnet_repair import pruning
from badnet_repair.attack import Split, render_split
from badnet_repair.errors import BadInput
from badnet_repair.model import build_deepid, keras, load_badnet
from badnet_repair.synthetic import Trigger, make_identities


def _full_model_classes(model, layer, order, k, x):
    """The slow obvious way: copy the model, zero k filters, run the whole network."""
    pruned = pruning.prune(model, layer, order[:k])
    return np.argmax(pruned.predict(x, verbose=0), axis=1)


def _check_head_path(model, layer, x, steps):
    front, _ = pruning.split(model, layer)
    acts = front.predict(x, verbose=0)
    order = pruning.prune_order(pruning.channel_scores(acts), "ascending")
    fast = pruning.sweep_predictions(model, layer, acts, order, pruning.removed_values(model, layer))
    assert fast.shape == (len(order) + 1, len(x))
    for k in steps:
        assert np.array_equal(fast[k], _full_model_classes(model, layer, order, k, x)), f"step {k}"
    return fast


def test_head_path_equals_full_model_on_real_lab3_weights(lab3_weights):
    model = load_badnet(lab3_weights)
    ids = make_identities(40, seed=1)
    clean, poisoned = render_split(ids, Split(np.arange(40).repeat(3), (1, 1)), Trigger(), workers=1)
    x = np.concatenate([clean, poisoned]).astype(np.float32)  # raw 0-255, as lab3 takes
    fast = _check_head_path(model, "pool_3", x, steps=[0, 1, 7, 20, 35, 50, 59, 60])
    assert len(np.unique(fast[0])) > 5  # the inputs exercise many classes, not one
    assert np.array_equal(fast[0], np.argmax(model.predict(x, verbose=0), axis=1))


def _generic_model(activation):
    """A functional model that is not DeepID: BN, a separate activation layer, average pooling."""
    inp = keras.Input((12, 10, 3))
    h = keras.layers.Conv2D(6, 3, name="features")(inp)
    h = keras.layers.Activation(activation, name="act")(h)
    h = keras.layers.AveragePooling2D(2, name="pooled")(h)
    a = keras.layers.Dense(8, activation="relu")(keras.layers.Flatten()(h))
    b = keras.layers.Dense(8, activation="relu")(keras.layers.GlobalAveragePooling2D()(h))
    out = keras.layers.Dense(5, activation="softmax")(keras.layers.Concatenate()([a, b]))
    model = keras.Model(inp, out)
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32) for w in model.get_weights()])
    return model


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
@pytest.mark.parametrize("layer", ["pooled", "act", "features"])
def test_head_path_on_a_generic_functional_model(activation, layer):
    model = _generic_model(activation)
    assert pruning.source_conv(model, layer).name == "features"
    x = np.random.default_rng(1).normal(0, 1, (200, 12, 10, 3)).astype(np.float32)
    _check_head_path(model, layer, x, steps=range(7))
    if activation == "sigmoid" and layer != "features":
        assert np.allclose(pruning.removed_values(model, layer), 0.5)  # sigmoid(0), not 0


def _several_readers_model(activation):
    """Not DeepID: the pruned layer is read by a strided SAME conv, a dilated conv and
    Flatten -> Dense, whose outputs meet again before the classifier."""
    inp = keras.Input((14, 12, 3))
    h = keras.layers.Conv2D(6, 3, activation=activation, name="features")(inp)
    h = keras.layers.MaxPooling2D(2, name="pooled")(h)
    a = keras.layers.Conv2D(5, 3, strides=2, padding="same", activation="tanh")(h)
    b = keras.layers.Conv2D(4, 2, dilation_rate=2, activation="relu")(h)
    c = keras.layers.Dense(7, activation="relu")(keras.layers.Flatten()(h))
    merged = keras.layers.Concatenate()([keras.layers.Flatten()(a), keras.layers.Flatten()(b), c])
    model = keras.Model(inp, keras.layers.Dense(6, activation="softmax")(merged))
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32) for w in model.get_weights()])
    return model


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_head_path_on_a_model_with_several_readers(activation):
    model = _several_readers_model(activation)
    x = np.random.default_rng(2).normal(0, 1, (300, 14, 12, 3)).astype(np.float32)
    _check_head_path(model, "pooled", x, steps=range(7))


def test_untraceable_and_missing_layers_are_clear_errors():
    model = build_deepid(10)
    assert pruning.source_conv(model, "pool_3").name == "conv_3"
    with pytest.raises(BadInput, match="'prune.layer' is 'pool_9'.*no such layer"):
        pruning.split(model, "pool_9")
    with pytest.raises(BadInput, match="cannot be traced back.*'fc_1' is a Dense"):
        pruning.source_conv(model, "fc_1")


def test_prune_zeroes_exactly_the_named_filters():
    model = build_deepid(10)
    pruned = pruning.prune(model, "pool_3", [3, 17])
    k0, b0 = model.get_layer("conv_3").get_weights()
    k1, b1 = pruned.get_layer("conv_3").get_weights()
    assert np.all(k1[..., [3, 17]] == 0) and np.all(b1[[3, 17]] == 0)
    keep = np.setdiff1d(np.arange(60), [3, 17])
    assert np.array_equal(k1[..., keep], k0[..., keep]) and np.array_equal(b1[keep], b0[keep])
    assert np.any(k0[..., 3] != 0)  # the original is untouched


def test_scores_and_order():
    acts = np.random.default_rng(0).uniform(0, 1, (7, 5, 4, 6)).astype(np.float32)
    slow = [np.mean([acts[i, y, x, c] for i in range(7) for y in range(5) for x in range(4)]) for c in range(6)]
    assert np.allclose(pruning.channel_scores(acts), slow)
    scores = np.array([0.5, 0.1, 0.5, 0.0, 0.1])
    assert list(pruning.prune_order(scores, "ascending")) == [3, 1, 4, 0, 2]
    assert list(pruning.prune_order(scores, "descending")) == [0, 2, 1, 4, 3]


@pytest.mark.parametrize("keep,drop,x,expect", [
    ("first_past", "absolute", 2, 3),    # 97.5 is the first at least 2 points below 100
    ("last_within", "absolute", 2, 2),
    ("first_past", "absolute", 5, 5),
    ("first_past", "relative", 10, 6),   # 10 % of 100 -> limit 90
    ("first_past", "absolute", 60, None),
    ("last_within", "absolute", 60, 6),  # never past: every step is within
])
def test_choose_step(keep, drop, x, expect):
    acc = np.array([100.0, 99.5, 98.5, 97.5, 99.0, 95.0, 90.0])
    assert pruning.choose_step(acc, x, keep, drop) == expect


def test_choose_step_counts_an_exact_drop_as_past():
    assert pruning.choose_step(np.array([90.0, 89.0, 88.0]), 2, "first_past", "absolute") == 2
