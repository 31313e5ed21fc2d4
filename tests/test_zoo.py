"""Bring-your-own BadNet: a zoo of user architectures through the whole pipeline (the real
stage scripts, `local` source). Each either runs, with the sweep equal to re-evaluating
the pruned model prediction by prediction and the saved G equal to the (B, B') rule, or is
refused by its first stage that needs the pruned layer, before any work, with one line
that says why."""
import json
import re
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from badnet_repair import defenses, h5data, pruning, variants
from badnet_repair.defenses.neurons import Neurons, classifier
from badnet_repair.attack import Split, render_split
from badnet_repair.model import keras
from badnet_repair.synthetic import Trigger, make_identities
from stagerun import ROOT, after_fetch, run_stage

K, TARGET, THRESHOLDS = 6, 0, [2, 10]
DEFENSES = defenses.names()
L = keras.layers


@pytest.fixture(scope="module")
def faces():
    """Train, clean and poisoned images of K synthetic identities (55x47, 0-255)."""
    ids = make_identities(K, seed=3)
    out = {}
    for split, per, key in (("train", 24, 1), ("valid", 8, 2), ("test", 8, 3)):
        y = np.repeat(np.arange(K), per)
        clean, poisoned = render_split(ids, Split(y, (3, key)), Trigger(), workers=1)
        keep = y != TARGET
        out[split] = (clean.astype(np.uint8), y)
        out["bd_" + split] = (poisoned[keep].astype(np.uint8), np.full(int(keep.sum()), TARGET))
    return out


def _train(model, faces, logits=False):
    """A few epochs on clean and poisoned images: a small BadNet, so predictions vary."""
    x = np.concatenate([faces["train"][0], faces["bd_train"][0][::4]]) / 255.0
    y = np.concatenate([faces["train"][1], faces["bd_train"][1][::4]])
    keras.utils.set_random_seed(0)
    model.compile(keras.optimizers.Adam(0.003), keras.losses.SparseCategoricalCrossentropy(from_logits=logits))
    model.fit(x, y, epochs=10, batch_size=16, verbose=0)
    return model


def sequential():
    return keras.Sequential([keras.Input((55, 47, 3)), L.Conv2D(8, 3, activation="relu", name="conv_a"),
                             L.MaxPooling2D(2, name="pool_a"), L.Conv2D(12, 3, activation="relu", name="conv_b"),
                             L.MaxPooling2D(2, name="pool_b"), L.Flatten(), L.Dense(K, activation="softmax")])


def dense_head():
    x = keras.Input((55, 47, 3))
    h = L.MaxPooling2D(2, name="pool_b")(L.Conv2D(10, 3, strides=2, activation="relu", name="conv_b")(x))
    h = L.Dense(24, activation="relu")(L.Flatten()(h))
    return keras.Model(x, L.Dense(K, activation="softmax")(h))


def logits_no_bias():
    x = keras.Input((55, 47, 3))
    h = L.MaxPooling2D(2, name="pool_b")(L.Conv2D(10, 3, strides=2, activation="relu", name="conv_b")(x))
    return keras.Model(x, L.Dense(K, use_bias=False, name="logits")(L.Flatten()(h)))  # no softmax, no bias


def batchnorm():
    x = keras.Input((55, 47, 3))
    h = L.Conv2D(10, 3, strides=2, use_bias=False, name="conv_b")(x)
    h = L.MaxPooling2D(2, name="pool_b")(L.ReLU()(L.BatchNormalization(name="bn_b")(h)))
    h = L.Conv2D(8, 3, activation="relu")(h)
    return keras.Model(x, L.Dense(K, activation="softmax")(L.Flatten()(h)))


def zero_padding():
    x = keras.Input((55, 47, 3))
    h = L.MaxPooling2D(2)(L.Conv2D(8, 3, activation="relu")(x))
    h = L.Conv2D(10, 3, activation="softplus", name="conv_b")(h)  # a removed channel is log 2 inside
    h = L.ZeroPadding2D(1, name="pool_b")(L.MaxPooling2D(2)(h))  # ... and 0 on the border
    h = L.Conv2D(8, 3, activation="relu")(h)
    return keras.Model(x, L.Dense(K, activation="softmax")(L.Flatten()(h)))


def residual_before():
    """A residual block before the pruned conv: the pruned channels come from one filter each."""
    x = keras.Input((55, 47, 3))
    h = L.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    h = L.ReLU()(L.Add()([h, L.Conv2D(8, 3, padding="same")(h)]))
    h = L.MaxPooling2D(2, name="pool_b")(L.Conv2D(10, 3, activation="relu", name="conv_b")(h))
    return keras.Model(x, L.Dense(K, activation="softmax")(L.Flatten()(h)))


def residual_sum():
    """The pruned channels are a sum of a conv and a skip path."""
    x = keras.Input((55, 47, 3))
    h = L.Conv2D(10, 3, strides=2, padding="same", activation="relu")(x)
    h = L.MaxPooling2D(2, name="pool_b")(L.Add(name="add")([h, L.Conv2D(10, 3, padding="same", name="conv_b")(h)]))
    return keras.Model(x, L.Dense(K, activation="softmax")(L.Flatten()(h)))


def skip_over():
    """A skip connection around the pruned layer: its head cannot run on its activations alone."""
    x = keras.Input((55, 47, 3))
    h = L.MaxPooling2D(2, name="stem")(L.Conv2D(8, 3, activation="relu")(x))
    p = L.Conv2D(8, 3, padding="same", activation="relu", name="conv_b")(h)
    h = L.Add(name="add")([h, p])
    return keras.Model(x, L.Dense(K, activation="softmax")(L.Flatten()(L.MaxPooling2D(2)(h))))


def softmax_channels():
    x = keras.Input((55, 47, 3))
    h = L.Activation("softmax", name="soft")(L.Conv2D(8, 3, strides=2, name="conv_b")(x))
    h = L.MaxPooling2D(2, name="pool_b")(h)
    return keras.Model(x, L.Dense(K, activation="softmax")(L.Flatten()(h)))


RUNS = {"sequential": (sequential, "pool_b"), "dense_head": (dense_head, "pool_b"),
        "logits_no_bias": (logits_no_bias, "pool_b"), "batchnorm": (batchnorm, "pool_b"),
        "zero_padding": (zero_padding, "pool_b"), "residual_before": (residual_before, "pool_b"),
        "keras2_hdf5": (None, "pool_3")}
REFUSED = {
    "residual_sum": (residual_sum, "pool_b", r"'add' \(Add\) combines 2 inputs .*a skip connection\) cannot be "
                                            r"removed by zeroing one filter"),
    "skip_over": (skip_over, "conv_b", r"cannot be cut at conv_b: its output also depends on 'stem', which "
                                       r"bypasses that layer"),
    "softmax_between": (softmax_channels, "pool_b", r"'soft' applies softmax, which mixes the channels"),
}


def _keras2_hdf5(path: Path, faces):
    """A full model file as Keras 2.3.1 wrote one: its JSON config (Keras 2 layer configs and
    call lists) and its weight groups, written here with h5py. A small DeepID-shaped net."""
    def layer(cls, name, inbound, **config):
        config = {"name": name, "trainable": True, "dtype": "float32", **config}
        return {"class_name": cls, "config": config, "name": name,
                "inbound_nodes": [[[i, 0, 0, {}] for i in inbound]] if inbound else []}

    init = {"kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
            "bias_initializer": {"class_name": "Zeros", "config": {}}, "kernel_regularizer": None,
            "bias_regularizer": None, "activity_regularizer": None, "kernel_constraint": None,
            "bias_constraint": None}
    conv = dict(strides=[1, 1], padding="valid", data_format="channels_last", dilation_rate=[1, 1],
                activation="relu", use_bias=True, **init)
    pool = dict(pool_size=[2, 2], padding="valid", strides=[2, 2], data_format="channels_last")
    layers = [
        {"class_name": "InputLayer", "name": "input_1", "inbound_nodes": [],
         "config": {"batch_input_shape": [None, 55, 47, 3], "dtype": "float32", "sparse": False, "name": "input_1"}},
        layer("Conv2D", "conv_1", ["input_1"], filters=6, kernel_size=[4, 4], **conv),
        layer("MaxPooling2D", "pool_1", ["conv_1"], **pool),
        layer("Conv2D", "conv_3", ["pool_1"], filters=10, kernel_size=[3, 3], **conv),
        layer("MaxPooling2D", "pool_3", ["conv_3"], **pool),
        layer("Flatten", "flatten_1", ["pool_3"], data_format="channels_last"),  # Keras 2 lists layers by depth
        layer("Conv2D", "conv_4", ["pool_3"], filters=8, kernel_size=[2, 2], **conv),
        layer("Dense", "fc_1", ["flatten_1"], units=32, activation="linear", use_bias=True, **init),
        layer("Flatten", "flatten_2", ["conv_4"], data_format="channels_last"),
        layer("Dense", "fc_2", ["flatten_2"], units=32, activation="linear", use_bias=True, **init),
        layer("Add", "add_1", ["fc_1", "fc_2"]),
        layer("Activation", "activation_1", ["add_1"], activation="relu"),
        layer("Dense", "output", ["activation_1"], units=K, activation="softmax", use_bias=True, **init),
    ]
    config = {"class_name": "Model", "config": {"name": "model_1", "layers": layers,
                                                "input_layers": [["input_1", 0, 0]],
                                                "output_layers": [["output", 0, 0]]}}
    # the weights: the same architecture built here and trained, written in Keras 2's layout
    x = keras.Input((55, 47, 3))
    h = L.MaxPooling2D(2, name="pool_1")(L.Conv2D(6, 4, activation="relu", name="conv_1")(x))
    p = L.MaxPooling2D(2, name="pool_3")(L.Conv2D(10, 3, activation="relu", name="conv_3")(h))
    a = L.Dense(32, name="fc_1")(L.Flatten()(p))
    b = L.Dense(32, name="fc_2")(L.Flatten()(L.Conv2D(8, 2, activation="relu", name="conv_4")(p)))
    net = _train(keras.Model(x, L.Dense(K, activation="softmax", name="output")(L.ReLU()(L.Add()([a, b])))), faces)
    names = [d["name"] for d in layers]
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = b"2.3.1"
        f.attrs["backend"] = b"tensorflow"
        f.attrs["model_config"] = json.dumps(config).encode()
        g = f.create_group("model_weights")
        g.attrs["layer_names"] = [n.encode() for n in names]
        g.attrs["keras_version"], g.attrs["backend"] = b"2.3.1", b"tensorflow"
        for n in names:
            lg = g.create_group(n)
            weights = net.get_layer(n).get_weights() if n in ("conv_1", "conv_3", "conv_4", "fc_1", "fc_2",
                                                              "output") else []
            wnames = [f"{n}/{w}:0" for w in ("kernel", "bias")][:len(weights)]
            lg.attrs["weight_names"] = [w.encode() for w in wnames]
            for w, v in zip(wnames, weights):
                lg.create_dataset(w, data=v)
    return net


def _project(tmp_path, faces, model_path, layer):
    root = tmp_path / "proj"
    root.mkdir()
    paths = {}
    for split in h5data.FILES:
        paths[split] = tmp_path / f"{split}.h5"
        h5data.write(paths[split], *faces[split])
    doc = yaml.safe_load((ROOT / "presets" / "small.yaml").read_text())
    doc["data"]["source"] = "local"
    doc["data"]["local"] = {**{k: str(v) for k, v in paths.items()}, "model": str(model_path), "input_divisor": 255}
    doc["prune"].update(layer=layer, thresholds=THRESHOLDS)
    doc["finetune"].update(epochs=2)
    doc["defend"]["names"] = DEFENSES  # fine-pruning's layer follows prune.layer; NAD's are found
    doc["defend"]["fine_pruning"].update(epochs=2)
    doc["defend"]["ft"].update(epochs=2)
    doc["defend"]["i_bau"].update(rounds=2, recover_epochs=2)
    doc["defend"]["sau"].update(pgd_steps=2)  # the search and the step both run; how far is tests/test_defenses.py's
    doc["scan"].update(candidates=2)  # B and every defended net scanned, 2 classes verified each, not 5 (K is 6)
    (root / "params.yaml").write_text(yaml.safe_dump(doc))
    return root


def _build(name, faces, tmp_path):
    if name == "keras2_hdf5":
        path = tmp_path / "keras2.h5"
        _keras2_hdf5(path, faces)
        return path
    make = (RUNS.get(name) or REFUSED[name])[0]
    model = _train(make(), faces, logits=name == "logits_no_bias")
    path = tmp_path / f"{name}.keras"
    model.save(path)
    return path


@pytest.mark.parametrize("name", sorted(RUNS))
def test_user_model_runs_the_whole_pipeline(name, faces, tmp_path):
    layer = RUNS[name][1]
    root = _project(tmp_path, faces, _build(name, faces, tmp_path), layer)
    for stage, *args in [("fetch_data",)] + after_fetch(THRESHOLDS, DEFENSES):
        code, err = run_stage(stage, root, *args)
        assert code == 0 and not [e for e in err if not e.startswith("warning: ")], (stage, err)

    model = keras.models.load_model(root / "models/badnet.h5", compile=False)
    valid, test, bd = (h5data.read(root / h5data.FILES[s]) for s in ("valid", "test", "bd_test"))

    def classes(net, x):  # one eager call on the few images: Keras's predict traces each new net first
        return np.argmax(net(np.asarray(x / 255.0, np.float32), training=False).numpy(), axis=1)

    # the sweep: every step against the pruned model re-evaluated in full, prediction by prediction
    sweep = pd.read_csv(root / "plots/prune_sweep.csv")
    order = sweep["channel_removed"].to_numpy()[1:]
    front, _ = pruning.split(model, layer)
    fast = pruning.sweep_predictions(model, layer, front.predict(valid.x / 255.0, verbose=0), order,
                                     pruning.removed_values(model, layer))
    for k in range(len(order) + 1):
        pruned = pruning.prune(model, layer, order[:k])
        slow = classes(pruned, valid.x)
        assert np.array_equal(fast[k], slow), k
        assert sweep["clean_accuracy_valid"][k] == pytest.approx(100 * np.mean(slow == valid.y), abs=1e-3), k
    assert len(np.unique(fast[0])) > 1  # a trained net: the check sees more than one class

    b_test, b_bd = classes(model, test.x), classes(model, bd.x)
    for folder, stage in (("models/variants", "export-variants"), ("models/fine_pruned", "fine-prune")):
        for e in variants.read_index(root / folder, THRESHOLDS, stage):
            if not e["reached"]:
                continue
            net = keras.models.load_model(Path(e["dir"]) / e["pruned"], compile=False)
            g = variants.load_repaired(Path(e["dir"]) / e["repaired"])
            p_test, p_bd = classes(net, test.x), classes(net, bd.x)
            # the saved G, loaded: B's class where B and B' agree, N elsewhere
            assert np.array_equal(classes(g, test.x), np.where(b_test == p_test, b_test, K))
            assert np.array_equal(classes(g, bd.x), np.where(b_bd == p_bd, b_bd, K))
            removed = np.sort(order[:e["channels_pruned"]])  # conv filter and BN gamma, beta stay 0
            for w in pruning.channel_weights(net, layer):
                assert np.all(np.asarray(w)[..., removed] == 0), (w.path, removed)
    assert json.loads((root / "metrics/repaired.json").read_text())
    for name in DEFENSES:  # every defense, through its real stage: its G obeys the rule too
        folder = root / "models/defenses" / name
        net = keras.models.load_model(folder / "defended.h5", compile=False)
        g = variants.load_repaired(folder / "repaired.keras")
        for x, b_cls in ((test.x, b_test), (bd.x, b_bd)):
            assert np.array_equal(classes(g, x), np.where(b_cls == classes(net, x), b_cls, K)), name
        entry = json.loads((folder / "defense.json").read_text())
        if name in ("anp", "rnp"):  # the pruned neurons' kernels are zero, the classifier untouched
            neurons = Neurons(model)
            zeroed = sum(int((np.all(k1.reshape(-1, k1.shape[-1]) == 0, 0) & ~np.all(k0.reshape(-1, k0.shape[-1]) == 0, 0)).sum())
                         for k0, k1 in ((np.asarray(model.weights[i]), np.asarray(net.weights[i]))
                                        for i in neurons.weight_index))
            assert zeroed == entry["neurons_pruned"], name
            head = next(i for i, w in enumerate(model.weights) if w is classifier(model).kernel)
            assert head not in neurons.weight_index
            assert np.array_equal(np.asarray(model.weights[head]), np.asarray(net.weights[head])), name
        if name == "nad":
            assert entry["layers"] and all(l in [x.name for x in model.layers] for l in entry["layers"])
    entry = json.loads((root / "models/defenses/fine_pruning/defense.json").read_text())
    zero = [np.all(np.asarray(w) == 0, axis=tuple(range(np.ndim(w) - 1)))
            for w in pruning.channel_weights(keras.models.load_model(
                root / "models/defenses/fine_pruning/defended.h5", compile=False), layer)]
    assert int(np.logical_and.reduce(zero).sum()) >= entry["channels_pruned"] > 0


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_user_model_that_cannot_be_pruned_is_refused_with_the_reason(name, faces, tmp_path):
    _, layer, pattern = REFUSED[name]
    root = _project(tmp_path, faces, _build(name, faces, tmp_path), layer)
    assert run_stage("fetch_data", root)[0] == 0
    assert run_stage("baseline", root)[0] == 0  # B itself is scored: only pruning needs the layer
    code, err = run_stage("activations", root)
    lines = [e for e in err if not e.startswith("warning: ")]
    assert code == 1 and len(lines) == 1 and lines[0].startswith("error: params.yaml: "), err
    assert re.search(pattern, lines[0]), lines[0]
    assert not (root / "data/activations.h5").exists()


def test_batchnorm_channel_is_exactly_zero_once_pruned(faces):
    """Zeroing the conv filter alone leaves BN's beta - gamma * mean / std; zeroing gamma and
    beta too makes the removed channel exactly 0 at the pruned layer, for any input."""
    model = _train(batchnorm(), faces)
    bn = model.get_layer("bn_b")
    bn.moving_mean.assign(np.full(10, 0.3, np.float32))  # a mean that would leak through
    pruned = pruning.prune(model, "pool_b", [1, 4])
    front, _ = pruning.split(pruned, "pool_b")
    acts = front.predict(faces["valid"][0] / 255.0, verbose=0)
    kept = np.setdiff1d(np.arange(10), [1, 4])
    assert np.all(acts[..., [1, 4]] == 0) and np.any(acts[..., kept] != 0)
    assert np.all(pruning.removed_values(model, "pool_b") == 0)
    gamma, beta = (np.asarray(w) for w in (pruned.get_layer("bn_b").gamma, pruned.get_layer("bn_b").beta))
    assert np.all(gamma[[1, 4]] == 0) and np.all(beta[[1, 4]] == 0) and np.all(gamma[[0, 2]] != 0)


def test_zero_padding_keeps_the_border_apart_from_the_inside():
    model = zero_padding()
    fill = pruning.removed_values(model, "pool_b")
    assert np.all(fill[0, :, :] == 0) and np.allclose(fill[1:-1, 1:-1, :], np.log(2))  # softplus(0) inside


def test_a_user_model_no_defense_can_handle_is_refused_by_its_stage_before_any_work(faces, tmp_path):
    """Sigmoid scores are neither probabilities nor logits: every defend@NAME refuses the
    model with one line and writes nothing."""
    x = keras.Input((55, 47, 3))
    h = L.MaxPooling2D(2, name="pool_b")(L.Conv2D(8, 3, strides=2, activation="relu", name="conv_b")(x))
    net = keras.Model(x, L.Dense(K, activation="sigmoid", name="scores")(L.Flatten()(h)))
    net.save(tmp_path / "sigmoid.keras")
    root = _project(tmp_path, faces, tmp_path / "sigmoid.keras", "pool_b")
    assert run_stage("fetch_data", root)[0] == 0
    for name in DEFENSES:
        code, err = run_stage("defend", root, name)
        lines = [e for e in err if not e.startswith("warning: ")]
        assert code == 1 and len(lines) == 1, (name, err)
        assert re.search(r"output layer 'scores' applies sigmoid; expected a softmax", lines[0]), lines[0]
        assert not (root / "models/defenses" / name).exists()


def test_a_masked_model_with_a_frozen_layer_a_nested_block_and_a_separate_softmax():
    """Neuron masks cover frozen and nested layers, and leave out the classifier found in the
    graph, behind a separate softmax layer; a pruned copy zeroes the nested layer's kernel."""
    inner_in = keras.Input((27, 23, 8))
    inner = keras.Model(inner_in, L.Conv2D(6, 3, activation="relu", name="inner_conv")(inner_in), name="block")
    x = keras.Input((55, 47, 3))
    frozen = L.Conv2D(8, 3, strides=2, activation="relu", name="frozen_conv")
    frozen.trainable = False
    h = L.Flatten()(inner(frozen(x)))
    h = L.Dense(5, name="head")(L.Dense(12, activation="relu", name="hidden")(h))
    net = keras.Model(x, L.Activation("softmax", name="probabilities")(h))
    neurons = Neurons(net)
    assert sorted(l.name for l in neurons.layers) == ["frozen_conv", "hidden", "inner_conv"]
    assert classifier(net).name == "head"
    xs = np.random.default_rng(0).random((3, 55, 47, 3)).astype(np.float32)
    cut = [np.arange(n) % 2 == 0 for n in neurons.sizes]
    masked = neurons(xs, [(~c).astype(np.float32) for c in cut])
    assert np.allclose(np.asarray(masked), neurons.prune(cut).predict(xs, verbose=0), atol=1e-6)
    inner_kernel = np.asarray(neurons.prune(cut).weights[neurons.weight_index[
        [l.name for l in neurons.layers].index("inner_conv")]])
    assert np.all(inner_kernel[..., cut[[l.name for l in neurons.layers].index("inner_conv")]] == 0)
