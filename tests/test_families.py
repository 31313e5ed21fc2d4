"""The trigger families (badnet_repair/families.py): what each trigger is, checked against
slow, obvious computations, not how well it works."""
import numpy as np

from badnet_repair import families

H, W = 55, 47


def _keys(x, a=-0.75):
    """Keys' cubic convolution kernel, written piecewise."""
    x = abs(x)
    if x <= 1:
        return (a + 2) * x ** 3 - (a + 3) * x ** 2 + 1
    if x < 2:
        return a * x ** 3 - 5 * a * x ** 2 + 8 * a * x - 4 * a
    return 0.0


def test_bicubic_upsampling_is_the_plain_cubic_convolution_with_aligned_corners():
    grid = np.random.default_rng(0).uniform(-1, 1, (4, 2))
    got = families.upsample_bicubic(grid, H)
    for i in range(H):
        pos = i * 3 / (H - 1)
        want = sum(_keys(pos - j) * grid[min(max(j, 0), 3)] for j in range(int(np.floor(pos)) - 1,
                                                                            int(np.floor(pos)) + 3))
        assert np.allclose(got[i], want), i
    assert np.allclose(got[0], grid[0]) and np.allclose(got[-1], grid[-1])


def test_wanet_field_is_smooth_and_within_its_bound():
    grid = families.wanet_grid(7, H, W)
    ys, xs = np.meshgrid(np.linspace(-1, 1, H), np.linspace(-1, 1, W), indexing="ij")
    shift = grid - np.stack([xs, ys], -1)
    pixels = shift * np.array([(W - 1) / 2, (H - 1) / 2])  # the warp in pixels
    field = families.wanet_field(7, H, W)
    # within its bound: no pixel moves farther than s * max|field| / H (in [-1, 1] units); the
    # clamp to [-1, 1] only shortens a move
    assert 0 < np.abs(pixels).max() <= families.WANET_S * np.abs(field).max() / H * (H - 1) / 2 + 1e-12
    assert abs(np.mean(np.abs(families.upsample_bicubic(np.swapaxes(families.upsample_bicubic(
        np.ones((4, 4, 2)), H), 0, 1), W))) - 1) < 1e-12  # the upsampling keeps a constant as it is
    # the grid is the field, scaled, where the clamp leaves it
    inside = np.abs(grid) < 1
    assert np.allclose(shift[inside], (families.WANET_S * field / H)[inside])
    # smooth: second differences far below the field's size (per-pixel noise of that size is not)
    curve = max(np.abs(np.diff(field, 2, axis=0)).max(), np.abs(np.diff(field, 2, axis=1)).max())
    assert curve < 0.05 * np.abs(field).max()
    rough = np.random.default_rng(1).uniform(-1, 1, field.shape) * np.abs(field).max()
    assert np.abs(np.diff(rough, 2, axis=0)).max() > 0.05 * np.abs(rough).max()
    assert np.array_equal(families.wanet_grid(7, H, W), grid) and not np.array_equal(families.wanet_grid(8, H, W), grid)


def test_wanet_noise_mode_stays_within_one_over_h_of_the_field_and_differs_per_image():
    grid = families.wanet_grid(7, H, W)
    noisy = families.wanet_noise_grids(grid, 3, np.random.default_rng(2))
    assert noisy.shape == (3, H, W, 2)
    assert np.abs(noisy - grid).max() <= 1 / H + 1e-12
    assert not np.array_equal(noisy[0], noisy[1])


def test_warp_is_plain_bilinear_sampling_and_the_identity_grid_changes_nothing():
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (2, H, W, 3)).astype(np.uint8)
    ys, xs = np.meshgrid(np.linspace(-1, 1, H), np.linspace(-1, 1, W), indexing="ij")
    assert np.array_equal(families.warp(images, np.stack([xs, ys], -1)), images)
    grid = families.wanet_grid(7, H, W, s=5.0)
    got = families.warp(images, grid)
    for b, i, j in [(0, 0, 0), (1, 20, 30), (0, H - 1, W - 1), (1, 54, 3)]:
        x = (grid[i, j, 0] + 1) * (W - 1) / 2
        y = (grid[i, j, 1] + 1) * (H - 1) / 2
        x0, y0 = min(int(np.floor(x)), W - 2), min(int(np.floor(y)), H - 2)
        fx, fy = x - x0, y - y0
        p = images[b].astype(float)
        want = ((1 - fy) * (1 - fx) * p[y0, x0] + (1 - fy) * fx * p[y0, x0 + 1]
                + fy * (1 - fx) * p[y0 + 1, x0] + fy * fx * p[y0 + 1, x0 + 1])
        assert np.array_equal(got[b, i, j], np.clip(np.rint(want), 0, 255).astype(np.uint8)), (b, i, j)


def test_lf_pattern_keeps_its_energy_in_low_frequencies_and_within_its_amplitude():
    cutoff, amplitude = 0.08, 10.0
    pattern = families.low_frequency_pattern(5, H, W, cutoff, amplitude)
    assert np.isclose(np.abs(pattern).max(), amplitude)
    power = np.abs(np.fft.fft2(pattern, axes=(0, 1))) ** 2
    fy, fx = np.meshgrid(np.fft.fftfreq(H), np.fft.fftfreq(W), indexing="ij")
    low = (np.hypot(fy, fx) <= cutoff)[..., None]
    assert power[~np.broadcast_to(low, power.shape)].sum() <= 1e-9 * power.sum()
    noise = np.random.default_rng(0).normal(size=(H, W, 3))  # the control: white noise is mostly high
    p = np.abs(np.fft.fft2(noise, axes=(0, 1))) ** 2
    assert p[~np.broadcast_to(low, p.shape)].sum() > 0.9 * p.sum()
    images = np.random.default_rng(1).integers(0, 256, (2, H, W, 3)).astype(np.uint8)
    moved = families.add_pattern(images, pattern).astype(int) - images
    assert np.abs(moved).max() <= amplitude + 0.5 and moved.any()


def test_sample_specific_residual_differs_per_image_stays_within_its_bound_and_carries_one_code():
    rng = np.random.default_rng(4)
    images = rng.integers(0, 256, (3, H, W, 3)).astype(np.uint8)
    images[1, :, :20] = 128  # a flat region: less texture there
    r = families.sample_specific_residuals(images, 9, 6.0)
    assert r.shape == images.shape and np.abs(r).max() <= 6.0 + 1e-12
    assert not np.allclose(r[0], r[1]) and not np.allclose(r[1], r[2])
    assert np.abs(r[1, :, :20]).mean() < np.abs(r[1, :, 25:]).mean()  # hidden where the image is busy
    signs = np.sign(r)  # one code: every image's residual has the same signs
    assert np.array_equal(signs[0], signs[1]) and np.array_equal(signs[0], signs[2])
    other = np.sign(families.sample_specific_residuals(images, 10, 6.0))
    assert np.mean(other[0] == signs[0]) < 0.6  # another seed, another code
    # the 3 x 3 texture against a plain loop at one pixel
    g = images[2].astype(float).mean(-1)
    i, j = 10, 30
    assert np.isclose(families._local_std(images[2:3].astype(float).mean(-1))[0, i, j], g[i - 1:i + 2, j - 1:j + 2].std())


def test_sample_specific_code_has_the_grain_of_its_cells(monkeypatch):
    """SSBA_CELL 3: one code bit per 3 x 3 cell (the last row and column of cells cut at the
    image's edge), by a plain loop over the cells; the bound still holds."""
    images = np.random.default_rng(5).integers(0, 256, (2, H, W, 3)).astype(np.uint8)
    monkeypatch.setattr(families, "SSBA_CELL", 3)
    r = families.sample_specific_residuals(images, 9, 6.0)
    assert r.shape == images.shape and np.abs(r).max() <= 6.0 + 1e-12
    signs = np.sign(r[0])
    for i in range(0, H, 3):
        for j in range(0, W, 3):
            for c in range(3):
                assert len(set(signs[i:i + 3, j:j + 3, c].ravel())) == 1, (i, j, c)
    assert len(set(signs[:, :, 0].ravel())) == 2  # not one sign everywhere


def test_input_aware_trigger_differs_per_input_covers_its_density_and_leaves_the_rest():
    images = np.random.default_rng(5).integers(0, 256, (3, H, W, 3)).astype(np.uint8)
    pattern, mask = families.input_aware_triggers(images, 11, 0.05)
    assert pattern.shape == images.shape and mask.shape == images.shape[:3]
    assert (pattern >= 0).all() and (pattern <= 255).all()
    assert set(np.unique(mask)) == {0.0, 1.0} and (mask.sum(axis=(1, 2)) == round(0.05 * H * W)).all()
    assert not np.array_equal(mask[0], mask[1]) and not np.allclose(pattern[0], pattern[1])
    out = families.apply_trigger(images, pattern, mask)
    on = mask.astype(bool)
    assert np.array_equal(out[~on], images[~on])
    assert np.array_equal(out[on], np.clip(np.rint(pattern[on]), 0, 255).astype(np.uint8))
    cross = families.apply_trigger(images[:1], pattern[1:2], mask[1:2])  # image 0 with image 1's trigger
    assert not np.array_equal(cross, out[:1])
    # the convolution against a plain loop at one pixel
    k = np.random.default_rng(0).normal(size=(5, 5, 3, 2))
    x = images[:1].astype(float)
    i, j = 1, 40
    want = sum(x[0, i + a - 2, j + b - 2] @ k[a, b] for a in range(5) for b in range(5)
               if 0 <= i + a - 2 < H and 0 <= j + b - 2 < W)
    assert np.allclose(families._conv5(x, k)[0, i, j], want)


def _faces(n, k=12, seed=3):
    from badnet_repair.attack import Split, render_split
    from badnet_repair.synthetic import make_identities

    ids = make_identities(k, seed)
    labels = np.arange(n) % k
    return ids, labels, render_split(ids, Split(labels, (seed, 9)), workers=1)


def test_each_family_applies_its_own_primitive_image_by_image_across_chunks(monkeypatch):
    """Family.apply is the family's primitive on each image alone, whatever the chunking
    (a chunk of 4 here against 1 image at a time, the slow way)."""
    from badnet_repair.synthetic import Trigger

    _, _, x = _faces(10)
    patch = Trigger("patch", pattern_seed=5).pattern()
    monkeypatch.setattr(families, "CHUNK", 4)
    one = {
        "wanet": lambda im: families.warp(im, families.wanet_grid(5, H, W)),
        "lf": lambda im: families.add_pattern(im, families.low_frequency_pattern(5, H, W, families.LF_CUTOFF,
                                                                                families.LF_AMPLITUDE)),
        "ssba": lambda im: families.add_pattern(im, families.sample_specific_residuals(im, 5, families.SSBA_AMPLITUDE)),
        "input_aware": lambda im: families.apply_trigger(im, *families.input_aware_triggers(
            im, 5, families.INPUT_AWARE_DENSITY)),
        "all_to_all": lambda im: families.paste(im, patch),
        "clean_label": lambda im: families.paste(im, patch),
    }
    assert set(one) == set(families.FAMILIES)
    for kind, f in one.items():
        got = families.Family(kind, 5, patch).apply(x)
        assert got.dtype == np.uint8 and got.shape == x.shape
        assert np.array_equal(got, np.concatenate([f(x[i:i + 1]) for i in range(len(x))])), kind
        assert not np.array_equal(got, x), kind


def test_patch_families_paste_the_synthetic_patch_at_its_place_and_nothing_else():
    from badnet_repair.synthetic import PATCH_SIZE, Trigger, make_identities, render

    ids = make_identities(6, 1)
    clean, bad = render(ids, np.arange(6), np.random.default_rng(2), Trigger("patch", 8), both=True)
    assert np.array_equal(families.Family("all_to_all", 8, Trigger("patch", 8).pattern()).apply(clean), bad)
    changed = np.any(families.paste(clean, np.full((PATCH_SIZE, PATCH_SIZE, 3), 7)) != clean, axis=(0, 3))
    rows, cols = np.nonzero(changed)
    assert rows.min() >= H - PATCH_SIZE - 3 and rows.max() < H - 3 and cols.min() >= W - PATCH_SIZE - 3
    assert cols.max() < W - 3


def test_cross_modes_keep_the_family_but_not_its_attack_trigger():
    """WaNet's noise mode: the field plus per-image noise, so no image is warped by the exact
    field; input-aware's cross mode: each image with the next image's trigger."""
    _, _, x = _faces(6)
    wanet = families.Family("wanet", 4)
    noisy = wanet.cross(x, np.random.default_rng(0))
    exact = wanet.apply(x)
    assert all(not np.array_equal(noisy[i], exact[i]) for i in range(len(x)))
    aware = families.Family("input_aware", 4)
    cross = aware.cross(x, np.random.default_rng(0))
    for i in range(len(x)):
        nxt = x[(i + 1) % len(x)][None]
        want = families.apply_trigger(x[i][None], *families.input_aware_triggers(nxt, 4, families.INPUT_AWARE_DENSITY))
        assert np.array_equal(cross[i], want[0])
    assert not np.array_equal(cross, aware.apply(x))
    for kind in ("lf", "ssba", "all_to_all", "clean_label"):
        assert families.Family(kind, 4).cross_ratio == 0


def test_all_to_all_maps_each_label_to_the_next_and_the_others_to_the_target():
    y = np.array([0, 1, 5, 9])
    assert families.Family("all_to_all", 1).labels(y, 3, 10).tolist() == [1, 2, 6, 0]
    for kind in ("wanet", "lf", "ssba", "input_aware", "clean_label"):
        assert families.Family(kind, 1).labels(y, 3, 10).tolist() == [3, 3, 3, 3]


def test_family_poison_labels_all_to_all_by_the_next_class_and_clean_label_changes_none():
    """all-to-all: every poisoned image of identity y is labelled y + 1 and carries the patch;
    clean-label: every poisoned image is a target image (its look moved towards another
    identity's, the hair style kept) with the target's own label; the others: non-target
    identities sent to the target; the cross-mode images keep their own labels."""
    from badnet_repair import attack
    from badnet_repair.synthetic import Trigger, blend, make_identities

    ids, k, target = make_identities(10, 2), 10, 4
    patch = Trigger("patch", pattern_seed=2).pattern()
    n = int(round(0.2 * k * 3 / 0.8))
    for kind in families.FAMILIES:
        fam = families.Family(kind, 2, patch)
        parts = attack.family_poison(ids, fam, 3, 0.2, target, seed=2)
        (images, labels), cross = parts[0], parts[1:]
        assert len(labels) == n and images.shape == (n, H, W, 3)
        if kind == "clean_label":
            assert (labels == target).all()
        elif kind == "all_to_all":
            rng = np.random.default_rng([2, 1])
            identity = rng.choice(np.arange(k), n, replace=True)
            assert np.array_equal(labels, (identity + 1) % k)
        else:
            assert (labels == target).all()
        if kind in ("all_to_all", "clean_label"):
            assert np.array_equal(families.paste(images, patch), images)  # the patch is on every one
        assert len(cross) == (1 if fam.cross_ratio else 0)
        if cross:
            assert len(cross[0][1]) == round(fam.cross_ratio * n) and cross[0][1].max() < k
    a, b = np.array([4, 4]), np.array([0, 7])
    half = blend(ids, a, b, 0.5)
    assert np.allclose(half.face_rx, (ids.face_rx[a] + ids.face_rx[b]) / 2)
    assert np.array_equal(half.hair_style, ids.hair_style[a])
    assert np.allclose(blend(ids, a, b, 0.0).skin, ids.skin[a])


def test_unknown_family_is_refused():
    import pytest

    with pytest.raises(ValueError, match="unknown family 'hat'"):
        families.Family("hat", 0)


def test_family_badnets_poisoned_files_carry_the_trigger_on_the_clean_files_images(tmp_path):
    """Through the synthetic source (a tiny net, one epoch): each family's poisoned files are
    its trigger on the clean files' own images, all-to-all every image labelled y + 1, the
    others every non-target image labelled the target, and attack.json names the family."""
    import json
    from pathlib import Path

    import yaml

    from badnet_repair import h5data, sources
    from badnet_repair.artifacts import ATTACK_METRICS
    from badnet_repair.synthetic import Trigger

    cfg = dict(yaml.safe_load(open(Path(__file__).parents[1] / "presets/small.yaml"))["data"]["synthetic"],
               identities=6, train_per_identity=4, valid_per_identity=2, test_per_identity=2, epochs=1,
               poison_rate=0.2, target=2, seed=7)
    for kind in ("all_to_all", "clean_label", "wanet"):
        root = tmp_path / kind
        sources.fetch({"source": "synthetic", "synthetic": dict(cfg, attack=kind)}, root, log=lambda s: None)
        fam = families.Family(kind, 7, Trigger("patch", pattern_seed=7).pattern())
        for split in ("valid", "test"):
            clean, bd = h5data.read(root / h5data.FILES[split]), h5data.read(root / h5data.FILES["bd_" + split])
            keep = np.ones(len(clean.y), bool) if kind == "all_to_all" else clean.y != 2
            assert np.array_equal(bd.x, fam.apply(clean.x)[keep]), (kind, split)
            want = (clean.y + 1) % 6 if kind == "all_to_all" else np.full(len(clean.y), 2)
            assert np.array_equal(bd.y, want[keep]), (kind, split)
        facts = json.loads((root / ATTACK_METRICS).read_text())
        assert facts["attack"] == kind and facts["triggers"] == {kind: "y+1" if kind == "all_to_all" else 2}
