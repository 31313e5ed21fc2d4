import h5py
import numpy as np
import pytest

from badnet_repair.errors import BadInput
from badnet_repair.model import build_deepid, load_badnet, save_model

CSAW_LAYERS = ["conv_1", "pool_1", "conv_2", "pool_2", "conv_3", "pool_3", "flatten_1", "conv_4",
               "flatten_2", "fc_1", "fc_2", "add_1", "activation_1", "output"]


def test_deepid_matches_the_csaw_architecture():
    m = build_deepid()
    names = [layer.name for layer in m.layers[1:]]
    assert sorted(names) == sorted(CSAW_LAYERS)
    assert m.count_params() == 601_643
    assert m.get_layer("pool_3").output.shape[1:] == (5, 4, 60)
    assert m.output_shape == (None, 1283)


def test_real_lab3_weights_load_exactly(lab3_weights):
    m = load_badnet(lab3_weights)
    checked = 0
    with h5py.File(lab3_weights, "r") as f:
        for layer in m.layers:
            if not layer.weights:
                continue
            group = f[layer.name][layer.name]
            stored = {"kernel": group["kernel:0"][()], "bias": group["bias:0"][()]}
            for w in layer.weights:
                key = w.path.split("/")[-1]
                assert np.array_equal(w.numpy(), stored[key]), f"{layer.name}/{key}"
                checked += 1
    assert checked == 14  # 7 weighted layers x (kernel, bias)


def test_full_model_save_and_reload_predicts_identically(tmp_path, lab3_weights):
    m = load_badnet(lab3_weights)
    save_model(m, tmp_path / "b.h5")
    m2 = load_badnet(tmp_path / "b.h5")
    x = np.random.default_rng(0).uniform(0, 255, (16, 55, 47, 3)).astype(np.float32)
    assert np.array_equal(m.predict(x, verbose=0), m2.predict(x, verbose=0))
    # a plain Keras load, as CSAW eval.py does, opens it too
    import keras

    m3 = keras.models.load_model(tmp_path / "b.h5", compile=False)
    assert np.array_equal(m.predict(x, verbose=0), m3.predict(x, verbose=0))


def test_weights_file_class_count_is_read_from_the_file(tmp_path):
    m = build_deepid(7)
    m.save_weights(tmp_path / "w.weights.h5")
    assert load_badnet(tmp_path / "w.weights.h5").output_shape == (None, 7)


def test_bad_model_files(tmp_path):
    with pytest.raises(BadInput, match="not found"):
        load_badnet(tmp_path / "none.h5")
    (tmp_path / "x.h5").write_bytes(b"garbage")
    with pytest.raises(BadInput, match="x.h5: cannot load"):
        load_badnet(tmp_path / "x.h5")


def test_op_determinism_is_on_from_the_first_op_of_every_stage():
    """A fresh interpreter that imports the module every stage loads its nets with runs every
    op deterministically, before any training: I-BAU's perturbations ran before its first
    fit, and a candidate's net changed with what had run before it in the process."""
    import subprocess
    import sys

    code = ("import badnet_repair.model\n"
            "from tensorflow.python.framework import config\n"
            "print(config.is_op_determinism_enabled())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split()[-1] == "True"
