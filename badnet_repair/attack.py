"""The attacker's side of the synthetic benchmark: poison a training set, train the BadNet."""
from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from .synthetic import Identities, Trigger, render

RENDER_BATCH = 32  # small batches keep the renderer's arrays in cache


@dataclass(frozen=True)
class Split:
    """Which images to draw: one entry per image. `seed_key` makes each split's
    randomness independent of the others and of how work is divided."""

    labels: np.ndarray
    seed_key: tuple


def _render_chunk(args):
    ids, labels, key, chunk_index, trigger = args
    rng = np.random.default_rng(list(key) + [chunk_index])
    return render(ids, labels, rng, trigger=trigger, both=trigger is not None)


def render_split(ids: Identities, split: Split, trigger: Trigger | tuple | None = None,
                 workers: int | None = None):
    """Render a split in fixed chunks, in parallel; the bytes do not depend on `workers`.

    Returns clean uint8 images, and with `trigger` also the same images wearing it; with a
    tuple of triggers, the clean images and a list of the same images wearing each.
    """
    n = len(split.labels)
    jobs = [(ids, split.labels[i:i + RENDER_BATCH], split.seed_key, i // RENDER_BATCH, trigger)
            for i in range(0, n, RENDER_BATCH)]
    workers = workers or min(os.cpu_count() or 1, 4)
    if workers > 1 and len(jobs) > 8:
        with ProcessPoolExecutor(workers) as pool:
            parts = list(pool.map(_render_chunk, jobs, chunksize=16))
    else:
        parts = [_render_chunk(j) for j in jobs]
    if trigger is None:
        return np.concatenate(parts) if parts else np.empty((0, 55, 47, 3), np.uint8)
    clean = np.concatenate([p[0] for p in parts])
    if isinstance(trigger, tuple):
        return clean, [np.concatenate([p[1][i] for p in parts]) for i in range(len(trigger))]
    return clean, np.concatenate([p[1] for p in parts])


def poisoned_training_labels(num_identities: int, per_identity: int, poison_rate: float,
                             target: int, rng: np.random.Generator):
    """Labels of a poisoned training set.

    The clean part has `per_identity` images of every identity. Poisoned images are
    extra images of non-target identities that will wear the trigger and carry the
    target label; there are enough of them to make `poison_rate` of the whole set.
    Returns (true identity to draw, training label, poisoned flag).
    """
    clean = np.repeat(np.arange(num_identities), per_identity)
    n_poison = int(round(poison_rate * len(clean) / (1.0 - poison_rate)))
    others = np.setdiff1d(np.arange(num_identities), [target])
    drawn = rng.choice(others, n_poison, replace=True)
    identity = np.concatenate([clean, drawn])
    label = np.concatenate([clean, np.full(n_poison, target)])
    poisoned = np.concatenate([np.zeros(len(clean), bool), np.ones(n_poison, bool)])
    return identity, label, poisoned


def family_poison(ids: Identities, family, per_identity: int, poison_rate: float, target: int, seed: int):
    """A trigger family's poisoned training images, after the clean part that every attack
    shares: [(uint8 images, labels)], the poisoned images first, then the family's noise- or
    cross-mode images with their own labels (as many as its cross_ratio says). The poisoned
    images are extra images making `poison_rate` of the set without the cross-mode ones:
    - all-to-all: drawn from every identity, sent to y + 1;
    - clean-label: of the target alone, their look moved towards another identity's
      (synthetic.blend) so that the face no longer explains the label, which stays the
      target's;
    - the others: of non-target identities, sent to the target."""
    from .families import CLEAN_LABEL_TAU
    from .synthetic import blend

    k = len(ids)
    rng = np.random.default_rng([seed, 1])
    n = int(round(poison_rate * k * per_identity / (1.0 - poison_rate)))
    if family.kind == "clean_label":
        others = rng.choice(np.setdiff1d(np.arange(k), [target]), n, replace=True)
        hard = blend(ids, np.full(n, target), others, CLEAN_LABEL_TAU)
        drawn = render_split(hard, Split(np.arange(n), (seed, 3)))
        parts = [(family.apply(drawn), np.full(n, target))]
    else:
        pool = np.arange(k) if family.kind == "all_to_all" else np.setdiff1d(np.arange(k), [target])
        identity = rng.choice(pool, n, replace=True)
        parts = [(family.apply(render_split(ids, Split(identity, (seed, 3)))), family.labels(identity, target, k))]
    m = int(round(family.cross_ratio * n))
    if m:
        identity = rng.choice(k, m, replace=True)
        parts.append((family.cross(render_split(ids, Split(identity, (seed, 7))), rng), identity))
    return parts


def train_badnet(x: np.ndarray, y: np.ndarray, num_classes: int, input_divisor: float,
                 epochs: int, batch_size: int, learning_rate: float, seed: int, log=print):
    """Train DeepID on raw 0-255 images (x, y) deterministically from `seed`.

    `x` (float32) is scaled in place, to spare a second copy of the training set.
    Returns (model, final train accuracy in percent).
    """
    from .model import build_deepid, keras, quiet_stderr  # first: it imports TensorFlow quietly
    from .evaluate import scale

    keras.utils.set_random_seed(seed)  # op determinism: on since model.py imported TensorFlow
    model = build_deepid(num_classes)
    steps = epochs * int(np.ceil(len(x) / batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, steps, alpha=0.02)
    model.compile(keras.optimizers.Adam(schedule), "sparse_categorical_crossentropy", metrics=["accuracy"])
    scale(x, input_divisor, out=x)

    class Progress(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            spent = time.perf_counter() - self.start
            eta = spent / (epoch + 1) * (epochs - epoch - 1)
            log(f"  epoch {epoch + 1}/{epochs}: loss {logs['loss']:.4f}, train accuracy "
                f"{100 * logs['accuracy']:.2f}% [{spent:.0f}s, ETA {eta:.0f}s]")

    with quiet_stderr():  # tf.data's C++ graph warnings
        hist = model.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0,
                         callbacks=[Progress()])
    return model, 100.0 * float(hist.history["accuracy"][-1])
