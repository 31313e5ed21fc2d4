"""The DeepID network of CSAW-HackML-2020, and loading BadNets from files."""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from pathlib import Path

from .errors import BadInput, debug_enabled

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@contextlib.contextmanager
def quiet_stderr():
    """TensorFlow's C++ start-up lines (absl, oneDNN) ignore Python logging and
    TF_CPP_MIN_LOG_LEVEL, so keep them out of stage output at the file-descriptor level."""
    if debug_enabled():
        yield
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


with quiet_stderr():
    import tensorflow
    import keras
    from keras import layers
# Deterministic kernels from the first op on, for every stage: switched on later (at the
# first training), a net's bytes depended on what ran before it in the process (I-BAU's
# second candidate differed when a first had run; its perturbations came before any fit).
tensorflow.config.experimental.enable_op_determinism()
import h5py  # noqa: E402

logging.getLogger("absl").setLevel(logging.ERROR)  # e.g. "HDF5 is legacy": CSAW's eval.py needs it
logging.getLogger("tensorflow").setLevel(logging.ERROR)  # e.g. retracing notes: one tf.function per model is by design

INPUT_SHAPE = (55, 47, 3)
NUM_CLASSES = 1283


def build_deepid(num_classes: int = NUM_CLASSES, input_shape=INPUT_SHAPE) -> keras.Model:
    """DeepID as in CSAW-HackML-2020, with the layer names its weight files use.

    Three conv/pool blocks; pool_3 feeds two branches (fc_1 directly, fc_2 via
    conv_4) that are added, then a softmax over the identities.
    """
    x = keras.Input(input_shape, name="input")
    h = layers.Conv2D(20, 4, activation="relu", name="conv_1")(x)
    h = layers.MaxPooling2D(2, name="pool_1")(h)
    h = layers.Conv2D(40, 3, activation="relu", name="conv_2")(h)
    h = layers.MaxPooling2D(2, name="pool_2")(h)
    h = layers.Conv2D(60, 3, activation="relu", name="conv_3")(h)
    pool_3 = layers.MaxPooling2D(2, name="pool_3")(h)
    fc_1 = layers.Dense(160, name="fc_1")(layers.Flatten(name="flatten_1")(pool_3))
    h = layers.Conv2D(80, 2, activation="relu", name="conv_4")(pool_3)
    fc_2 = layers.Dense(160, name="fc_2")(layers.Flatten(name="flatten_2")(h))
    h = layers.Activation("relu", name="activation_1")(layers.Add(name="add_1")([fc_1, fc_2]))
    y = layers.Dense(num_classes, activation="softmax", name="output")(h)
    return keras.Model(x, y, name="deepid")


def weights_num_classes(path) -> int:
    """Class count stored in a DeepID weights file: the width of the one kernel fed by
    the 160-unit hidden layer (the `output` layer), whatever the file's naming scheme
    (Keras 2 names layers, Keras 3 .weights.h5 numbers them)."""
    found = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and obj.ndim == 2 and obj.shape[0] == 160:
            found.append(obj.shape[1])

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    if len(found) != 1:
        raise BadInput(f"{path}: neither a full Keras model (no model_config) nor DeepID weights "
                       f"(no single 160 x N output kernel)")
    return int(found[0])


def load_badnet(path, num_classes: int | None = None) -> keras.Model:
    """Load a BadNet: a full Keras model (.h5/.keras) or a weights file for DeepID.

    Never unpickles: safe_mode refuses Lambda layers' serialised code in either format."""
    from .checks import model_io

    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: model file not found")
    # Keras writes multi-line warnings while it loads (which ones depends on its version):
    # held back, then dropped if the load fails (the error says why) or kept as one line each
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model = _load(path, num_classes)
        except BadInput:
            raise
        except Exception as exc:  # Keras and h5py raise many types for a bad file
            first = " ".join(str(exc).split())[:300]
            raise BadInput(f"{path}: cannot load as a Keras model or DeepID weights "
                           f"({type(exc).__name__}: {first})") from None
    quiet = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)  # for developers, not users
    for message in dict.fromkeys(" ".join(str(w.message).split())[:300] for w in caught
                                 if not issubclass(w.category, quiet)):
        print(f"warning: {path}: {message}", file=sys.stderr, flush=True)
    model_io(model, path)
    return model


def _load(path: Path, num_classes: int | None) -> keras.Model:
    if path.suffix == ".keras":
        return keras.models.load_model(path, compile=False, safe_mode=True)
    with h5py.File(path, "r") as f:
        full_model = "model_config" in f.attrs
    if full_model:
        return keras.models.load_model(path, compile=False, safe_mode=True)
    model = build_deepid(num_classes or weights_num_classes(path))
    model.load_weights(path)
    return model


def save_model(model: keras.Model, path) -> None:
    """Save a full model atomically, in the format its suffix names (.h5 is what CSAW eval.py loads).

    A .keras zip carries the save time twice (an entry's date, metadata's date_saved);
    both are pinned so that the same model always gives the same bytes."""
    from .atomic import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        target = tmp.with_name(tmp.name + path.suffix)  # Keras picks the format by suffix
        model.save(target)
        if path.suffix == ".keras":
            _pin_zip_times(target, tmp)
            target.unlink()
        else:
            os.replace(target, tmp)


def _pin_zip_times(src: Path, dst: Path) -> None:
    import json
    import zipfile

    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item)
            if item.filename == "metadata.json":
                meta = json.loads(data)
                meta["date_saved"] = "1980-01-01@00:00:00"
                data = json.dumps(meta).encode()
            info = zipfile.ZipInfo(item.filename, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type, info.external_attr = item.compress_type, item.external_attr
            zout.writestr(info, data)
