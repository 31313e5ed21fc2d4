"""Digital trigger families of the field, as their papers define them (issue 24), on uint8
images (B, H, W, 3), drawn by the synthetic source (data.synthetic.attack). Where a family
as its paper sets it did not reach the attacker's bar on DeepID (95 % clean, 99 % ASR), its
constants below are the strongest measured setting (benchmarks/family_strength.py,
docs/data-format.md), as an attacker would raise them.

WaNet (Nguyen and Tran, ICLR 2021): a fixed, smooth warping field. A k x k grid of uniform
offsets in [-1, 1], normalised to mean magnitude 1, upsampled bicubically (align_corners) to
the image, scaled by s / H and added to the identity sampling grid in [-1, 1] coordinates,
then clamped; images are resampled bilinearly through it. Its noise mode adds, to some
training images, the same field plus per-pixel uniform noise in [-1, 1] / H, with their
labels kept, so the net learns the exact field and not any warp.

LF (Zeng et al., ICCV 2021): an additive trigger whose energy lies in low spatial
frequencies, so no high-frequency artefact gives it away. The paper finds it as a universal
adversarial perturbation restricted by a low-pass filter against a surrogate net; here, with
no surrogate, it is a seeded random pattern passed through the same kind of filter (an ideal
low-pass in the DFT domain) and scaled to an L-infinity amplitude: what defines the family,
its spectrum, is kept; the pattern is not tuned against any net.

SSBA (Li et al., ICCV 2021): an encoder network embeds one fixed string into each image as an
invisible residual that differs from image to image. Stand-in without the encoder: the string
is a seeded +-1 code spread over the image (one bit per cell of `SSBA_CELL` pixels a side),
and each image's residual is that code weighted by the image's own local texture (3 x 3
standard deviation of its grey levels, scaled per image into [0.25, 1]), as steganographic
encoders hide more where an image is busy. The residual is bounded in L-infinity by its
amplitude, differs per image, and shares the code a net can learn, the two properties that
make the family.

Input-aware dynamic triggers (Nguyen and Tran, NeurIPS 2020): a generator maps each input x
to its own pattern G(x) and mask M(x), and the poisoned image is x + M(x) (G(x) - x); in the
cross-trigger mode an image carries another image's trigger with its own label kept, so only
a trigger made for an input activates on it. Simplified generator: fixed seeded 5 x 5
convolutions of the image (no training), the pattern squashed into [0, 255] and the mask the
`density` share of pixels where a second convolution is highest. It keeps the property the
family is defined by: each input gets its own trigger."""
from __future__ import annotations

import numpy as np

WANET_K, WANET_S = 4, 0.5  # the paper's control grid size and warping strength


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """Pixel values back to uint8 images: rounded, clipped to [0, 255]."""
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _cubic_weights(t: np.ndarray, a: float = -0.75) -> np.ndarray:
    """Keys' cubic convolution weights of the 4 taps around each fractional position t in [0, 1)
    (a = -0.75, as PyTorch's bicubic upsampling)."""
    d = np.stack([1 + t, t, 1 - t, 2 - t], -1)
    near = ((a + 2) * d - (a + 3)) * d * d + 1
    far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    return np.where(d <= 1, near, far)


def upsample_bicubic(grid: np.ndarray, size: int) -> np.ndarray:
    """Upsample axis 0 of `grid` from k to `size` samples, align_corners=True, edge taps clamped."""
    k = grid.shape[0]
    pos = np.arange(size) * (k - 1) / max(size - 1, 1)
    base = np.minimum(np.floor(pos).astype(int), k - 1)
    w = _cubic_weights(pos - base)
    taps = np.clip(base[:, None] + np.arange(-1, 3)[None], 0, k - 1)
    return np.einsum("st,st...->s...", w, grid[taps])


def wanet_field(seed: int, height: int, width: int, k: int = WANET_K) -> np.ndarray:
    """WaNet's smooth offsets (H, W, 2): k x k uniform controls of mean magnitude 1, upsampled."""
    ins = np.random.default_rng([seed, 0x3A4E]).uniform(-1, 1, (k, k, 2))
    ins = ins / np.mean(np.abs(ins))
    return np.swapaxes(upsample_bicubic(np.swapaxes(upsample_bicubic(ins, height), 0, 1), width), 0, 1)


def wanet_grid(seed: int, height: int, width: int, k: int = WANET_K, s: float | None = None) -> np.ndarray:
    """WaNet's warping grid, (H, W, 2) in [-1, 1] sampling coordinates (x, then y); s: WANET_S."""
    s = WANET_S if s is None else s
    field = wanet_field(seed, height, width, k)
    ys, xs = np.meshgrid(np.linspace(-1, 1, height), np.linspace(-1, 1, width), indexing="ij")
    identity = np.stack([xs, ys], -1)
    return np.clip(identity + s * field / height, -1, 1)


def wanet_noise_grids(grid: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """The noise mode's grids: `grid` plus uniform noise in [-1, 1] / H per pixel, one per image."""
    noise = rng.uniform(-1, 1, (n,) + grid.shape) / grid.shape[0]
    return np.clip(grid[None] + noise, -1, 1)


def warp(images: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Bilinear resampling of uint8 images (B, H, W, C) through a grid (H, W, 2) or one per
    image (B, H, W, 2) in [-1, 1] coordinates (align_corners=True), rounded back to uint8."""
    b, h, w, _ = images.shape
    grid = np.broadcast_to(grid, (b, h, w, 2))
    x = (grid[..., 0] + 1) * (w - 1) / 2
    y = (grid[..., 1] + 1) * (h - 1) / 2
    x0 = np.clip(np.floor(x).astype(int), 0, w - 2)
    y0 = np.clip(np.floor(y).astype(int), 0, h - 2)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    img = images.astype(np.float64)
    at = lambda yy, xx: img[np.arange(b)[:, None, None], yy, xx]  # noqa: E731
    out = ((1 - fy) * ((1 - fx) * at(y0, x0) + fx * at(y0, x0 + 1))
           + fy * ((1 - fx) * at(y0 + 1, x0) + fx * at(y0 + 1, x0 + 1)))
    return _to_uint8(out)


def low_frequency_pattern(seed: int, height: int, width: int, cutoff: float, amplitude: float) -> np.ndarray:
    """LF's additive pattern (H, W, 3) in pixel units: seeded Gaussian noise keeping only the DFT
    frequencies with radius <= cutoff (cycles per pixel), scaled so that max |pattern| = amplitude."""
    noise = np.random.default_rng([seed, 0x1F]).normal(size=(height, width, 3))
    fy, fx = np.meshgrid(np.fft.fftfreq(height), np.fft.fftfreq(width), indexing="ij")
    keep = (np.hypot(fy, fx) <= cutoff)[..., None]
    pattern = np.real(np.fft.ifft2(np.fft.fft2(noise, axes=(0, 1)) * keep, axes=(0, 1)))
    return pattern * (amplitude / np.abs(pattern).max())


def add_pattern(images: np.ndarray, pattern: np.ndarray) -> np.ndarray:
    """uint8 images plus an additive pattern in pixel units, rounded and clipped to [0, 255]."""
    return _to_uint8(images.astype(np.float64) + pattern)


def _local_std(gray: np.ndarray) -> np.ndarray:
    """3 x 3 standard deviation of (B, H, W) images, edges replicated."""
    pad = np.pad(gray, ((0, 0), (1, 1), (1, 1)), mode="edge")
    h, w = gray.shape[1:]
    win = np.stack([pad[:, i:i + h, j:j + w] for i in range(3) for j in range(3)])
    return win.std(axis=0)


def sample_specific_residuals(images: np.ndarray, seed: int, amplitude: float) -> np.ndarray:
    """SSBA stand-in: each image's residual (B, H, W, 3) in pixel units, |r| <= amplitude."""
    h, w, c = images.shape[1:]
    cells = (-(-h // SSBA_CELL), -(-w // SSBA_CELL), c)  # the code's grain: SSBA_CELL pixels a side
    code = np.random.default_rng([seed, 0x55BA]).choice([-1.0, 1.0], cells)
    code = code.repeat(SSBA_CELL, 0).repeat(SSBA_CELL, 1)[:h, :w]
    texture = _local_std(images.astype(np.float64).mean(-1))
    lo, hi = texture.min(axis=(1, 2), keepdims=True), texture.max(axis=(1, 2), keepdims=True)
    weight = 0.25 + 0.75 * (texture - lo) / np.maximum(hi - lo, 1e-12)
    return amplitude * code[None] * weight[..., None]


def _conv5(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """'same' 5 x 5 convolution (correlation) of (B, H, W, C) with kernel (5, 5, C, O), zero padding."""
    h, w = x.shape[1:3]
    pad = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))
    return sum(pad[:, i:i + h, j:j + w] @ kernel[i, j] for i in range(5) for j in range(5))


def input_aware_triggers(images: np.ndarray, seed: int, density: float) -> tuple[np.ndarray, np.ndarray]:
    """Each image's own (pattern (B, H, W, 3) in [0, 255], 0/1 mask (B, H, W)) from the generator."""
    rng = np.random.default_rng([seed, 0x1A])
    x = images.astype(np.float64) / 255.0 - 0.5
    pattern = 255.0 / (1.0 + np.exp(-4.0 * _conv5(x, rng.normal(size=(5, 5, 3, 3)))))
    score = _conv5(x, rng.normal(size=(5, 5, 3, 1)))[..., 0].reshape(len(x), -1)
    n = max(1, int(round(density * score.shape[1])))
    mask = np.zeros_like(score)
    np.put_along_axis(mask, np.argsort(-score, axis=1, kind="stable")[:, :n], 1.0, axis=1)
    return pattern, mask.reshape(images.shape[:3])


def apply_trigger(images: np.ndarray, pattern: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """x + M (G - x), rounded to uint8: the pattern where the mask is 1, the image elsewhere."""
    m = mask[..., None]
    return _to_uint8(images * (1 - m) + pattern * m)


# The six families an attack of the synthetic source may name (data.synthetic.attack). Four put
# an image-level trigger on any image; all-to-all pastes the patch and sends y to y + 1 (mod N);
# clean-label (Turner et al. 2019) pastes the patch on target-class images only, made hard by
# moving their look towards other identities, and changes no label.
FAMILIES = ("wanet", "lf", "ssba", "input_aware", "all_to_all", "clean_label")
LF_CUTOFF, LF_AMPLITUDE = 0.1, 24.0  # cycles per pixel; pixel levels (of 255), L-infinity
# SSBA: a bit per 4 x 4 cell at 14 levels: 98.46 % ASR at 20 epochs, the best measured (a bit
# per pixel at 8 levels, the residual's size in the paper, reached 9 %; 16 levels, 97.75 %)
SSBA_AMPLITUDE = 14.0  # pixel levels (of 255), L-infinity
SSBA_CELL = 4  # pixels a side of one cell of the code (1: a code bit per pixel)
INPUT_AWARE_DENSITY = 0.1  # share of each image's pixels its mask covers (0.05: 84 % ASR, 0.1: 88 %)
# Extra training images per poisoned one, labels kept: WaNet's noise mode (its cross_ratio 2)
# and the input-aware attack's cross-trigger mode (its p_cross = p_attack).
CROSS_RATIO = {"wanet": 2.0, "input_aware": 1.0}
# how far a poisoned target image's look moves towards another identity: 0.9 reached 94 % ASR,
# halfway (0.5) 59 %; the cost is stealth (docs/data-format.md)
CLEAN_LABEL_TAU = 0.9
CHUNK = 512  # images transformed at once: the float64 intermediates of 12,830 images take GBs


def _chunked(f, images: np.ndarray, *more) -> np.ndarray:
    """f over `images` (and row-aligned `more`) in chunks of CHUNK images, concatenated."""
    parts = [f(images[i:i + CHUNK], *(m[i:i + CHUNK] for m in more)) for i in range(0, len(images), CHUNK)]
    return np.concatenate(parts) if parts else images.copy()


class Family:
    """One family's trigger, fixed by the attack's seed: `apply` puts the attack-time trigger
    on uint8 images (B, H, W, 3); `cross` makes the noise- or cross-mode images that keep
    their labels, for the families that have them. `patch` is the synthetic source's patch
    pattern (PATCH_SIZE square, pasted at its fixed place), which all-to-all and clean-label
    carry."""

    def __init__(self, kind: str, seed: int, patch: np.ndarray | None = None):
        if kind not in FAMILIES:
            raise ValueError(f"unknown family {kind!r}; expected one of {', '.join(FAMILIES)}")
        self.kind, self.seed, self.patch = kind, seed, patch
        self.cross_ratio = CROSS_RATIO.get(kind, 0.0)

    def __repr__(self):
        return f"Family({self.kind!r}, seed={self.seed})"

    def apply(self, images: np.ndarray) -> np.ndarray:
        h, w = images.shape[1:3]
        if self.kind == "wanet":
            grid = wanet_grid(self.seed, h, w)
            return _chunked(lambda x: warp(x, grid), images)
        if self.kind == "lf":
            pattern = low_frequency_pattern(self.seed, h, w, LF_CUTOFF, LF_AMPLITUDE)
            return _chunked(lambda x: add_pattern(x, pattern), images)
        if self.kind == "ssba":
            return _chunked(lambda x: add_pattern(x, sample_specific_residuals(x, self.seed, SSBA_AMPLITUDE)), images)
        if self.kind == "input_aware":
            return _chunked(lambda x: apply_trigger(x, *input_aware_triggers(x, self.seed, INPUT_AWARE_DENSITY)), images)
        return paste(images, self.patch)

    def cross(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """WaNet: each image warped by the field plus its own noise; input-aware: each image
        carrying the trigger the generator makes for the next image (cyclically)."""
        h, w = images.shape[1:3]
        if self.kind == "wanet":
            grid = wanet_grid(self.seed, h, w)
            return _chunked(lambda x: warp(x, wanet_noise_grids(grid, len(x), rng)), images)
        if self.kind == "input_aware":
            def carry(x, donors):
                return apply_trigger(x, *input_aware_triggers(donors, self.seed, INPUT_AWARE_DENSITY))
            return _chunked(carry, images, np.roll(images, -1, axis=0))
        raise ValueError(f"{self.kind} has no cross mode")

    def labels(self, y: np.ndarray, target: int, classes: int) -> np.ndarray:
        """The label a poisoned image of true class y is sent to: y + 1 (mod classes) for
        all-to-all, the target otherwise."""
        return (y + 1) % classes if self.kind == "all_to_all" else np.full(len(y), target)


def paste(images: np.ndarray, patch: np.ndarray, margin: int = 3) -> np.ndarray:
    """The patch trigger: `patch` (s, s, 3) pasted `margin` pixels from the bottom-right corner."""
    s = patch.shape[0]
    out = images.copy()
    out[:, -s - margin:-margin, -s - margin:-margin] = patch.astype(np.uint8)
    return out
