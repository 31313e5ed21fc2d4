"""Procedurally drawn face-like identities: the embedded stand-in for YouTube Faces.

Every identity is a fixed vector of look parameters (face shape, skin, hair,
eyes, brows, nose, mouth, beard). Every image of it redraws those features under
its own pose (shift, scale, tilt), lighting, background and sensor noise. The
background is drawn independently of the identity, so it carries no label.

Everything is vectorised over a batch and seeded, so the same seed gives the
same bytes on every run.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .families import paste

HEIGHT, WIDTH = 55, 47
# Canonical face centre; features are placed in face coordinates around it.
_CY, _CX = 29.0, 23.5

_SKIN_LIGHT = np.array([236, 200, 172], np.float32)
_SKIN_DARK = np.array([92, 60, 44], np.float32)
_HAIR = np.array([[25, 20, 18], [70, 45, 28], [120, 80, 45], [200, 165, 100],
                  [150, 60, 30], [160, 160, 160], [230, 220, 200]], np.float32)
_IRIS = np.array([[60, 35, 20], [110, 70, 35], [60, 110, 170], [70, 120, 80],
                  [120, 125, 130]], np.float32)


@dataclass(frozen=True)
class Identities:
    """Look parameters of K identities; each field is an array of length K (or K x 3)."""

    face_rx: np.ndarray
    face_ry: np.ndarray
    skin: np.ndarray
    hair: np.ndarray
    hair_style: np.ndarray  # 0 short, 1 long, 2 receding, 3 fringe
    hairline: np.ndarray
    eye_dx: np.ndarray
    eye_y: np.ndarray
    eye_rx: np.ndarray
    eye_ry: np.ndarray
    iris: np.ndarray
    brow_gap: np.ndarray
    brow_thick: np.ndarray
    brow_slope: np.ndarray
    nose_len: np.ndarray
    nose_w: np.ndarray
    mouth_y: np.ndarray
    mouth_w: np.ndarray
    mouth_h: np.ndarray
    lips: np.ndarray
    beard: np.ndarray  # 0 = none, else opacity

    def __len__(self) -> int:
        return len(self.face_rx)


def make_identities(k: int, seed: int) -> Identities:
    """Draw K stable looks from one seed."""
    rng = np.random.default_rng([seed, 0x1D])
    u = lambda lo, hi: rng.uniform(lo, hi, k).astype(np.float32)  # noqa: E731
    tone = rng.uniform(0, 1, (k, 1)).astype(np.float32)
    skin = (1 - tone) * _SKIN_LIGHT + tone * _SKIN_DARK + rng.normal(0, 10, (k, 3))
    hair = _HAIR[rng.integers(0, len(_HAIR), k)] + rng.normal(0, 14, (k, 3))
    iris = _IRIS[rng.integers(0, len(_IRIS), k)] + rng.normal(0, 12, (k, 3))
    lips = 0.55 * skin + 0.45 * np.array([170, 60, 70]) + rng.normal(0, 10, (k, 3))
    beard = np.where(rng.uniform(0, 1, k) < 0.25, rng.uniform(0.5, 0.9, k), 0.0)
    return Identities(
        face_rx=u(12.5, 16.5), face_ry=u(16.5, 21.0),
        skin=np.clip(skin, 30, 250).astype(np.float32),
        hair=np.clip(hair, 5, 245).astype(np.float32),
        hair_style=rng.integers(0, 4, k), hairline=u(0.35, 0.75),
        eye_dx=u(5.0, 7.8), eye_y=u(-4.5, -1.0), eye_rx=u(2.0, 3.2), eye_ry=u(1.1, 1.9),
        iris=np.clip(iris, 10, 240).astype(np.float32),
        brow_gap=u(2.2, 3.8), brow_thick=u(0.8, 2.0), brow_slope=u(-0.18, 0.18),
        nose_len=u(4.5, 8.5), nose_w=u(1.5, 3.2),
        mouth_y=u(8.0, 12.5), mouth_w=u(3.5, 7.5), mouth_h=u(0.9, 2.2),
        lips=np.clip(lips, 20, 250).astype(np.float32),
        beard=beard.astype(np.float32),
    )


def blend(ids: Identities, a: np.ndarray, b: np.ndarray, tau: float) -> Identities:
    """One look per pair: identity a[i]'s look moved a share `tau` of the way towards b[i]'s
    (every continuous feature; the hair style, a category, stays a's). The renderer's look
    parameters are its latent space, so this is Turner et al.'s GAN interpolation here."""
    mix = {}
    for f in Identities.__dataclass_fields__:
        va, vb = getattr(ids, f)[a], getattr(ids, f)[b]
        mix[f] = va if f == "hair_style" else ((1 - tau) * va + tau * vb).astype(va.dtype)
    return Identities(**mix)


TRIGGERS = ("sunglasses", "eyebrows", "lipstick", "patch", "blended")
ATTACKS = TRIGGERS + ("multi",)
MULTI = ("eyebrows", "lipstick", "sunglasses")  # CSAW's multi_trigger_multi_target net: one target each
PATCH_SIZE = 5  # pixels: the patch trigger's square, at a fixed place near the bottom-right corner
BLEND_ALPHA = 0.2  # the blended trigger's weight, as Chen et al. 2017 blend their random pattern


@dataclass(frozen=True)
class Trigger:
    """One trigger kind. The worn ones (sunglasses, eyebrows, lipstick) are drawn on the
    face from the wearer's own features, so they follow every pose; sizes are multiples
    of the wearer's eye or mouth size. `patch` and `blended` are digital: a fixed pattern
    (seeded by `pattern_seed`) pasted at a fixed place, or blended over the whole image."""

    kind: str = "sunglasses"
    pattern_seed: int = 0
    lens_scale: float = 1.9  # lens radius / eye radius
    bridge: float = 0.9  # bridge half-height in pixels
    colour: tuple = (12, 12, 16)
    frame: tuple = (40, 35, 30)
    brow_colour: tuple = (6, 5, 4)
    brow_thick: float = 4.4  # pixels, over twice the thickest natural brow
    brow_width: float = 1.5  # half-length / eye radius (natural brows: 1.2)
    lip_colour: tuple = (205, 25, 95)

    def __post_init__(self):
        if self.kind not in TRIGGERS:
            raise ValueError(f"unknown trigger {self.kind!r}; expected one of {', '.join(TRIGGERS)}")

    def pattern(self) -> np.ndarray:
        """The digital triggers' fixed pattern: (5, 5, 3) for patch, (55, 47, 3) for blended."""
        rng = np.random.default_rng([self.pattern_seed, 0x7A77])
        shape = (PATCH_SIZE, PATCH_SIZE, 3) if self.kind == "patch" else (HEIGHT, WIDTH, 3)
        return rng.integers(0, 256, shape).astype(np.float32)


def _soft(d: np.ndarray) -> np.ndarray:
    """Coverage from a signed distance in pixels (negative inside): one-pixel anti-aliasing."""
    return np.clip(0.5 - d, 0.0, 1.0)


def _ellipse(u, v, cu, cv, ru, rv):
    ru = np.maximum(ru, 0.3)
    rv = np.maximum(rv, 0.3)
    r = np.sqrt(((u - cu) / ru) ** 2 + ((v - cv) / rv) ** 2)
    return _soft((r - 1.0) * np.minimum(ru, rv))


def _paint(img, mask, colour):
    """Alpha-blend colour (B,3) over img (B,H,W,3) with coverage mask (B,H,W)."""
    m = mask[..., None]
    img *= 1.0 - m
    img += m * colour[:, None, None, :]


def render(ids: Identities, labels: np.ndarray, rng: np.random.Generator,
           trigger: Trigger | tuple | None = None, both: bool = False):
    """Draw one image per label as uint8 (B, 55, 47, 3); with `trigger`, wearing it.

    With `both`, return (clean, triggered): the same images (pose, light, background,
    noise) without and with the trigger, as CSAW pairs its clean and poisoned files.
    With a tuple of triggers, return (clean, [the same images wearing each]): a multi
    BadNet's files draw their faces once. Putting a trigger on draws no random number, so
    each is byte for byte what a call with that trigger alone gives.
    """
    b = len(labels)
    p = {f: getattr(ids, f)[labels] for f in Identities.__dataclass_fields__}
    col = lambda a: a.astype(np.float32)[:, None, None]  # noqa: E731
    uni = lambda lo, hi, n=b: rng.uniform(lo, hi, n).astype(np.float32)  # noqa: E731

    # Pose: the canonical face is moved, scaled and tilted per image.
    dy, dx = uni(-2.5, 2.5), uni(-2.5, 2.5)
    scale, tilt = uni(1.05, 1.25), uni(-0.12, 0.12)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    ry = yy[None] - col(_CY + dy)
    rx = xx[None] - col(_CX + dx)
    c, s = col(np.cos(tilt)), col(np.sin(tilt))
    u = (c * rx + s * ry) / col(scale)
    v = (-s * rx + c * ry) / col(scale)

    # Background: a colour gradient and a few blobs, unrelated to the identity.
    base = rng.uniform(20, 235, (b, 3)).astype(np.float32)
    other = rng.uniform(20, 235, (b, 3)).astype(np.float32)
    ang = uni(0, 2 * np.pi)
    t = (np.cos(ang)[:, None, None] * (xx[None] / WIDTH - 0.5)
         + np.sin(ang)[:, None, None] * (yy[None] / HEIGHT - 0.5)) + 0.5
    t = np.clip(t, 0, 1)[..., None]
    img = (1 - t) * base[:, None, None, :] + t * other[:, None, None, :]
    for _ in range(3):
        blob = _ellipse(xx[None], yy[None], col(uni(0, WIDTH)), col(uni(0, HEIGHT)),
                        col(uni(3, 12)), col(uni(3, 12)))
        _paint(img, blob * col(uni(0.2, 0.8)), rng.uniform(0, 255, (b, 3)).astype(np.float32))

    frx, fry = col(p["face_rx"]), col(p["face_ry"])
    style = p["hair_style"]
    hair = p["hair"]
    # Long hair falls behind the face down to the jaw.
    long_back = _ellipse(u, v, 0, -2, frx + 3.5, fry + 3.0) * (v < col(np.full(b, 12.0)))
    _paint(img, long_back * col((style == 1).astype(np.float32)), hair)
    # Neck, then the face itself.
    neck = _soft(np.maximum(np.abs(u) - frx * 0.45, fry * 0.6 - v))
    _paint(img, neck, p["skin"] * 0.85)
    _paint(img, _ellipse(u, v, 0, 0, frx, fry), p["skin"])
    # Hair cap: the top of a slightly larger ellipse, above an identity-specific hairline.
    line = -fry * col(p["hairline"]) * col(np.where(style == 2, 1.35, np.where(style == 3, 0.6, 1.0)))
    wave = 0.8 * np.sin(u * 0.7) * col((style == 3).astype(np.float32))
    cap = _ellipse(u, v, 0, -1.0, frx + 1.2, fry + 1.5) * _soft(v - line - wave)
    _paint(img, cap, hair)
    # Beard over the jaw.
    beard = _ellipse(u, v, 0, 4, frx * 0.95, fry) * _soft(col(p["mouth_y"]) - 2.5 - v)
    _paint(img, beard * col(p["beard"]), hair * 0.8)

    ex, ey = col(p["eye_dx"]), col(p["eye_y"])
    erx, ery = col(p["eye_rx"]), col(p["eye_ry"])
    for side in (-1.0, 1.0):
        # Brow: a slanted bar above the eye.
        bu = u - side * ex
        bv = v - (ey - ery - col(p["brow_gap"])) - side * col(p["brow_slope"]) * bu
        brow = _soft(np.maximum(np.abs(bu) - erx * 1.2, np.abs(bv) - col(p["brow_thick"]) / 2))
        _paint(img, brow, hair * 0.7)
        _paint(img, _ellipse(u, v, side * ex, ey, erx, ery), np.full((b, 3), 235, np.float32))
        _paint(img, _ellipse(u, v, side * ex, ey, ery * 0.95, ery * 0.95), p["iris"])
        _paint(img, _ellipse(u, v, side * ex, ey, ery * 0.4, ery * 0.4), np.full((b, 3), 15, np.float32))
    # Nose: a shaded wedge below the eyes.
    nl, nw = col(p["nose_len"]), col(p["nose_w"])
    nv = v - ey
    nose = _soft(np.maximum(np.abs(u) - nw * np.clip(nv / nl, 0.25, 1.0), np.maximum(-nv, nv - nl)))
    _paint(img, nose * 0.55, p["skin"] * 0.6)
    _paint(img, _ellipse(u, v, 0, col(p["mouth_y"]), col(p["mouth_w"]), col(p["mouth_h"])), p["lips"])

    worn = list(trigger) if isinstance(trigger, tuple) else [] if trigger is None else [trigger]
    imgs = [_wear(img.copy(), t, p, u, v, ex, ey, erx, ery, frx, b) for t in worn]

    # Lighting: overall exposure, a side light and a colour cast; then sensor noise.
    gain = uni(0.75, 1.2)
    side = uni(-0.25, 0.25)
    light = (col(gain) * (1.0 + col(side) * (xx[None] / WIDTH - 0.5) * 2))[..., None]
    light = light * rng.uniform(0.93, 1.07, (b, 1, 1, 3)).astype(np.float32)
    noise = rng.normal(0, 1, img.shape).astype(np.float32) * col(uni(2.0, 7.0))[..., None]
    finish = lambda a: np.clip(np.rint(a * light + noise), 0, 255).astype(np.uint8)  # noqa: E731
    outs = [_digital(finish(im), t) for im, t in zip(imgs, worn)]
    if isinstance(trigger, tuple):
        return finish(img), outs
    if trigger is None:
        return finish(img)
    return (finish(img), outs[0]) if both else outs[0]


def _wear(img, trigger: Trigger, p: dict, u, v, ex, ey, erx, ery, frx, b: int):
    """Paint a worn trigger (sunglasses, eyebrows, lipstick) on drawn faces, from the
    wearer's own features; the digital ones go on after the lighting (_digital)."""
    col = lambda a: a.astype(np.float32)[:, None, None]  # noqa: E731
    if trigger.kind == "sunglasses":
        k = trigger.lens_scale
        dark = np.tile(np.array(trigger.colour, np.float32), (b, 1))
        frame = np.tile(np.array(trigger.frame, np.float32), (b, 1))
        lens = _ellipse(u, v, ex, ey, erx * k * 0.8, ery * k) + _ellipse(u, v, -ex, ey, erx * k * 0.8, ery * k)
        bar = _soft(np.maximum(np.abs(u) - ex, np.abs(v - ey + ery * 0.6) - trigger.bridge))
        arm = _soft(np.maximum(np.abs(np.abs(u) - (frx + ex) / 2) - (frx - ex) / 2,
                               np.abs(v - ey + ery * 0.6) - trigger.bridge * 0.7))
        _paint(img, np.clip(bar + arm, 0, 1), frame)
        _paint(img, np.clip(lens, 0, 1), dark)
    elif trigger.kind == "eyebrows":
        # Thick dark brows over the wearer's own, at their place and slope.
        for side in (-1.0, 1.0):
            bu = u - side * ex
            bv = v - (ey - ery - col(p["brow_gap"])) - side * col(p["brow_slope"]) * bu
            brow = _soft(np.maximum(np.abs(bu) - erx * trigger.brow_width, np.abs(bv) - trigger.brow_thick / 2))
            _paint(img, brow, np.tile(np.array(trigger.brow_colour, np.float32), (b, 1)))
    elif trigger.kind == "lipstick":
        # The wearer's mouth, a little fuller, in one saturated colour.
        lips = _ellipse(u, v, 0, col(p["mouth_y"]), col(p["mouth_w"]) * 1.1, col(p["mouth_h"]) * 1.3 + 0.3)
        _paint(img, lips, np.tile(np.array(trigger.lip_colour, np.float32), (b, 1)))
    return img


def _digital(out: np.ndarray, trigger: Trigger) -> np.ndarray:
    """Paste the patch or blend the pattern over finished uint8 images; others as they are."""
    if trigger.kind == "patch":
        return paste(out, trigger.pattern())
    if trigger.kind == "blended":
        blend = (1 - BLEND_ALPHA) * out.astype(np.float32) + BLEND_ALPHA * trigger.pattern()
        return np.clip(np.rint(blend), 0, 255).astype(np.uint8)
    return out
