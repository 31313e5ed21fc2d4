import h5py
import numpy as np
import pytest

from badnet_repair import h5data
from badnet_repair.errors import BadInput


def _images(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 55, 47, 3)).astype(np.uint8)


def test_roundtrip_is_nhwc_float32_and_int_labels(tmp_path):
    x, y = _images(7), np.arange(7) * 100
    h5data.write(tmp_path / "a.h5", x, y)
    ds = h5data.read(tmp_path / "a.h5")
    assert ds.x.dtype == np.float32 and ds.x.shape == (7, 55, 47, 3)
    assert np.array_equal(ds.x, x.astype(np.float32))
    assert ds.y.dtype == np.int64 and np.array_equal(ds.y, y)


def test_reads_channels_first_float64_with_float_labels_in_chunks(tmp_path):
    # Written by hand, as the real lab3 valid file is: float64 (N, 3, 55, 47), float labels.
    n = 10
    data = np.zeros((n, 3, 55, 47), np.float64)
    data[:, 0], data[:, 1], data[:, 2] = 10.0, 20.5, 255.0
    data[:, 0, 3, 4] = np.arange(n)  # one pixel that differs per image
    with h5py.File(tmp_path / "v.h5", "w") as f:
        f["data"] = data
        f["label"] = np.arange(n, dtype=np.float64) + 3
    ds = h5data.read(tmp_path / "v.h5", chunk=3)
    assert ds.x.shape == (n, 55, 47, 3)
    assert np.all(ds.x[:, 10, 10] == np.array([10.0, 20.5, 255.0], np.float32))
    assert np.array_equal(ds.x[:, 3, 4, 0], np.arange(n, dtype=np.float32))
    assert np.array_equal(ds.y, np.arange(n) + 3)


def test_same_arrays_give_same_bytes(tmp_path):
    x, y = _images(300, 1), np.arange(300)
    h5data.write(tmp_path / "a.h5", x, y)
    h5data.write(tmp_path / "b.h5", x, y)
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()


def test_missing_and_not_hdf5_are_one_line_errors(tmp_path):
    with pytest.raises(BadInput, match="file not found"):
        h5data.read(tmp_path / "nope.h5")
    (tmp_path / "junk.h5").write_text("not hdf5")
    with pytest.raises(BadInput, match="junk.h5: not a readable HDF5"):
        h5data.read(tmp_path / "junk.h5")


def test_non_integer_labels_rejected(tmp_path):
    with h5py.File(tmp_path / "f.h5", "w") as f:
        f["data"] = np.zeros((2, 3, 55, 47), np.uint8)
        f["label"] = np.array([1.0, 2.5])
    with pytest.raises(BadInput, match="non-integer"):
        h5data.read(tmp_path / "f.h5")


def test_trigger_dataset_roundtrip_and_absent_for_one_trigger(tmp_path):
    x, y, t = _images(6), np.array([5, 5, 6, 6, 7, 7]), np.array([0, 0, 1, 1, 2, 2])
    h5data.write(tmp_path / "m.h5", x, y, trigger=t, names=["eyebrows", "lipstick", "sunglasses"])
    ds = h5data.read(tmp_path / "m.h5")
    assert np.array_equal(ds.trigger, t) and ds.names == ("eyebrows", "lipstick", "sunglasses")
    h5data.write(tmp_path / "one.h5", x, y)
    with h5py.File(tmp_path / "one.h5") as f:
        assert sorted(f) == ["data", "label"]  # lab3's layout, unchanged
    assert h5data.read(tmp_path / "one.h5").trigger is None


@pytest.mark.parametrize("names,trigger,match", [
    (None, [0, 0, 0], "no 'names' attribute"),
    ('["a"]', [0, 1, 0], r"'trigger' must be \(3,\) integers indexing its 1 names"),
    ('["a", "b"]', [0, 1], r"'trigger' must be \(3,\)"),
    ("not json", [0, 0, 0], "no 'names' attribute"),
])
def test_bad_trigger_dataset_is_one_line_naming_the_file(tmp_path, names, trigger, match):
    path = tmp_path / "bd.h5"
    h5data.write(path, _images(3), np.zeros(3))
    with h5py.File(path, "a") as f:
        d = f.create_dataset("trigger", data=np.array(trigger))
        if names is not None:
            d.attrs["names"] = names
    with pytest.raises(BadInput, match=match) as exc:
        h5data.read(path)
    assert str(path) in str(exc.value) and "\n" not in str(exc.value)
