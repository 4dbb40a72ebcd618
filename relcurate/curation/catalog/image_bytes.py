"""Read-side helpers the web UI needs beyond browse.py, kept here so they are tested without it."""
from __future__ import annotations

from io import BytesIO
from pathlib import Path

from PIL import Image as PILImage
from PIL import ImageOps

from relcurate.db.models import ImageStatus

DISPLAY_MAX_SIDE = 1280
IMAGE_STATUSES: tuple[str, ...] = tuple(s.value for s in ImageStatus)


def thumbnail_bytes(thumb: Path | None) -> bytes | None:
    """The stored JPEG thumbnail (`ImageCard.thumb`), or None when there is none or it is gone."""
    if thumb is None:
        return None
    try:
        return thumb.read_bytes()
    except OSError:
        return None


def display_bytes(original: Path | None, thumb: Path | None = None,
                  max_side: int = DISPLAY_MAX_SIDE) -> bytes | None:
    """An upright RGB JPEG of the original (`ImageCard.original`), at most `max_side` px.

    Originals are kept byte for byte (and may be tens of megapixels, CMYK, 16-bit or animated);
    the browser gets the first frame, EXIF-rotated and downscaled. Falls back to the thumbnail.
    """
    if original is None:
        return thumbnail_bytes(thumb)
    try:
        with PILImage.open(original) as img:
            img.draft("RGB", (max_side, max_side))  # JPEG: decode at a reduced scale, much faster
            img.load()
            work = ImageOps.exif_transpose(img)
            if work.mode in ("RGBA", "LA", "PA") or (work.mode == "P" and "transparency" in work.info):
                rgba = work.convert("RGBA")
                flat = PILImage.new("RGB", rgba.size, (255, 255, 255))
                flat.paste(rgba, mask=rgba.getchannel("A"))
                work = flat
            elif work.mode != "RGB":
                work = work.convert("RGB")
            work.thumbnail((max_side, max_side), PILImage.Resampling.BICUBIC)
            out = BytesIO()
            work.save(out, "JPEG", quality=90)
            return out.getvalue()
    except (OSError, ValueError, PILImage.DecompressionBombError):
        return thumbnail_bytes(thumb)
