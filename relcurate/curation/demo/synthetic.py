"""Deterministic generator of *relational* demo images (Pillow + numpy only).

Each relational image instantiates one :class:`RelationTemplate` (growing sequence, ring, odd one out,
mirror image, ...). The attributes (shapes, colours, background, scale, jitter) are sampled from the
image seed *before* and independently of the template, so every shape and colour appears under every
relation and a model cannot shortcut "relation" through "attribute". Non-relational images (one plain
object, random clutter) are mixed into pools at a configurable fraction, mimicking the paper's filter
labels (~1.3k Yes / 11k No).

Determinism: all randomness flows from :func:`synthetic_draw.derive` (blake2b of the seed parts, independent of
``PYTHONHASHSEED``) into ``random.Random`` / ``numpy.random.default_rng``; PNGs are written without
any time-dependent metadata, so the same seed gives byte-identical files.
"""

from __future__ import annotations

import io
import json
import math
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
from PIL import Image

from relcurate.curation.demo.synthetic_draw import (
    BACKGROUND_COLORS,
    BACKGROUND_KINDS,
    CIRCUMRADIUS,
    COLORS,
    CONTAINERS,
    INSCRIBED,
    LOOKALIKES,
    SHAPES,
    UNIT,
    Background,
    Canvas,
    clip_half_plane,
    contrasts,
    derive,
    lerp_rgb,
    luma,
    place,
    resample_outline,
    rgb_distance,
    rotate,
    rounded,
    sample_background,
)

__all__ = [
    "Attributes",
    "Background",
    "BACKGROUND_COLORS",
    "BACKGROUND_KINDS",
    "COLORS",
    "MANIFEST_NAME",
    "NON_RELATIONAL_KINDS",
    "RelationTemplate",
    "SHAPES",
    "SyntheticImage",
    "TEMPLATES",
    "generate_group",
    "generate_image",
    "generate_pool",
    "png_bytes",
    "read_manifest",
    "sample_attributes",
    "write_pool",
]

MANIFEST_NAME = "synthetic.jsonl"
# Pool item seeds are pool_seed * stride + index, so pool 0 item i is exactly generate_image(i).
_POOL_SEED_STRIDE = 10_000_000
NON_RELATIONAL_KINDS = ("single", "clutter")

_NUMBER_WORDS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty"
).split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()


def _number(n: int) -> str:
    if 0 <= n < len(_NUMBER_WORDS):
        return _NUMBER_WORDS[n]
    if 20 < n < 100:
        tens, unit = divmod(n, 10)
        return _TENS[tens - 2] + (f"-{_NUMBER_WORDS[unit]}" if unit else "")
    return str(n)


def _plural(word: str) -> str:
    return word + "es" if word.endswith(("s", "x", "sh", "ch")) else word + "s"


def _a(phrase: str) -> str:
    return ("an " if phrase[:1] in "aeiou" else "a ") + phrase


def _counted(n: int, phrase: str) -> str:
    """'a red star' / 'three red stars' (plural on the last word)."""
    if n == 1:
        return _a(phrase)
    head, _, last = phrase.rpartition(" ")
    return f"{_number(n)} {head + ' ' if head else ''}{_plural(last)}"


def _join(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


# --------------------------------------------------------------------------------------------
# attributes: sampled from the seed alone, never from the template


@dataclass(frozen=True)
class Attributes:
    shape: str
    color: str
    other_shape: str  # always != shape; used by templates that need a second kind of object
    other_color: str  # always != color and visible on the background
    background: Background
    count_u: float  # in [0, 1): where the count falls in the template's own count range
    scale: float  # global size multiplier
    angle: float  # base rotation in degrees
    jitter: float  # positional noise, fraction of the image size
    offset: tuple[float, float]  # shift of the whole layout

    def count(self, lo: int, hi: int) -> int:
        return lo + min(hi - lo, int(self.count_u * (hi - lo + 1)))

    def centre(self) -> tuple[float, float]:
        return 0.5 + self.offset[0], 0.5 + self.offset[1]

    def wobble(self, rng: random.Random) -> float:
        return rng.uniform(-self.jitter, self.jitter)


def sample_attributes(seed: int, *, shape: str | None = None, color: str | None = None) -> Attributes:
    """The attributes of image ``seed``; identical for every template (independence by design)."""
    rng = random.Random(derive("attributes", seed))
    # Draw the defaults even when overridden, so an override disturbs the stream as little as possible.
    drawn_shape, drawn_color = rng.choice(SHAPES), rng.choice(tuple(COLORS))
    shape = shape or drawn_shape
    color = color or drawn_color
    if shape not in UNIT or color not in COLORS:
        raise ValueError(f"unknown shape/colour {shape!r}/{color!r}")
    other_shape = rng.choice([s for s in SHAPES if s != shape])
    background = sample_background(rng, [color])
    others = [
        c
        for c in COLORS
        if c != color and rgb_distance(c, color) >= 130 and all(contrasts(c, b) for b in background.colors)
    ]
    other_color = rng.choice(others or [c for c in COLORS if c != color])
    return Attributes(
        shape=shape,
        color=color,
        other_shape=other_shape,
        other_color=other_color,
        background=background,
        count_u=rng.random(),
        scale=rng.uniform(0.85, 1.1),
        angle=rng.uniform(-20, 20),
        jitter=rng.uniform(0.0, 0.012),
        offset=(rng.uniform(-0.03, 0.03), rng.uniform(-0.03, 0.03)),
    )


# --------------------------------------------------------------------------------------------
# relation templates. Each draws on the canvas and returns (details, concrete phrase).

Scene = tuple[dict[str, Any], str]


def _pos(x: float, y: float) -> list[float]:
    return [rounded(x), rounded(y)]


def _growing(rng: random.Random, a: Attributes, cv: Canvas) -> Scene:
    n = a.count(3, 6)
    fracs = [0.35 + 0.65 * i / (n - 1) for i in range(n)]
    base = min(0.2, 0.78 / (2 * sum(fracs) + 0.3 * (n - 1))) * a.scale
    gap = 0.3 * base
    total = 2 * base * sum(fracs) + gap * (n - 1)
    cx, cy = a.centre()
    x, baseline = cx - total / 2, cy + base
    positions, sizes = [], []
    for f in fracs:
        r = base * f
        px, py = x + r + a.wobble(rng), baseline - r + a.wobble(rng)
        cv.shape(a.shape, px, py, r, a.color, a.angle * 0.5)
        positions.append(_pos(px, py))
        sizes.append(rounded(r))
        x += 2 * r + gap
    details = {"count": n, "positions": positions, "sizes": sizes, "direction": "left_to_right"}
    return details, f"{_counted(n, f'{a.color} {a.shape}')} growing in size from left to right"


def _ring(rng: random.Random, a: Attributes, cv: Canvas) -> Scene:
    n = a.count(6, 12)
    ring_r = 0.31 * min(a.scale, 1.0)
    r = min(0.085, 0.75 * ring_r * math.sin(math.pi / n)) * a.scale
    cx, cy = a.centre()
    phase = rng.uniform(0, 360)
    positions = []
    for i in range(n):
        theta = phase + 360 * i / n
        px = cx + ring_r * math.cos(math.radians(theta)) + a.wobble(rng)
        py = cy + ring_r * math.sin(math.radians(theta)) + a.wobble(rng)
        cv.shape(a.shape, px, py, r, a.color, theta + 90)  # each copy faces outwards
        positions.append(_pos(px, py))
    return {"count": n, "positions": positions, "radius": rounded(ring_r)}, (
        f"{_counted(n, f'{a.color} {a.shape}')} arranged in a ring"
    )


def _odd_one_out(rng: random.Random, a: Attributes, cv: Canvas) -> Scene:
    k = a.count(3, 4)
    n = k * k
    cell = 0.8 / k
    r = cell * 0.34 * a.scale
    cx, cy = a.centre()
    odd = rng.randrange(n)
    odd_by = rng.choice(("shape", "color"))
    if {a.shape, a.other_shape} <= LOOKALIKES:  # a hexagon among circles is hard to spot
        odd_by = "color"
    odd_shape = a.other_shape if odd_by == "shape" else a.shape
    odd_color = a.other_color if odd_by == "color" else a.color
    positions = []
    for i in range(n):
        row, col = divmod(i, k)
        px = cx + (col - (k - 1) / 2) * cell + a.wobble(rng)
        py = cy + (row - (k - 1) / 2) * cell + a.wobble(rng)
        if i == odd:
            cv.shape(odd_shape, px, py, r, odd_color, a.angle * 0.5)
        else:
            cv.shape(a.shape, px, py, r, a.color, a.angle * 0.5)
        positions.append(_pos(px, py))
    details = {
        "count": n,
        "grid": [k, k],
        "positions": positions,
        "odd_index": odd,
        "odd_by": odd_by,
        "odd_shape": odd_shape,
        "odd_color": odd_color,
    }
    phrase = f"a grid of {_counted(n - 1, f'{a.color} {a.shape}')} and one {odd_color} {odd_shape}"
    return details, phrase


def _mirror(rng: random.Random, a: Attributes, cv: Canvas) -> Scene:
    cx, cy = a.centre()
    r = 0.14 * a.scale
    dx = rng.uniform(0.2, 0.23)
    # A tilt plus an off-centre dot make every shape (even a circle) visibly chiral.
    tilt = rng.choice((-1, 1)) * rng.uniform(15, 40)
    body = place(a.shape, cx - dx, cy, r, tilt)
    d = rotate(np.array([[-0.78, -0.78]]), tilt)[0] * r * 1.15
    dot = place("circle", cx - dx + d[0], cy + d[1], r * 0.28)
    cv.dashed((cx, 0.06), (cx, 0.94), 0.006)
    for pts, fill in ((body, COLORS[a.color]), (dot, COLORS[a.other_color])):
        cv.polygon(pts, fill)
        mirrored = pts.copy()
        mirrored[:, 0] = 2 * cx - mirrored[:, 0]
        cv.polygon(mirrored, fill)
    details = {
        "count": 2,
        "positions": [_pos(cx - dx, cy), _pos(cx + dx, cy)],
        "axis": "vertical",
        "tilt": rounded(tilt),
        "colors": [a.color, a.other_color],
    }
    phrase = f"{_a(f'{a.color} {a.shape}')} with a small {a.other_color} dot and its mirror image across a dashed line"
    return details, phrase


def _composite(rng: random.Random, a: Attributes, cv: Canvas) -> Scene:
    m = a.count(12, 24)
    cx, cy = a.centre()
    big_r = 0.34 * a.scale
    outline = place(a.other_shape, cx, cy, big_r, a.angle * 0.5)
    perimeter = float(np.sqrt((np.diff(np.vstack([outline, outline[:1]]), axis=0) ** 2).sum(1)).sum())
    r = min(0.05, perimeter / m * 0.32)
    points = resample_outline(outline, m, rng.random())
    m = len(points)
    positions = []
    for px, py in points:
        px, py = px + a.wobble(rng) * 0.5, py + a.wobble(rng) * 0.5
        cv.shape(a.shape, px, py, r, a.color, a.angle)
        positions.append(_pos(px, py))
    details = {"count": m, "positions": positions, "large_shape": a.other_shape, "shapes": [a.shape, a.other_shape]}
    return details, f"a large {a.other_shape} outline made of {_counted(m, f'small {a.color} {a.shape}')}"


def _stack(rng: random.Random, a: Attributes, cv: Canvas) -> Scene:
    n = a.count(3, 6)
    unit = UNIT[a.shape]
    top, bottom = float(unit[:, 1].min()), float(unit[:, 1].max())
    shrink = [1 - 0.1 * i for i in range(n)]
    base = min(0.15, 0.74 / ((bottom - top) * sum(shrink))) * min(a.scale, 1.0)
    cx, cy = a.centre()
    ground = min(0.93, cy + 0.38)
    cv.line([(0.05, ground), (0.95, ground)], 0.008)
    y = ground
    positions = []
    for f in shrink:
        r = base * f
        py = y - bottom * r
        px = cx + rng.uniform(-0.15, 0.15) * r
        cv.shape(a.shape, px, py, r, a.color)
        positions.append(_pos(px, py))
        y = py + top * r
    return {"count": n, "positions": positions}, f"{_counted(n, f'{a.color} {a.shape}')} stacked into a tower"


def _containment(rng: random.Random, a: Attributes, cv: Canvas) -> Scene:
    # Thin shapes (star, cross, crescent) cannot hold anything: fall back to a roomy container.
    container = a.other_shape if a.other_shape in CONTAINERS else CONTAINERS[a.count(0, len(CONTAINERS) - 1)]
    if container == a.shape:
        container = next(s for s in CONTAINERS if s != a.shape)
    cx, cy = a.centre()
    big_r = 0.38 * a.scale
    tilt = a.angle * 0.5
    cv.shape(container, cx, cy, big_r, a.other_color, tilt)
    centre, inner = INSCRIBED[container]
    c = rotate(centre[None, :], tilt)[0] * big_r + (cx, cy)
    r = big_r * inner * rng.uniform(0.55, 0.72) / CIRCUMRADIUS[a.shape]
    cv.shape(a.shape, c[0], c[1], r, a.color, a.angle)
    details = {
        "count": 2,
        "positions": [_pos(cx, cy), _pos(c[0], c[1])],
        "container": container,
        "shapes": [a.shape, container],
        "colors": [a.color, a.other_color],
    }
    return details, f"a small {a.color} {a.shape} inside a large {a.other_color} {container}"


def _colour_fade(rng: random.Random, a: Attributes, cv: Canvas) -> Scene:
    n = a.count(4, 7)
    r = min(0.09, 0.88 / (n * 2.2)) * a.scale
    step = (0.88 - 2 * r) / (n - 1)
    cx, cy = a.centre()
    start, end = COLORS[a.color], COLORS[a.other_color]
    positions, fills = [], []
    for i in range(n):
        px = cx - (n - 1) * step / 2 + i * step + a.wobble(rng)
        py = cy + a.wobble(rng)
        fill = lerp_rgb(start, end, i / (n - 1))
        cv.shape(a.shape, px, py, r, fill, a.angle * 0.5)
        positions.append(_pos(px, py))
        fills.append(list(fill))
    details = {"count": n, "positions": positions, "rgb": fills, "colors": [a.color, a.other_color]}
    return details, f"{_number(n)} {_plural(a.shape)} fading from {a.color} to {a.other_color}"


def _split(rng: random.Random, a: Attributes, cv: Canvas) -> Scene:
    cx, cy = a.centre()
    r = 0.27 * a.scale
    cut = rng.uniform(-25, 25)  # cut-line tilt from vertical
    normal = np.array([math.cos(math.radians(cut)), math.sin(math.radians(cut))])
    gap = rng.uniform(0.045, 0.075)
    pts = place(a.shape, cx, cy, r, a.angle)
    offset = float(normal @ np.array([cx, cy]))
    left = clip_half_plane(pts, normal, offset) - normal * gap
    right = clip_half_plane(pts, -normal, -offset) + normal * gap
    cv.polygon(left, COLORS[a.color])
    cv.polygon(right, COLORS[a.color])
    details = {"count": 2, "positions": [_pos(*left.mean(0)), _pos(*right.mean(0))], "cut_angle": rounded(cut), "gap": rounded(gap)}
    return details, f"{_a(f'{a.color} {a.shape}')} split into two halves pulled apart"


def _arrow(rng: random.Random, a: Attributes, cv: Canvas) -> Scene:
    cx, cy = a.centre()
    heading = rng.uniform(-30, 30)
    u = np.array([math.cos(math.radians(heading)), math.sin(math.radians(heading))])
    d, r = 0.3, 0.12 * a.scale
    src, dst = np.array([cx, cy]) - u * d, np.array([cx, cy]) + u * d
    cv.shape(a.shape, src[0], src[1], r, a.color, a.angle)
    cv.shape(a.other_shape, dst[0], dst[1], r, a.other_color, a.angle)
    tail, tip = src + u * (r * 1.35), dst - u * (r * 1.35)
    head = 0.05
    nvec = np.array([-u[1], u[0]])
    cv.line([tuple(tail), tuple(tip - u * head * 0.6)], 0.016)
    cv.polygon(np.stack([tip, tip - u * head + nvec * head * 0.6, tip - u * head - nvec * head * 0.6]), cv.ink, outline=False)
    details = {
        "count": 2,
        "positions": [_pos(*src), _pos(*dst)],
        "heading": rounded(heading),
        "shapes": [a.shape, a.other_shape],
        "colors": [a.color, a.other_color],
    }
    return details, f"an arrow pointing from {_a(f'{a.color} {a.shape}')} to {_a(f'{a.other_color} {a.other_shape}')}"


def _nested(rng: random.Random, a: Attributes, cv: Canvas) -> Scene:
    n = a.count(3, 6)
    cx, cy = a.centre()
    big = 0.4 * min(a.scale, 1.0)
    centre = INSCRIBED[a.shape][0]
    positions = []
    for i in range(n):
        r = big * (n - i) / n
        # Keep the inscribed centres aligned so smaller copies sit inside the bigger ones.
        px, py = cx - centre[0] * (r - big), cy - centre[1] * (r - big)
        cv.shape(a.shape, px, py, r, a.color if i % 2 == 0 else a.other_color, a.angle * 0.5)
        positions.append(_pos(px, py))
    details = {"count": n, "positions": positions, "colors": [a.color, a.other_color]}
    return details, f"{_number(n)} nested {_plural(a.shape)} alternating {a.color} and {a.other_color}"


def _counting(rng: random.Random, a: Attributes, cv: Canvas) -> Scene:
    groups = a.count(3, 4)
    col_w = 0.9 / groups
    r = min(col_w * 0.3, 0.82 / (2.5 * groups)) * min(a.scale, 1.0)
    cx, cy = a.centre()
    left = cx - 0.45
    positions = []
    for g in range(groups):
        x = left + col_w * (g + 0.5)
        if g:
            cv.line([(left + col_w * g, 0.1), (left + col_w * g, 0.9)], 0.005)
        k = g + 1
        for j in range(k):
            py = cy + (j - (k - 1) / 2) * (2.5 * r) + a.wobble(rng)
            px = x + a.wobble(rng)
            cv.shape(a.shape, px, py, r, a.color, a.angle * 0.5)
            positions.append(_pos(px, py))
    details = {"count": groups, "group_sizes": list(range(1, groups + 1)), "positions": positions}
    numbers = _join([_number(k) for k in range(1, groups + 1)])
    return details, f"groups of {numbers} {a.color} {_plural(a.shape)}"


def _shadow(rng: random.Random, a: Attributes, cv: Canvas) -> Scene:
    cx, cy = a.centre()
    r = 0.17 * a.scale
    ground = min(0.86, cy + 0.28)
    unit = UNIT[a.shape]
    px = cx + rng.uniform(-0.08, 0.08)
    py = ground - float(unit[:, 1].max()) * r
    pts = place(a.shape, px, py, r)
    shear = rng.choice((-1, 1)) * rng.uniform(0.8, 1.3)
    height = ground - pts[:, 1]
    shadow = np.stack([np.clip(pts[:, 0] + shear * height, 0.02, 0.98), ground - 0.4 * height], 1)
    shadow_rgb = cv.bg_rgb * 0.35 if luma(cv.bg_rgb) > 100 else np.minimum(cv.bg_rgb * 0.4, 20)
    cv.line([(0.04, ground), (0.96, ground)], 0.006)
    cv.polygon(shadow, shadow_rgb, outline=False)
    cv.polygon(pts, COLORS[a.color])
    details = {"count": 1, "positions": [_pos(px, py)], "shadow_side": "right" if shear > 0 else "left"}
    return details, f"{_a(f'{a.color} {a.shape}')} standing on the ground and casting a shadow"


def _orbit(rng: random.Random, a: Attributes, cv: Canvas) -> Scene:
    m = a.count(3, 6)
    cx, cy = a.centre()
    ax = 0.36
    ay = ax * rng.uniform(0.45, 0.8)
    ts = np.linspace(0, 2 * math.pi, 97)
    cv.line([(cx + ax * math.cos(t), cy + ay * math.sin(t)) for t in ts], 0.005)
    cv.shape(a.shape, cx, cy, 0.13 * a.scale, a.color, a.angle)
    phase = rng.uniform(0, 2 * math.pi)
    positions = [_pos(cx, cy)]
    for i in range(m):
        t = phase + 2 * math.pi * i / m + rng.uniform(-0.2, 0.2)
        px, py = cx + ax * math.cos(t), cy + ay * math.sin(t)
        cv.shape(a.other_shape, px, py, 0.045 * a.scale, a.other_color, a.angle)
        positions.append(_pos(px, py))
    details = {
        "count": m,
        "positions": positions,
        "shapes": [a.shape, a.other_shape],
        "colors": [a.color, a.other_color],
    }
    return details, (
        f"{_a(f'{a.color} {a.shape}')} orbited by {_counted(m, f'small {a.other_color} {a.other_shape}')}"
    )


def _alternating(rng: random.Random, a: Attributes, cv: Canvas) -> Scene:
    n = a.count(6, 9)
    r = min(0.07, 0.88 / (n * 2.3)) * a.scale
    step = (0.88 - 2 * r) / (n - 1)
    cx, cy = a.centre()
    positions = []
    for i in range(n):
        px = cx - (n - 1) * step / 2 + i * step + a.wobble(rng)
        py = cy + a.wobble(rng)
        shape, color = (a.shape, a.color) if i % 2 == 0 else (a.other_shape, a.other_color)
        cv.shape(shape, px, py, r, color, a.angle * 0.5)
        positions.append(_pos(px, py))
    details = {
        "count": n,
        "positions": positions,
        "shapes": [a.shape, a.other_shape],
        "colors": [a.color, a.other_color],
    }
    phrase = (
        f"a row of {_number(n)} shapes alternating between {a.color} {_plural(a.shape)} "
        f"and {a.other_color} {_plural(a.other_shape)}"
    )
    return details, phrase


def _order_chaos(rng: random.Random, a: Attributes, cv: Canvas) -> Scene:
    n = a.count(4, 9)
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    r = 0.05 * a.scale
    cv.line([(0.5, 0.08), (0.5, 0.92)], 0.006)
    positions = []
    step = 2.8 * r
    cy = 0.5 + a.offset[1]
    for i in range(n):
        row, col = divmod(i, cols)
        px = 0.25 + (col - (cols - 1) / 2) * step
        py = cy + (row - (rows - 1) / 2) * step
        cv.shape(a.shape, px, py, r, a.color, 0)
        positions.append(_pos(px, py))
    placed: list[tuple[float, float]] = []
    for _ in range(n):
        for _try in range(60):  # rejection sampling keeps the scattered copies apart
            p = (rng.uniform(0.58, 0.92), rng.uniform(0.12, 0.88))
            if all(math.dist(p, q) > 2.3 * r for q in placed):
                break
        placed.append(p)
        cv.shape(a.shape, p[0], p[1], r, a.color, rng.uniform(0, 360))
        positions.append(_pos(*p))
    details = {"count": n, "positions": positions, "ordered_side": "left"}
    return details, f"{_counted(n, f'{a.color} {a.shape}')} neatly arranged on the left and scattered on the right"


@dataclass(frozen=True)
class RelationTemplate:
    name: str
    anonymous_caption: str
    draw: Callable[[random.Random, Attributes, Canvas], Scene]

    @property
    def placeholders(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(re.findall(r"\{([A-Za-z]+)\}", self.anonymous_caption)))

    def render(self, rng: random.Random, attrs: Attributes, size: int,
               zoom: tuple[float, float, float] = (1.0, 0.0, 0.0)) -> tuple[Image.Image, dict[str, Any], str]:
        """The image, the layout details and a concrete description (without the background)."""
        canvas = Canvas(size, attrs.background, zoom)
        details, phrase = self.draw(rng, attrs, canvas)
        details["layout_bbox"] = canvas.layout_bbox()
        return canvas.finish(), details, phrase


_TEMPLATE_LIST = (
    RelationTemplate("growing", "A row of {Object}s that grow steadily larger from left to right", _growing),
    RelationTemplate("ring", "{Count} copies of {Object} arranged evenly in a ring", _ring),
    RelationTemplate(
        "odd_one_out", "A grid of identical {Object}s in which one {Item} differs from all the others", _odd_one_out
    ),
    RelationTemplate("mirror", "An {Object} and its mirror image on either side of a central line", _mirror),
    RelationTemplate(
        "composite", "A large {Shape} formed by many small copies of {Object} placed along its outline", _composite
    ),
    RelationTemplate("stack", "{Count} {Object}s stacked on top of each other into a tower", _stack),
    RelationTemplate("containment", "A small {Object} placed inside a much larger {Container}", _containment),
    RelationTemplate(
        "colour_fade", "A row of {Object}s whose colour changes gradually from {Color} to {OtherColor}", _colour_fade
    ),
    RelationTemplate("split", "An {Object} cut into two halves that are pulled apart", _split),
    RelationTemplate("arrow", "An arrow pointing from an {Object} to a different {Target}", _arrow),
    RelationTemplate(
        "nested", "{Count} {Object}s of decreasing size nested inside one another around a shared centre", _nested
    ),
    RelationTemplate(
        "counting", "Groups of {Object}s whose number increases by one from left to right: one, two, three", _counting
    ),
    RelationTemplate("shadow", "An {Object} standing on the ground and casting a long shadow", _shadow),
    RelationTemplate(
        "orbit", "A large {Object} at the centre orbited by smaller {Satellite}s along an elliptical path", _orbit
    ),
    RelationTemplate(
        "alternating", "A row that alternates between {Object} and {Other} in a repeating pattern", _alternating
    ),
    RelationTemplate(
        "order_chaos",
        "The same {Count} {Object}s neatly arranged in a grid on one side and scattered in disorder on the other",
        _order_chaos,
    ),
)
TEMPLATES: dict[str, RelationTemplate] = {t.name: t for t in _TEMPLATE_LIST}


# --------------------------------------------------------------------------------------------
# non-relational images


def _single(rng: random.Random, a: Attributes, cv: Canvas) -> Scene:
    r = rng.uniform(0.1, 0.24)
    px, py = rng.uniform(0.1 + r, 0.9 - r), rng.uniform(0.1 + r, 0.9 - r)
    cv.shape(a.shape, px, py, r, a.color, rng.uniform(0, 360))
    return {"count": 1, "positions": [_pos(px, py)], "sizes": [rounded(r)]}, _a(f"{a.color} {a.shape}")


def _clutter(rng: random.Random, a: Attributes, cv: Canvas) -> Scene:
    usable = [c for c in COLORS if all(contrasts(c, b) for b in cv.background.colors)] or list(COLORS)
    n = rng.randint(4, 9)
    while True:  # at least three kinds of shape: identical copies could read as a pattern
        items = [(rng.choice(SHAPES), rng.choice(usable)) for _ in range(n)]
        if len({s for s, _ in items}) >= 3:
            break
    positions, sizes = [], []
    for shape, color in items:
        r = rng.uniform(0.04, 0.12)
        m = 0.04 + r * CIRCUMRADIUS[shape]
        px, py = rng.uniform(m, 1 - m), rng.uniform(m, 1 - m)
        cv.shape(shape, px, py, r, color, rng.uniform(0, 360))
        positions.append(_pos(px, py))
        sizes.append(rounded(r))
    counts: dict[tuple[str, str], int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    parts = [_counted(k, f"{color} {shape}") for (shape, color), k in counts.items()]
    details = {
        "count": n,
        "positions": positions,
        "sizes": sizes,
        "shape": items[0][0],
        "color": items[0][1],
        "shapes": [s for s, _ in items],
        "colors": [c for _, c in items],
    }
    return details, f"{_join(parts)} scattered at random"


_NON_RELATIONAL: dict[str, Callable[[random.Random, Attributes, Canvas], Scene]] = {
    "single": _single,
    "clutter": _clutter,
}


# --------------------------------------------------------------------------------------------
# public API


@dataclass
class SyntheticImage:
    key: str
    image: Image.Image
    relational: bool
    template: str | None
    attributes: dict[str, Any]
    alt_text: str
    anonymous_caption: str | None
    kind: str = "relational"  # "relational" or one of NON_RELATIONAL_KINDS

    def record(self) -> dict[str, Any]:
        """The manifest line for this image (everything but the pixels)."""
        return {
            "file": f"{self.key}.png",
            "key": self.key,
            "kind": self.kind,
            "relational": self.relational,
            "template": self.template,
            "attributes": self.attributes,
            "alt_text": self.alt_text,
            "anonymous_caption": self.anonymous_caption,
        }


def layout_zoom(seed: int, name: str, layout_jitter: float) -> tuple[float, float, float]:
    """(s, tx, ty) for `layout_jitter` j in [0, 1): the whole scene shrunk to s in [1 - j, 1] and
    moved anywhere it still fits -- the same relation with a different look (where and how big).
    Drawn from its own stream, so j = 0 (the identity) leaves every other draw and byte as it was."""
    if not 0.0 <= layout_jitter < 1.0:
        raise ValueError("layout_jitter must be in [0, 1)")
    if layout_jitter == 0.0:
        return 1.0, 0.0, 0.0
    rng = random.Random(derive("layout", seed, name))
    z = rng.uniform(1.0 - layout_jitter, 1.0)
    return z, rng.uniform(0.0, 1.0 - z), rng.uniform(0.0, 1.0 - z)


def _build(seed: int, kind: str, template: str | None, size: int, attrs: Attributes, key: str,
           layout_jitter: float = 0.0) -> SyntheticImage:
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    rng = random.Random(derive("render", seed, template or kind))
    zoom = layout_zoom(seed, template or kind, layout_jitter)
    if template is not None:
        tpl = TEMPLATES[template]
        image, details, phrase = tpl.render(rng, attrs, size, zoom)
        caption: str | None = tpl.anonymous_caption
    else:
        canvas = Canvas(size, attrs.background, zoom)
        details, phrase = _NON_RELATIONAL[kind](rng, attrs, canvas)
        details["layout_bbox"] = canvas.layout_bbox()
        image, caption = canvas.finish(), None
    attributes: dict[str, Any] = {
        "shape": attrs.shape,
        "color": attrs.color,
        "shapes": [attrs.shape],
        "colors": [attrs.color],
        "background": attrs.background.to_dict(),
        "scale": rounded(attrs.scale),
        "angle": rounded(attrs.angle),
        "jitter": rounded(attrs.jitter),
    }
    attributes.update(details)
    if layout_jitter:  # positions above are in the scene's own unit square; the bbox is in the image
        attributes["layout_zoom"] = [rounded(v) for v in zoom]
    alt_text = f"{phrase} on {attrs.background.describe()}"
    return SyntheticImage(key, image, template is not None, template, attributes, alt_text, caption, kind)


def generate_image(seed: int, template: str | None = None, *, size: int = 256, kind: str | None = None,
                   layout_jitter: float = 0.0) -> SyntheticImage:
    """One image. ``template`` forces that relation; ``kind`` is "relational" (a template drawn from
    the seed), "single" or "clutter". With neither given the image is relational. ``layout_jitter``
    (default 0: off) shrinks and moves the whole scene at random (see :func:`layout_zoom`)."""
    if template is not None:
        if template not in TEMPLATES:
            raise KeyError(f"unknown template {template!r}; known: {sorted(TEMPLATES)}")
        if kind not in (None, "relational"):
            raise ValueError(f"template {template!r} given with non-relational kind {kind!r}")
        kind = "relational"
    elif kind is None or kind == "relational":
        kind = "relational"
        names = tuple(TEMPLATES)
        template = names[random.Random(derive("template", seed)).randrange(len(names))]
    elif kind not in _NON_RELATIONAL:
        raise ValueError(f"unknown kind {kind!r}; expected 'relational' or one of {NON_RELATIONAL_KINDS}")
    key = f"{template or kind}-{seed:06d}"
    return _build(seed, kind, template, size, sample_attributes(seed), key, layout_jitter)


def generate_pool(n: int, *, seed: int = 0, relational_fraction: float = 0.1, size: int = 256) -> Iterator[SyntheticImage]:
    """n images, round(n * relational_fraction) of them relational (templates balanced), the rest
    split between single objects and clutter; positions shuffled. Lazy: images render on demand."""
    if not 0.0 <= relational_fraction <= 1.0:
        raise ValueError("relational_fraction must be in [0, 1]")
    if n > _POOL_SEED_STRIDE:
        raise ValueError(f"pools are limited to {_POOL_SEED_STRIDE} images")
    rng = random.Random(derive("pool", seed))
    n_rel = round(n * relational_fraction)
    flags = [True] * n_rel + [False] * (n - n_rel)
    rng.shuffle(flags)
    order: list[str] = []
    while len(order) < n_rel:  # shuffled round-robin: every template equally represented
        block = list(TEMPLATES)
        rng.shuffle(block)
        order.extend(block)
    plan = []
    rel_iter = iter(order)
    for is_rel in flags:
        plan.append(("relational", next(rel_iter)) if is_rel else (rng.choice(NON_RELATIONAL_KINDS), None))

    def _items() -> Iterator[SyntheticImage]:
        for i, (kind, template) in enumerate(plan):
            yield generate_image(seed * _POOL_SEED_STRIDE + i, template, size=size, kind=kind)

    return _items()


def generate_group(template: str, n_members: int, *, seed: int, size: int = 256,
                   layout_jitter: float = 0.0) -> list[SyntheticImage]:
    """n_members images of one relation with shapes and colours cycled without repeats (as far as
    the palettes allow): a seed group whose only common factor is the relation. ``layout_jitter``
    as in :func:`generate_image`."""
    if template not in TEMPLATES:
        raise KeyError(f"unknown template {template!r}")
    rng = random.Random(derive("group", template, seed))
    shapes, colors = list(SHAPES), list(COLORS)
    rng.shuffle(shapes)
    rng.shuffle(colors)
    members = []
    for j in range(n_members):
        member_seed = derive("group-member", template, seed, j) % 10**9
        attrs = sample_attributes(member_seed, shape=shapes[j % len(shapes)], color=colors[j % len(colors)])
        key = f"{template}-group{seed}-{j:02d}"
        members.append(_build(member_seed, "relational", template, size, attrs, key, layout_jitter))
    return members


def png_bytes(image: Image.Image) -> bytes:
    """PNG without time-dependent chunks: same pixels, same bytes. Level 1 encodes ~4x faster than
    Pillow's default for files only ~15% larger (flat synthetic art compresses well anyway)."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def write_pool(out_dir: Path, items: Iterable[SyntheticImage]) -> Path:
    """Write <key>.png files and the manifest (one sorted-key JSON line per image); returns the
    manifest path. Deterministic bytes for deterministic items."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines, seen = [], set()
    for item in items:
        if item.key in seen:
            raise ValueError(f"duplicate key {item.key!r}")
        seen.add(item.key)
        (out_dir / f"{item.key}.png").write_bytes(png_bytes(item.image))
        lines.append(json.dumps(item.record(), sort_keys=True, ensure_ascii=False))
    manifest = out_dir / MANIFEST_NAME
    manifest.write_bytes("".join(line + "\n" for line in lines).encode("utf-8"))
    return manifest


def read_manifest(path: Path) -> list[dict[str, Any]]:
    """The records of a manifest written by :func:`write_pool`."""
    text = Path(path).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]
