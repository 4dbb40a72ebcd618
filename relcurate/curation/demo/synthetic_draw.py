"""Drawing primitives for the synthetic image generator: palettes, shape polygons, backgrounds and
a supersampled canvas in unit coordinates. Pillow + numpy only; everything here is deterministic."""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw

# Shapes are drawn at 2x and box-downsampled: cheap anti-aliasing that stays deterministic.
SUPERSAMPLE = 2

RGB = tuple[int, int, int]

COLORS: dict[str, RGB] = {
    "red": (220, 40, 40),
    "orange": (245, 140, 20),
    "yellow": (245, 215, 30),
    "green": (40, 160, 60),
    "teal": (0, 150, 150),
    "blue": (40, 90, 220),
    "purple": (130, 60, 190),
    "pink": (240, 120, 180),
    "brown": (130, 80, 40),
    "black": (25, 25, 25),
    "gray": (128, 128, 128),
    "white": (250, 250, 250),
}

BACKGROUND_COLORS: dict[str, RGB] = {
    "white": (255, 255, 255),
    "cream": (250, 243, 224),
    "light gray": (222, 222, 222),
    "pale blue": (205, 225, 245),
    "pale green": (212, 238, 212),
    "pale pink": (248, 222, 230),
    "lavender": (230, 222, 246),
    "sand": (236, 218, 180),
    "charcoal": (48, 50, 56),
    "navy": (22, 32, 78),
    "dark green": (20, 58, 40),
    "maroon": (78, 20, 32),
}

BACKGROUND_KINDS = ("plain", "gradient", "noise", "stripes", "checker", "dots")
SHAPES = (
    "circle",
    "square",
    "triangle",
    "star",
    "hexagon",
    "pentagon",
    "diamond",
    "heart",
    "cross",
    "crescent",
)

# --------------------------------------------------------------------------------------------
# small helpers


def derive(*parts: Any) -> int:
    """A 64-bit seed from arbitrary (int/str) parts; stable across processes and platforms."""
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "big")


def luma(rgb: Sequence[float]) -> float:
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def contrasts(color: str, bg_color: str) -> bool:
    # Luminance gap keeps objects readable whatever the hue (yellow on cream is not).
    return abs(luma(COLORS[color]) - luma(BACKGROUND_COLORS[bg_color])) >= 70


def rgb_distance(a: str, b: str) -> float:
    return math.dist(COLORS[a], COLORS[b])


def rounded(x: float) -> float:
    """Rounded floats keep the manifest short and its text stable."""
    return round(float(x), 4)


def lerp_rgb(a: Sequence[float], b: Sequence[float], t: float) -> RGB:
    return tuple(int(round(a[i] + (b[i] - a[i]) * t)) for i in range(3))  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------
# shape geometry: every shape is a polygon in unit coordinates (bounding box centred, extent 1)


def _regular(n: int, start_deg: float = -90.0) -> list[tuple[float, float]]:
    return [
        (math.cos(math.radians(start_deg + 360 * i / n)), math.sin(math.radians(start_deg + 360 * i / n)))
        for i in range(n)
    ]


def _star_points() -> list[tuple[float, float]]:
    pts = []
    for i in range(10):
        rad = 1.0 if i % 2 == 0 else 0.45
        a = math.radians(-90 + 36 * i)
        pts.append((rad * math.cos(a), rad * math.sin(a)))
    return pts


def _heart_points() -> list[tuple[float, float]]:
    pts = []
    for i in range(48):
        t = 2 * math.pi * i / 48
        x = 16 * math.sin(t) ** 3
        y = -(13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t))
        pts.append((x, y))
    return pts


def _crescent_points() -> list[tuple[float, float]]:
    # Unit disc minus a disc of radius 0.8 centred at (0.45, 0): outer arc, then the cut arc back.
    c, rc = 0.45, 0.8
    xi = (1 - rc * rc + c * c) / (2 * c)
    yi = math.sqrt(1 - xi * xi)
    a0 = math.atan2(yi, xi)
    outer = [(math.cos(a), math.sin(a)) for a in np.linspace(a0, 2 * math.pi - a0, 28)]
    b0 = math.atan2(yi, xi - c)
    inner = [(c + rc * math.cos(b), rc * math.sin(b)) for b in np.linspace(2 * math.pi - b0, b0, 20)[1:-1]]
    return outer + inner


def _cross_points(w: float = 0.34) -> list[tuple[float, float]]:
    return [
        (-w, -1), (w, -1), (w, -w), (1, -w), (1, w), (w, w),
        (w, 1), (-w, 1), (-w, w), (-1, w), (-1, -w), (-w, -w),
    ]  # fmt: skip


def _normalise(pts: list[tuple[float, float]], extent: float = 1.0) -> np.ndarray:
    arr = np.asarray(pts, dtype=np.float64)
    lo, hi = arr.min(axis=0), arr.max(axis=0)
    arr = arr - (lo + hi) / 2
    return arr * (extent / np.abs(arr).max())


UNIT: dict[str, np.ndarray] = {
    "circle": _normalise(_regular(48)),
    "square": _normalise([(-1, -1), (1, -1), (1, 1), (-1, 1)], 0.85),
    "triangle": _normalise(_regular(3)),
    "star": _normalise(_star_points()),
    "hexagon": _normalise(_regular(6, 0)),
    "pentagon": _normalise(_regular(5)),
    "diamond": _normalise([(0, -1), (0.65, 0), (0, 1), (-0.65, 0)]),
    "heart": _normalise(_heart_points()),
    "cross": _normalise(_cross_points()),
    "crescent": _normalise(_crescent_points()),
}
assert tuple(UNIT) == SHAPES


def _inside(points: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd point-in-polygon test, vectorised over points."""
    x, y = points[:, 0:1], points[:, 1:2]
    x0, y0 = poly[:, 0], poly[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    crosses = (y0 > y) != (y1 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        xcross = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
    return ((crosses & (x < xcross)).sum(axis=1) % 2) == 1


def _distance_to_edges(points: np.ndarray, poly: np.ndarray) -> np.ndarray:
    a = poly[None, :, :]
    b = np.roll(poly, -1, axis=0)[None, :, :]
    p = points[:, None, :]
    ab = b - a
    t = np.clip(((p - a) * ab).sum(-1) / (ab * ab).sum(-1), 0, 1)
    closest = a + t[..., None] * ab
    return np.sqrt(((p - closest) ** 2).sum(-1)).min(axis=1)


def _inscribed_circle(poly: np.ndarray) -> tuple[np.ndarray, float]:
    """Largest circle inside the polygon (grid search): where a contained object can sit."""
    g = np.linspace(-1, 1, 61)
    grid = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    grid = grid[_inside(grid, poly)]
    d = _distance_to_edges(grid, poly)
    k = int(np.argmax(d))
    return grid[k], float(d[k])


INSCRIBED = {name: _inscribed_circle(poly) for name, poly in UNIT.items()}
CIRCUMRADIUS = {name: float(np.sqrt((poly**2).sum(1)).max()) for name, poly in UNIT.items()}
LOOKALIKES = {"circle", "hexagon", "pentagon"}
CONTAINERS = tuple(s for s in SHAPES if INSCRIBED[s][1] >= 0.5)


def rotate(vec: np.ndarray, deg: float) -> np.ndarray:
    a = math.radians(deg)
    c, s = math.cos(a), math.sin(a)
    return vec @ np.array([[c, s], [-s, c]])


def place(shape: str, x: float, y: float, r: float, angle: float = 0.0) -> np.ndarray:
    """The shape's polygon centred at (x, y) with half-extent r, rotated by angle degrees."""
    return rotate(UNIT[shape], angle) * r + (x, y)


def clip_half_plane(poly: np.ndarray, normal: np.ndarray, offset: float) -> np.ndarray:
    """Sutherland-Hodgman: the part of the polygon where normal . p <= offset."""
    out: list[np.ndarray] = []
    n = len(poly)
    for i in range(n):
        cur, nxt = poly[i], poly[(i + 1) % n]
        dc, dn = float(normal @ cur) - offset, float(normal @ nxt) - offset
        if dc <= 0:
            out.append(cur)
        if (dc < 0 < dn) or (dn < 0 < dc):
            out.append(cur + (nxt - cur) * (dc / (dc - dn)))
    return np.asarray(out)


def resample_outline(poly: np.ndarray, m: int, phase: float) -> np.ndarray:
    """About m points spaced along the closed polygon outline. Polygons with few vertices get a
    point on every corner (otherwise a hexagon of dots reads as a circle); curves are even."""
    closed = np.vstack([poly, poly[:1]])
    seg = np.sqrt((np.diff(closed, axis=0) ** 2).sum(1))
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    if len(poly) <= 12:
        per_edge = np.maximum(1, np.round(m * seg / cum[-1])).astype(int)
        targets = np.concatenate([cum[i] + seg[i] * np.arange(k) / k for i, k in enumerate(per_edge)])
    else:
        targets = ((np.arange(m) + phase) / m) * cum[-1]
    xs = np.interp(targets, cum, closed[:, 0])
    ys = np.interp(targets, cum, closed[:, 1])
    return np.stack([xs, ys], 1)


# --------------------------------------------------------------------------------------------
# backgrounds


@dataclass(frozen=True)
class Background:
    kind: str  # one of BACKGROUND_KINDS
    colors: tuple[str, ...]  # names in BACKGROUND_COLORS; two for gradients
    variant: str = ""  # gradient direction / stripe orientation
    texture_seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "colors": list(self.colors), "variant": self.variant}

    def describe(self) -> str:
        c = self.colors[0]
        if self.kind == "gradient":
            return f"a {c} to {self.colors[1]} gradient background"
        adjective = {
            "plain": "plain",
            "noise": "mottled",
            "stripes": "striped",
            "checker": "checkered",
            "dots": "polka-dot",
        }[self.kind]
        return f"a {adjective} {c} background"


def _texture_shade(rgb: np.ndarray) -> np.ndarray:
    # Textures stay low-contrast (a shade of the base) so the objects remain the salient content.
    return rgb + (24.0 if luma(rgb) < 128 else -24.0)


def render_background(bg: Background, size: int, w: int) -> Image.Image:
    """The background at canvas width w. Pixel-array kinds are computed at the output size and
    enlarged (nearest), since supersampling smooth textures buys nothing and costs 4x the time."""
    base = np.asarray(BACKGROUND_COLORS[bg.colors[0]], dtype=np.float32)
    if bg.kind == "plain":
        return Image.new("RGB", (w, w), tuple(int(v) for v in base))
    if bg.kind != "dots" and w != size:
        return render_background(bg, size, size).resize((w, w), Image.Resampling.NEAREST)
    coords = (np.arange(w, dtype=np.float32) + 0.5) / w
    xx, yy = coords[None, :], coords[:, None]
    if bg.kind == "gradient":
        other = np.asarray(BACKGROUND_COLORS[bg.colors[1]], dtype=np.float32)
        t = {
            "vertical": yy + 0 * xx,
            "horizontal": xx + 0 * yy,
            "diagonal": (xx + yy) / 2,
            "radial": np.minimum(np.sqrt((xx - 0.5) ** 2 + (yy - 0.5) ** 2) / 0.7071, 1),
        }[bg.variant]
        arr = base + t[..., None] * (other - base)
    elif bg.kind == "noise":
        nrng = np.random.default_rng(bg.texture_seed)
        coarse = Image.fromarray(nrng.normal(0, 1, (6, 6)).astype(np.float32), "F")
        low = np.asarray(coarse.resize((w, w), Image.Resampling.BILINEAR))
        grain = nrng.normal(0, 6, (w, w)).astype(np.float32)
        arr = base + (7 * low + grain)[..., None]
    elif bg.kind in ("stripes", "checker"):
        period = {"fine": 14, "wide": 8}[bg.variant.split("-")[0]]
        if bg.kind == "stripes":
            axis = bg.variant.split("-")[1]
            u = {"horizontal": yy + 0 * xx, "vertical": xx + 0 * yy, "diagonal": (xx + yy) / 2}[axis]
            mask = np.floor(u * period * 2) % 2
        else:
            mask = (np.floor(xx * period) + np.floor(yy * period)) % 2
        arr = base + mask[..., None] * (_texture_shade(base) - base)
    elif bg.kind == "dots":
        img = Image.new("RGB", (w, w), tuple(int(v) for v in base))
        draw = ImageDraw.Draw(img)
        shade = tuple(int(v) for v in np.clip(_texture_shade(base), 0, 255))
        n = {"fine": 14, "wide": 9}[bg.variant]
        step, rad = w / n, w / n * 0.16
        for row in range(n + 1):
            for col in range(n + 1):
                cx = (col + (0.5 if row % 2 else 0.0)) * step
                cy = row * step + step / 2
                draw.ellipse((cx - rad, cy - rad, cx + rad, cy + rad), fill=shade)
        return img
    else:
        raise ValueError(f"unknown background kind {bg.kind!r}")
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


_BG_VARIANTS = {
    "plain": ("",),
    "gradient": ("vertical", "horizontal", "diagonal", "radial"),
    "noise": ("",),
    "stripes": tuple(f"{p}-{a}" for p in ("fine", "wide") for a in ("horizontal", "vertical", "diagonal")),
    "checker": ("fine", "wide"),
    "dots": ("fine", "wide"),
}


def sample_background(rng: random.Random, colors: Sequence[str]) -> Background:
    """A background whose colours all contrast with every object colour given."""
    candidates = [b for b in BACKGROUND_COLORS if all(contrasts(c, b) for c in colors)]
    if not candidates:  # e.g. black and white objects together: take the best compromise
        best = max(min(abs(luma(COLORS[c]) - luma(v)) for c in colors) for v in BACKGROUND_COLORS.values())
        candidates = [
            b
            for b, v in BACKGROUND_COLORS.items()
            if min(abs(luma(COLORS[c]) - luma(v)) for c in colors) == best
        ]
    kind = rng.choice(BACKGROUND_KINDS)
    first = rng.choice(candidates)
    chosen: tuple[str, ...] = (first,)
    if kind == "gradient":
        rest = [b for b in candidates if b != first]
        chosen = (first, rng.choice(rest) if rest else first)
    variant = rng.choice(_BG_VARIANTS[kind])
    return Background(kind, chosen, variant, rng.getrandbits(32))


# --------------------------------------------------------------------------------------------
# canvas: unit coordinates ([0, 1] x [0, 1]) on a supersampled image


class Canvas:
    def __init__(self, size: int, background: Background, zoom: tuple[float, float, float] = (1.0, 0.0, 0.0)) -> None:
        """`zoom` = (s, tx, ty): the scene's unit square is drawn at s x its size, shifted by
        (tx, ty) (fractions of the image) over the full background; the identity by default."""
        self.size = size
        self.w = size * SUPERSAMPLE
        self.zoom = zoom
        self.background = background
        self.image = render_background(background, size, self.w)
        self.draw = ImageDraw.Draw(self.image)
        bg_luma = np.mean([luma(BACKGROUND_COLORS[c]) for c in background.colors])
        # "Ink" for arrows, axes and ground lines: whichever of near-black/near-white reads better.
        self.ink: RGB = (30, 30, 30) if bg_luma > 128 else (235, 235, 235)
        self.bg_rgb = np.asarray(BACKGROUND_COLORS[background.colors[0]], dtype=np.float64)
        self._lo = np.array([np.inf, np.inf])
        self._hi = np.array([-np.inf, -np.inf])

    def _px(self, pts: np.ndarray) -> list[tuple[float, float]]:
        z, tx, ty = self.zoom
        return [(float(x), float(y)) for x, y in (pts * z + (tx, ty)) * self.w]

    def polygon(self, pts: np.ndarray, fill: Sequence[int], outline: bool = True) -> None:
        fill_t = tuple(int(v) for v in fill)
        self._lo = np.minimum(self._lo, pts.min(0))
        self._hi = np.maximum(self._hi, pts.max(0))
        if not outline:
            self.draw.polygon(self._px(pts), fill=fill_t)
            return
        extent = float((pts.max(0) - pts.min(0)).max()) * self.w * self.zoom[0]
        width = max(1, int(round(extent * 0.03)))
        edge = tuple(int(v * 0.55) for v in fill_t)
        self.draw.polygon(self._px(pts), fill=fill_t, outline=edge, width=width)

    def shape(self, shape: str, x: float, y: float, r: float, color: str | Sequence[int], angle: float = 0.0) -> np.ndarray:
        pts = place(shape, x, y, r, angle)
        self.polygon(pts, COLORS[color] if isinstance(color, str) else color)
        return pts

    def line(self, pts: Sequence[tuple[float, float]], width: float, fill: Sequence[int] | None = None) -> None:
        px = self._px(np.asarray(pts, dtype=np.float64).reshape(-1, 2))
        width_px = max(1, int(round(width * self.w * self.zoom[0])))
        self.draw.line(px, fill=tuple(fill or self.ink), width=width_px, joint="curve")

    def dashed(self, a: tuple[float, float], b: tuple[float, float], width: float, dash: float = 0.03) -> None:
        length = math.dist(a, b)
        n = max(1, int(length / dash))
        for i in range(0, n, 2):
            t0, t1 = i / n, min(1.0, (i + 1) / n)
            self.line(
                [(a[0] + (b[0] - a[0]) * t0, a[1] + (b[1] - a[1]) * t0), (a[0] + (b[0] - a[0]) * t1, a[1] + (b[1] - a[1]) * t1)],
                width,
            )

    def layout_bbox(self) -> list[float]:
        if not np.isfinite(self._lo).all():
            return [0.0, 0.0, 0.0, 0.0]
        z, tx, ty = self.zoom
        lo, hi = self._lo * z + (tx, ty), self._hi * z + (tx, ty)
        return [rounded(v) for v in (*lo, *hi)]

    def finish(self) -> Image.Image:
        return self.image.reduce(SUPERSAMPLE) if SUPERSAMPLE > 1 else self.image
