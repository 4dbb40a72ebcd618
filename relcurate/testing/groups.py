"""Workspace content for the seed-group and caption tests (a helper module, no tests here).

Three colour families of small PNGs (reds, blues, greens; each image a different shade and
pattern, so every image has its own pHash) ingested from a reference-format JSONL, so each has an
alt-text; one more folder image with no alt-text; one quarantined file. Builds in well under a
second on SQLite.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from sqlmodel import select

from relcurate.curation.ingest.pipeline import ingest_source
from relcurate.db.engine import read_scope
from relcurate.db.models import Image, ImageSource
from relcurate.workspace import Workspace
from relcurate.testing.apptest import as_displayed, goto

FAMILIES = {"red": (200, 40, 40), "blue": (40, 60, 200), "green": (40, 170, 60)}
# Every alt-text of a family shares its first words; the object after them differs per image
# (a caption naming one of those objects leaks a member's content).
ALT_TEXTS = {
    "red": "a ripe apple next to a",
    "blue": "a sailing boat near a",
    "green": "a frog sitting on a",
}
THINGS = ("candle", "teapot", "guitar", "lamp", "clock")
PER_FAMILY = 5


def _png(path: Path, base: tuple[int, int, int], seed: int) -> None:
    """A shaded field of `base` with a few brighter stripes placed by `seed` (distinct pHashes)."""
    rng = np.random.default_rng(seed)
    h, w = 48, 64
    img = np.empty((h, w, 3), np.float32)
    img[:] = np.asarray(base, np.float32) * rng.uniform(0.7, 1.0)
    for _ in range(3):
        if rng.random() < 0.5:
            x = int(rng.integers(0, w - 8))
            img[:, x:x + 8] = np.minimum(img[:, x:x + 8] * 1.3 + 30, 255)
        else:
            y = int(rng.integers(0, h - 6))
            img[y:y + 6] = np.minimum(img[y:y + 6] * 1.3 + 30, 255)
    img += rng.normal(0, 4, img.shape)
    PILImage.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)


def populate(ws: Workspace, tmp: Path) -> dict[str, int]:
    """Ingest the test images; returns key -> image id ("red0".."green4", "plain", "broken")."""
    folder = tmp / "ref-images"
    folder.mkdir(parents=True, exist_ok=True)
    lines, keys = [], {}
    seed = 0
    for fam, colour in FAMILIES.items():
        for i in range(PER_FAMILY):
            key = f"{fam}{i}"
            _png(folder / f"{key}.png", colour, seed)
            seed += 1
            lines.append(json.dumps({"image_hash": key, "caption": f"{ALT_TEXTS[fam]} {THINGS[i]} ({key})"}))
            keys[f"file:{key}"] = key
    (tmp / "ref.jsonl").write_text("\n".join(lines) + "\n")
    ingest_source(ws, tmp / "ref.jsonl", image_folder=folder, workers=1)

    plain = tmp / "plain"
    plain.mkdir(exist_ok=True)
    _png(plain / "plain.png", (128, 128, 128), 99)
    (plain / "broken.png").write_bytes(b"not an image at all")
    ingest_source(ws, plain, workers=1)

    ids: dict[str, int] = {}
    with read_scope(ws.engine) as s:
        for image_id, alt, uri in s.exec(select(Image.id, ImageSource.alt_text, ImageSource.uri)
                                         .join(ImageSource, ImageSource.image_id == Image.id)):
            if alt and "(" in alt:
                ids[alt.rsplit("(", 1)[1].rstrip(")")] = image_id
            elif uri.endswith("plain.png"):
                ids["plain"] = image_id
            elif uri.endswith("broken.png"):
                ids["broken"] = image_id
    assert len(ids) == len(FAMILIES) * PER_FAMILY + 2, ids
    return ids


# --- AppTest helpers (the app runs in-process; no browser) ------------------------------------

APP = Path(__file__).resolve().parents[1] / "labeling_ui" / "app.py"  # relcurate/labeling_ui/app.py


def open_app(ws: Workspace, monkeypatch, username: str, password: str, page: str | None = None):
    """A fresh AppTest session signed in as `username`, optionally on the page at /`page`."""
    from relcurate.testing.apptest import signed_in

    at = signed_in(ws.root, monkeypatch, username, password)
    assert not at.exception, at.exception
    return goto(at, page) if page else at


def shown_text(at) -> str:
    """All text elements of the last run, as displayed (escapes resolved)."""
    kinds = ("markdown", "caption", "title", "subheader", "error", "warning", "info", "success")
    return "\n".join(as_displayed(str(e.value)) for kind in kinds for e in getattr(at, kind))
