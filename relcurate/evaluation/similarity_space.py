"""The paper's similarity-space figure for one query: every other image placed by attribute
similarity to the query (x) and relational similarity (y), each min-max normalised to [0, 1];
the four regions named. As in the reference: at most 4000 images, a 20 x 10 grid with at most
5 (seeded) random images per cell, so dense regions do not hide sparse ones.

Charts are altair: interactive in the app (hover shows the image: a thumbnail as an inline
data URI in the tooltip, never a /media/ URL; click selects it), PNG/SVG from the CLI through
vl-convert.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from relcurate.evaluation.spaces import PairedSpaces, SpaceUnavailable, paired_spaces
from relcurate.workspace import Workspace

MAX_POINTS = 4000
GRID = (20, 10)  # cells along x (attribute), y (relational)
PER_CELL = 5

# (attribute high?, relational high?) -> region name
REGIONS = {
    (False, True): "same logic, look different",  # the interesting one: what relsim adds
    (True, True): "same logic, look alike",
    (True, False): "look alike, different logic",
    (False, False): "unrelated",
}


@dataclass
class SpacePoints:
    query: int
    ids: np.ndarray
    x: np.ndarray  # normalised attribute similarity
    y: np.ndarray  # normalised relational similarity
    raw_x: np.ndarray
    raw_y: np.ndarray
    relational_label: str
    attribute_label: str

    def regions(self) -> list[str]:
        return [REGIONS[(bool(a >= 0.5), bool(b >= 0.5))] for a, b in zip(self.x, self.y)]

    def rows(self) -> list[dict]:
        return [{"image_id": int(i), "attribute": float(a), "relational": float(b), "attribute_raw": float(ra),
                 "relational_raw": float(rb), "region": reg}
                for i, a, b, ra, rb, reg in zip(self.ids, self.x, self.y, self.raw_x, self.raw_y, self.regions())]


def _minmax(v: np.ndarray) -> np.ndarray:
    lo, hi = float(v.min()), float(v.max())
    return np.zeros_like(v) if hi - lo < 1e-12 else (v - lo) / (hi - lo)


def space_points(spaces: PairedSpaces, query: int, *, max_points: int = MAX_POINTS, grid: tuple[int, int] = GRID,
                 per_cell: int = PER_CELL, seed: int = 0) -> SpacePoints:
    where = np.flatnonzero(spaces.ids == int(query))
    if not len(where):
        raise SpaceUnavailable(f"image {query} is not embedded by both models")
    q = int(where[0])
    others = np.flatnonzero(np.arange(len(spaces.ids)) != q)
    raw_x = spaces.attribute[others] @ spaces.attribute[q]
    raw_y = spaces.relational[others] @ spaces.relational[q]
    x, y = _minmax(raw_x), _minmax(raw_y)
    cx = np.minimum((x * grid[0]).astype(int), grid[0] - 1)
    cy = np.minimum((y * grid[1]).astype(int), grid[1] - 1)
    rng = np.random.default_rng([seed, int(query)])
    keep = []
    for cell in np.unique(cx * grid[1] + cy):
        members = np.flatnonzero(cx * grid[1] + cy == cell)
        keep.extend(rng.permutation(members)[:per_cell].tolist())
    keep = np.sort(np.asarray(keep, dtype=np.int64))[:max_points]
    return SpacePoints(int(query), spaces.ids[others][keep], x[keep], y[keep], raw_x[keep], raw_y[keep],
                       spaces.relational_label, spaces.attribute_label)


def similarity_space(ws: Workspace, query: int, *, relational: str, attribute: str, **kw) -> SpacePoints:
    return space_points(paired_spaces(ws, relational, attribute), query, **kw)


def thumbnail_uri(data: bytes | None) -> str | None:
    """Inline `data:` URI of thumbnail bytes for a tooltip (JPEG/PNG/WEBP sniffed from the header)."""
    if not data:
        return None
    mime = ("image/png" if data[:8] == b"\x89PNG\r\n\x1a\n" else "image/webp" if data[8:12] == b"WEBP"
            else "image/jpeg")
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def space_chart(points: SpacePoints, *, thumbnails: Mapping[int, str | None] | None = None,
                interactive: bool = True, title: str | None = None):
    """An altair chart: quadrant lines at 0.5, region labels, a point per image (tooltip with the
    image when `thumbnails` maps ids to data URIs), a single-click selection named "pick"."""
    import altair as alt
    import pandas as pd

    rows = points.rows()
    for r in rows:
        r["image"] = (thumbnails or {}).get(r["image_id"])  # vega-tooltip draws an "image" field as <img>
    df = pd.DataFrame(rows)
    tooltip = ["image_id", "region", alt.Tooltip("attribute_raw", format=".3f"),
               alt.Tooltip("relational_raw", format=".3f")]
    if thumbnails:
        tooltip.append("image")
    x = alt.X("attribute", title=f"attribute similarity ({points.attribute_label})", scale=alt.Scale(domain=[0, 1]))
    y = alt.Y("relational", title=f"relational similarity ({points.relational_label})", scale=alt.Scale(domain=[0, 1]))
    base = alt.Chart(df).mark_circle(size=60, opacity=0.8).encode(x=x, y=y, color=alt.Color("region", legend=None),
                                                                  tooltip=tooltip)
    if interactive:
        pick = alt.selection_point(name="pick", fields=["image_id"], on="click")
        base = base.add_params(pick)
    labels = pd.DataFrame([{"attribute": 0.25, "relational": 0.97, "text": REGIONS[(False, True)]},
                           {"attribute": 0.75, "relational": 0.97, "text": REGIONS[(True, True)]},
                           {"attribute": 0.75, "relational": 0.03, "text": REGIONS[(True, False)]},
                           {"attribute": 0.25, "relational": 0.03, "text": REGIONS[(False, False)]}])
    text = alt.Chart(labels).mark_text(fontWeight="bold", opacity=0.6).encode(x="attribute", y="relational", text="text")
    rules = alt.Chart(pd.DataFrame({"v": [0.5]}))
    chart = (base + text + rules.mark_rule(strokeDash=[4, 4]).encode(x="v")
             + rules.mark_rule(strokeDash=[4, 4]).encode(y="v"))
    return chart.properties(width=560, height=420, title=title or f"similarity space of image #{points.query}")


def save_chart(chart, path: str | Path) -> Path:
    """PNG or SVG (by suffix) through vl-convert; HTML works without it."""
    path = Path(path)
    if path.suffix.lower() not in (".png", ".svg", ".html"):
        raise ValueError(f"{path}: write .png, .svg or .html")
    path.parent.mkdir(parents=True, exist_ok=True)
    chart.save(str(path))
    return path
