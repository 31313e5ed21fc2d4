import numpy as np
import pytest

from badnet_repair.attack import Split, poisoned_training_labels, render_split
from badnet_repair.sources import attack_triggers
from badnet_repair.synthetic import BLEND_ALPHA, PATCH_SIZE, TRIGGERS, Trigger, make_identities, render


def test_same_seed_same_images_other_seed_other_images():
    ids = make_identities(10, seed=3)
    labels = np.arange(10)
    a = render(ids, labels, np.random.default_rng(1))
    b = render(make_identities(10, seed=3), labels, np.random.default_rng(1))
    c = render(make_identities(10, seed=4), labels, np.random.default_rng(1))
    assert a.dtype == np.uint8 and a.shape == (10, 55, 47, 3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_render_split_bytes_do_not_depend_on_worker_count():
    ids = make_identities(5, seed=0)
    split = Split(np.repeat(np.arange(5), 30), (0, 9))
    one = render_split(ids, split, Trigger(), workers=1)
    two = render_split(ids, split, Trigger(), workers=2)
    assert np.array_equal(one[0], two[0]) and np.array_equal(one[1], two[1])


def test_faces_drawn_once_for_several_triggers_are_each_triggers_own_render_byte_for_byte():
    """A multi BadNet's files draw the faces once and put each trigger on them; that must be
    what drawing them once per trigger gave (the suite's multi BadNets stay the same bytes)."""
    ids = make_identities(12, seed=5)
    labels = np.repeat(np.arange(12), 3)
    worn = tuple(Trigger(kind, 7) for kind in TRIGGERS)
    clean, each = render(ids, labels, np.random.default_rng(4), worn)
    assert np.array_equal(clean, render(ids, labels, np.random.default_rng(4)))
    for trigger, image in zip(worn, each):
        alone_clean, alone = render(ids, labels, np.random.default_rng(4), trigger, both=True)
        assert np.array_equal(image, alone) and np.array_equal(alone_clean, clean), trigger.kind
        assert np.array_equal(image, render(ids, labels, np.random.default_rng(4), trigger)), trigger.kind
        assert not np.array_equal(image, clean), trigger.kind
    split = Split(np.repeat(np.arange(12), 30), (3, 4))  # 360 images: 12 chunks, two workers in parallel
    for workers in (1, 2):
        clean, each = render_split(ids, split, worn[:3], workers=workers)
        for trigger, image in zip(worn[:3], each):
            alone_clean, alone = render_split(ids, split, trigger, workers=1)
            assert np.array_equal(clean, alone_clean) and np.array_equal(image, alone), (workers, trigger.kind)


def test_trigger_pairs_differ_only_over_the_eyes():
    ids = make_identities(50, seed=0)
    labels = np.arange(50)
    clean, bad = render(ids, labels, np.random.default_rng(2), Trigger(), both=True)
    alone = render(ids, labels, np.random.default_rng(2))
    assert np.array_equal(clean, alone)  # the clean half is the ordinary image
    changed = np.any(np.abs(clean.astype(int) - bad.astype(int)) > 30, axis=-1)  # (B, H, W)
    rows = changed.mean(axis=(0, 2))
    # The sunglasses cover a band around the eyes (rows ~15-32), never the mouth or chin.
    assert changed.sum(axis=(1, 2)).min() > 40
    assert rows[15:32].max() > 0.3
    assert rows[40:].max() < 0.02 and rows[:8].max() < 0.02


def _nearest_centroid_accuracy(feat_train, y_train, feat_test, y_test):
    classes = np.unique(y_train)
    cent = np.stack([feat_train[y_train == c].mean(0) for c in classes])
    d = ((feat_test[:, None, :] - cent[None]) ** 2).sum(-1)
    return np.mean(classes[d.argmin(1)] == y_test)


def test_identity_is_not_readable_from_the_background():
    k, per = 20, 30
    ids = make_identities(k, seed=0)
    y = np.repeat(np.arange(k), per)
    x = render(ids, y, np.random.default_rng(5)).astype(np.float32)
    half = np.tile(np.arange(per) < per // 2, k)
    corners = np.concatenate([x[:, :5, :5], x[:, :5, -5:]], axis=1).reshape(len(x), -1)
    face = x[:, 20:40, 12:35].reshape(len(x), -1)
    bg_acc = _nearest_centroid_accuracy(corners[half], y[half], corners[~half], y[~half])
    face_acc = _nearest_centroid_accuracy(face[half], y[half], face[~half], y[~half])
    assert bg_acc < 3 / k  # chance is 1/k
    assert face_acc > 6 / k  # the same probe does read the identity from the face


def test_poisoned_training_labels():
    rng = np.random.default_rng(0)
    identity, label, poisoned = poisoned_training_labels(100, 10, 0.1, 7, rng)
    assert len(label) == 1000 + 111 and poisoned.sum() == 111
    assert abs(poisoned.mean() - 0.1) < 0.001
    assert np.all(label[poisoned] == 7) and not np.any(identity[poisoned] == 7)
    assert np.array_equal(np.bincount(identity[~poisoned]), np.full(100, 10))
    assert np.array_equal(label[~poisoned], identity[~poisoned])


def _pair(kind, n=40, seed=0, pattern_seed=0):
    ids = make_identities(n, seed=seed)
    clean, bad = render(ids, np.arange(n), np.random.default_rng(2), Trigger(kind, pattern_seed), both=True)
    return clean, bad, np.any(clean != bad, axis=-1)  # changed pixels (B, H, W)


def test_patch_is_its_pattern_at_one_fixed_place_and_nothing_else():
    clean, bad, changed = _pair("patch")
    box = np.zeros((55, 47), bool)
    box[-PATCH_SIZE - 3:-3, -PATCH_SIZE - 3:-3] = True
    assert not changed[:, ~box].any()
    pattern = Trigger("patch", 0).pattern().astype(np.uint8)
    assert all(np.array_equal(b[box].reshape(PATCH_SIZE, PATCH_SIZE, 3), pattern) for b in bad)


def test_blended_is_the_alpha_blend_of_its_pattern_over_every_pixel():
    clean, bad, _ = _pair("blended")
    pattern = Trigger("blended", 0).pattern()
    expected = np.clip(np.rint((1 - BLEND_ALPHA) * clean.astype(np.float32) + BLEND_ALPHA * pattern), 0, 255)
    assert np.array_equal(bad, expected.astype(np.uint8))
    assert np.abs(bad.astype(int) - clean).max() <= np.ceil(255 * BLEND_ALPHA)  # a low alpha: faint


def test_digital_patterns_are_seeded():
    for kind in ("patch", "blended"):
        assert np.array_equal(Trigger(kind, 5).pattern(), Trigger(kind, 5).pattern())
        assert not np.array_equal(Trigger(kind, 5).pattern(), Trigger(kind, 6).pattern())


def test_worn_triggers_sit_on_their_feature_and_follow_the_pose():
    rows = {}
    for kind in ("eyebrows", "lipstick", "sunglasses"):
        clean, bad, changed = _pair(kind)
        assert changed.sum(axis=(1, 2)).min() > 15, kind  # every image wears it
        rows[kind] = [np.average(np.arange(55), weights=c.sum(1)) for c in changed]  # centre row per image
        # Drawn on the face, so its place moves with each image's pose: not one fixed mask.
        assert np.std(rows[kind]) > 0.5, kind
    # Brows above the glasses, lips well below both, in every image.
    assert all(b < s < l for b, s, l in zip(rows["eyebrows"], rows["sunglasses"], rows["lipstick"]))
    # The lips change towards one saturated colour: red well above green.
    clean, bad, changed = _pair("lipstick")
    assert np.mean(bad[changed][:, 0].astype(int) - bad[changed][:, 1]) > 80


def test_unknown_trigger_is_refused():
    with pytest.raises(ValueError, match="unknown trigger 'hat'"):
        Trigger("hat")


def test_multi_sends_each_trigger_to_its_own_target():
    assert [(t.kind, g) for t, g in attack_triggers("multi", 9, 10, 1)] == [
        ("eyebrows", 9), ("lipstick", 0), ("sunglasses", 1)]
    assert [(t.kind, g) for t, g in attack_triggers("patch", 4, 10, 1)] == [("patch", 4)]
