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
