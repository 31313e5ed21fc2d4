"""NAD (Li et al., ICLR 2021): fine-tune B into a teacher on clean data, then train B as the
student with cross-entropy plus beta times the distance between the student's and the
teacher's attention maps at the chosen layers."""
from __future__ import annotations

from . import defense


def attention(feature, p: float = 2.0):
    """NAD's attention map: the channel mean of |a|^p, flattened and L2-normalised."""
    from .model import keras

    ops = keras.ops
    a = ops.mean(ops.power(ops.abs(feature), p), axis=-1)
    a = ops.reshape(a, (ops.shape(a)[0], -1))
    return a / ops.maximum(ops.norm(a, axis=-1, keepdims=True), 1e-12)


def defend(model, clean: defense.Clean, cfg: dict, floor: float, log=print):
    """Teacher: FT for cfg['teacher_epochs']; student: cfg['epochs'] of CE + beta * AT loss at
    cfg['layers']. The learning rate (teacher and student) is the largest within the floor."""
    import tensorflow as tf

    from .errors import BadInput
    from .model import keras
    from .params import PARAMS_FILE

    names = [layer.name for layer in model.layers]
    for name in cfg["layers"]:
        if name not in names:
            raise BadInput(f"{PARAMS_FILE}: 'defend.nad.layers' names {name!r}, which the BadNet does not have")

    def features(net):
        return keras.Model(net.inputs, [net.get_layer(n).output for n in cfg["layers"]] + [net.outputs[0]])

    def make(lr):
        teacher = defense.copy(model)
        defense.fit(teacher, clean.x, clean.y, epochs=cfg["teacher_epochs"], batch_size=cfg["batch_size"],
                    learning_rate=lr, seed=cfg["seed"], log=lambda s: None)
        t_feat, student = features(teacher), defense.copy(model)
        s_feat = features(student)

        def loss(_, xb, yb):
            *fs, out = s_feat(xb, training=True)
            ft = t_feat(xb, training=False)[:-1]
            at = sum(tf.reduce_mean(tf.square(attention(a) - tf.stop_gradient(attention(b)))) for a, b in zip(fs, ft))
            ce = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(yb, out))
            return ce + cfg["beta"] * at

        defense.fit(student, clean.x, clean.y, epochs=cfg["epochs"], batch_size=cfg["batch_size"], learning_rate=lr,
                    seed=cfg["seed"], loss=loss, log=lambda s: None)
        return student

    student, lr, tried = defense.strongest_within(sorted(cfg["learning_rates"], reverse=True), make, clean, floor,
                                                  log, "learning_rate")
    return student, {"learning_rate": lr, "tried": tried}
