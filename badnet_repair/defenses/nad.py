"""NAD (Li et al., ICLR 2021): fine-tune B into a teacher on clean data, then train B as the
student with cross-entropy plus beta times the distance between the student's and the
teacher's attention maps at the chosen layers (by default the last conv blocks' outputs,
found from the graph, as the paper takes the last residual groups')."""
from __future__ import annotations

from .. import training
from .base import strongest_within

PAPER = "Li et al., Neural Attention Distillation, ICLR 2021"
PARAMS = {"learning_rates": [float], "teacher_epochs": int, "epochs": int, "batch_size": int, "beta": float,
          "layers": [str, ...], "blocks": int}


def check(model, cfg: dict, prune_layer: str) -> dict:
    """cfg['layers'], or the outputs of the model's last cfg['blocks'] conv blocks: each must
    be a feature map with more than one position (on a vector the attention map is constant)."""
    from ..errors import BadInput
    from ..params import PARAMS_FILE
    from ..pruning import conv_blocks

    blocks = conv_blocks(model)
    from ..model import keras

    maps = [l.name for l in model.layers if not isinstance(l, (keras.layers.InputLayer, keras.Model))
            and len(l.output.shape) == 4 and l.output.shape[1] * l.output.shape[2] > 1]
    if not cfg["layers"]:
        if cfg["blocks"] < 1:
            raise BadInput(f"{PARAMS_FILE}: 'defend.nad.blocks' must be >= 1, got {cfg['blocks']}")
        found = [b for b in blocks if b in maps][-cfg["blocks"]:]
        if not found:
            raise BadInput(f"{PARAMS_FILE}: 'defend.nad.layers' is empty and the model has no conv block with a "
                           f"feature map to take attention from: NAD cannot run on it")
        return dict(cfg, layers=found)
    for name in cfg["layers"]:
        if name not in maps:
            why = "has no such layer" if name not in [l.name for l in model.layers] else \
                "outputs no feature map of more than one position, where attention is constant"
            raise BadInput(f"{PARAMS_FILE}: 'defend.nad.layers' names {name!r}, but the model {why} "
                           f"(layers that would do: {', '.join(maps)})")
    return cfg


def attention(feature, p: float = 2.0):
    """NAD's attention map: the channel mean of |a|^p, flattened and L2-normalised."""
    from ..model import keras

    ops = keras.ops
    a = ops.mean(ops.power(ops.abs(feature), p), axis=-1)
    a = ops.reshape(a, (ops.shape(a)[0], -1))
    return a / ops.maximum(ops.norm(a, axis=-1, keepdims=True), 1e-12)


def defend(model, clean, cfg: dict, floor: float, log=print):
    """Teacher: FT for cfg['teacher_epochs']; student: cfg['epochs'] of CE + beta * AT loss at
    cfg['layers']. The learning rate (teacher and student) is the largest within the floor."""
    import tensorflow as tf

    from ..model import keras

    ce = training.cross_entropy(model)

    def features(net):
        return keras.Model(net.inputs, [net.get_layer(n).output for n in cfg["layers"]] + [net.outputs[0]])

    def make(lr):
        teacher = training.copy(model)
        training.fit(teacher, clean.x, clean.y, epochs=cfg["teacher_epochs"], batch_size=cfg["batch_size"],
                     learning_rate=lr, seed=cfg["seed"], log=lambda s: None)
        t_feat, student = features(teacher), training.copy(model)
        s_feat = features(student)

        def loss(xb, yb):
            *fs, out = s_feat(xb, training=True)
            ft = t_feat(xb, training=False)[:-1]
            at = sum(tf.reduce_mean(tf.square(attention(a) - tf.stop_gradient(attention(b)))) for a, b in zip(fs, ft))
            return ce(yb, out) + cfg["beta"] * at, out

        training.fit(student, clean.x, clean.y, epochs=cfg["epochs"], batch_size=cfg["batch_size"], learning_rate=lr,
                     seed=cfg["seed"], loss=loss, log=lambda s: None)
        return student

    student, lr, tried = strongest_within(sorted(cfg["learning_rates"], reverse=True), make, clean, floor,
                                          log, "learning_rate")
    return student, {"learning_rate": lr, "layers": cfg["layers"], "tried": tried}
