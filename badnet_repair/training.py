"""The one loss and the one training loop: fine-pruning (fine-prune@X), every defense, and
the recoveries of I-BAU and RNP train through `fit`. Also the seeded holdout split and the
copy of a model that they share."""
from __future__ import annotations

import time

import numpy as np

from .errors import BadInput
from .params import PARAMS_FILE


def split_holdout(n: int, fraction: float, seed: int, param: str = "finetune.holdout",
                  labels=None) -> tuple[np.ndarray, np.ndarray]:
    """(train, holdout) indices of n clean images, round(fraction * n) held out, by a seeded shuffle.

    Without `labels`, the shuffle's first images (fine-pruning's split). With them, stratified: each
    class holds out its share of that number, floor or one more (the largest remainders first, ties
    in a seeded order), its images in the shuffle's order (the defenses' split). A per-image draw is
    not neutral on 9 images a class: the classes it takes most from train on fewest, fine-tuning
    favours the others, and the holdout reads a larger loss than the test (docs/defenses.md)."""
    if not 0 < fraction < 1:
        raise BadInput(f"{PARAMS_FILE}: '{param}' must be in (0, 1), got {fraction}")
    rng = np.random.default_rng([seed, 7])
    perm = rng.permutation(n)
    k = int(round(fraction * n))
    if k < 1 or k > n - 1:
        raise BadInput(f"{PARAMS_FILE}: '{param}' {fraction} leaves no images to train on "
                       f"or to hold out ({n} clean validation images)")
    if labels is None:
        return np.sort(perm[k:]), np.sort(perm[:k])
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    quota = k * counts / n
    held = np.floor(quota).astype(np.int64)
    held[np.lexsort((rng.permutation(len(classes)), held - quota))[:k - held.sum()]] += 1  # largest remainder
    cls = np.searchsorted(classes, labels[perm])
    by_class = np.argsort(cls, kind="stable")  # perm's positions grouped by class, in perm's order
    rank = np.empty(n, np.int64)
    rank[by_class] = np.arange(n) - np.repeat(np.cumsum(counts) - counts, counts)
    out = rank < held[cls]
    return np.sort(perm[~out]), np.sort(perm[out])


def optimizer(name: str, learning_rate, param: str = "finetune.optimizer"):
    """Adam, or SGD with Nesterov momentum 0.9."""
    from .model import keras

    if name == "adam":
        return keras.optimizers.Adam(learning_rate)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True)
    raise BadInput(f"{PARAMS_FILE}: '{param}' is {name!r}, expected adam or sgd")


def copy(model):
    """A copy of `model` with the same weights."""
    from .model import keras

    twin = keras.models.clone_model(model)
    twin.set_weights(model.get_weights())
    return twin


def output_layer(model):
    """The layer that makes `model`'s output, found in its graph (inside nested models too)."""
    from .graph import Graph
    from .model import keras

    graph = Graph(model)
    layer = graph.layers[graph.outputs[0][0]]
    return output_layer(layer) if isinstance(layer, keras.Model) else layer


def outputs_logits(model) -> bool:
    """Whether `model` outputs logits (True) or probabilities (False), as its output layer
    says: a softmax makes probabilities, no activation logits; anything else is refused."""
    from .model import keras

    layer = output_layer(model)
    if isinstance(layer, keras.layers.Softmax):
        return False
    act = getattr(layer, "activation", None)
    name = "linear" if act is None else getattr(act, "__name__", str(act))
    if name in ("softmax", "linear"):
        return name == "linear"
    raise BadInput(f"model {model.name!r}: its output layer {layer.name!r} applies {name}; expected a softmax "
                   f"(probabilities) or no activation (logits), so the cross-entropy cannot be taken")


def cross_entropy(model):
    """The one loss: mean sparse cross-entropy of `model`'s outputs, from probabilities or
    logits as the model itself outputs them. ce(labels, outputs) -> scalar."""
    from .model import keras

    logits = outputs_logits(model)

    def ce(labels, outputs):
        return keras.ops.mean(keras.losses.sparse_categorical_crossentropy(labels, outputs, from_logits=logits))
    return ce


def fit(model, x, y, *, epochs: int, batch_size: int, seed: int, learning_rate=None, optim="adam",
        variables=None, loss=None, step_fn=None, masks=(), after_step=(), augment=None, stop=None, batches=None,
        select=None, first_epoch: int = 0, rng=None, log=print, what: str = "") -> dict:
    """Train `variables` (default: `model`'s trainable ones) on (x, y), x as the model is fed.

    optim: "adam" or "sgd" with `learning_rate` on a cosine to 0 over the run, or a Keras
      optimizer (its own rate and clipping; reused, so its state carries over calls).
    loss(xb, yb) -> (value, outputs); default: the model's cross-entropy.
    step_fn(optimizer, variables, xb, yb, i) -> value replaces the plain step (FT-SAM, ANP).
    masks: (variable, 0/1 tensor) pairs multiplied in after every step, so what they zero
      stays zero; after_step: more callables run after every step (clipping masks).
    augment(xb, yb, rng) -> (xb, yb), per batch, in numpy (I-BAU's perturbed images).
    stop(value, accuracy) -> True ends training after that batch (RNP's unlearning floor).
    batches(rng) -> iterable of index arrays: one epoch (default: a seeded permutation).
    select() -> holdout accuracy: evaluated before training and after each epoch; the
      weights kept are the best epoch's from `first_epoch` on (epoch 0: the model as given).
    Returns {"epochs": [{epoch, loss, holdout_accuracy}], "steps", "chosen_epoch", "holdout_accuracy"}."""
    import tensorflow as tf

    from .model import keras

    keras.utils.set_random_seed(seed)  # op determinism: on since model.py imported TensorFlow
    variables = list(model.trainable_variables if variables is None else variables)
    if isinstance(optim, str):
        steps = epochs * int(np.ceil(len(y) / batch_size))
        optim = optimizer(optim, keras.optimizers.schedules.CosineDecay(learning_rate, max(steps, 1)))
    if not optim.built:
        optim.build(variables)
    if loss is None:
        ce = cross_entropy(model)

        def loss(xb, yb):
            out = model(xb, training=True)
            return ce(yb, out), out

    def plain(optim, variables, xb, yb, i):
        with tf.GradientTape() as tape:
            value, out = loss(xb, yb)
        optim.apply_gradients(zip(tape.gradient(value, variables), variables))
        hit = tf.equal(tf.argmax(out, -1, output_type=tf.int32), tf.cast(yb, tf.int32))
        return value, tf.reduce_mean(tf.cast(hit, tf.float32))

    def step(xb, yb, i):
        value = (step_fn or plain)(optim, variables, xb, yb, i)
        value, acc = value if isinstance(value, tuple) else (value, tf.constant(float("nan")))
        for w, m in masks:
            w.assign(w * m)
        for fn in after_step:
            fn()
        return value, acc

    rng = np.random.default_rng([seed, 11]) if rng is None else rng
    batches = batches or (lambda r: (idx for p in [r.permutation(len(y))]
                                     for idx in (p[i:i + batch_size] for i in range(0, len(y), batch_size))))
    history, count, done, start, compiled = [], 0, False, time.perf_counter(), None
    best = None
    if select is not None:
        acc0 = select()
        history.append({"epoch": 0, "loss": None, "holdout_accuracy": round(acc0, 4)})
        best = (acc0, [v.numpy() for v in model.weights], 0)
    for epoch in range(1, epochs + 1):
        total, seen = 0.0, 0
        for idx in batches(rng):
            xb, yb = x[idx], y[idx]
            if augment is not None:
                xb, yb = augment(xb, yb, rng)
            if compiled is None:  # one trace for every batch size: the last batch, I-BAU's added images
                compiled = tf.function(step, input_signature=[tf.TensorSpec((None,) + a.shape[1:], tf.as_dtype(a.dtype))
                                                              for a in (xb, yb)] + [tf.TensorSpec((), tf.int32)])
            value, acc = compiled(tf.constant(xb), tf.constant(yb), tf.constant(count, tf.int32))
            total, seen, count = total + float(value) * len(idx), seen + len(idx), count + 1
            if stop is not None and stop(float(value), 100.0 * float(acc)):
                done = True
                break
        row = {"epoch": epoch, "loss": round(total / max(seen, 1), 6)}
        if select is not None:
            row["holdout_accuracy"] = round(select(), 4)
            if row["holdout_accuracy"] > best[0] or epoch == first_epoch:
                best = (row["holdout_accuracy"], [v.numpy() for v in model.weights], epoch)
        history.append(row)
        spent = time.perf_counter() - start
        log(f"  {what}epoch {epoch}/{epochs}: loss {row['loss']:.4f}"
            + (f", holdout accuracy {row['holdout_accuracy']:.2f}%" if select is not None else "")
            + f" [{spent:.0f}s, ETA {spent / epoch * (epochs - epoch):.0f}s]")
        if done:
            break
    if best is not None:
        for v, value in zip(model.weights, best[1]):
            v.assign(value)
    return {"epochs": history, "steps": count,
            "chosen_epoch": best[2] if best is not None else len(history),
            "holdout_accuracy": round(best[0], 4) if best is not None else None}
