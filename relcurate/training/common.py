"""Pieces the three trainers share: image loading from the store, held-out helpers."""
from __future__ import annotations

from typing import Sequence

from PIL import Image as PILImage

from relcurate.training.snapshot import Item
from relcurate.workspace import Workspace


def load_images(ws: Workspace, items: Sequence[Item]) -> list[PILImage.Image]:
    """RGB images of the items from the content-addressed store (a missing file names the item)."""
    out = []
    for it in items:
        path = ws.image_path(it.sha256, it.ext)
        try:
            with PILImage.open(path) as im:
                out.append(im.convert("RGB"))
        except OSError as exc:
            raise FileNotFoundError(f"image {it.image_id} ({path}) unreadable: {exc}") from exc
    return out


def chunks(seq: Sequence, n: int):
    for i in range(0, len(seq), n):
        yield seq[i:i + n]
