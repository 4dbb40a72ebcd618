"""relcurate.curation.catalog.image_bytes: thumbnail and large-view bytes for the web UI."""
from __future__ import annotations

from io import BytesIO

import numpy as np
from PIL import Image as PILImage

from relcurate.curation.catalog.image_bytes import IMAGE_STATUSES, display_bytes, thumbnail_bytes


def _open(data: bytes) -> PILImage.Image:
    img = PILImage.open(BytesIO(data))
    img.load()
    return img


def test_display_bytes_downscales_and_keeps_the_aspect(tmp_path):
    path = tmp_path / "big.png"
    PILImage.fromarray(np.zeros((1000, 3000, 3), np.uint8)).save(path)
    img = _open(display_bytes(path, max_side=600))
    assert img.format == "JPEG" and img.mode == "RGB" and img.size == (600, 200)


def test_display_bytes_applies_exif_orientation(tmp_path):
    path = tmp_path / "rot.jpg"
    exif = PILImage.Exif()
    exif[0x0112] = 6  # stored landscape, displayed portrait
    PILImage.new("RGB", (400, 200), (200, 10, 10)).save(path, exif=exif)
    assert _open(display_bytes(path)).size == (200, 400)


def test_display_bytes_flattens_transparency_on_white(tmp_path):
    path = tmp_path / "clear.png"
    PILImage.new("RGBA", (20, 20), (0, 0, 0, 0)).save(path)
    img = _open(display_bytes(path))
    assert img.mode == "RGB" and min(img.getpixel((10, 10))) > 240


def test_display_bytes_falls_back_to_the_thumbnail(tmp_path):
    thumb = tmp_path / "t.jpg"
    PILImage.new("RGB", (8, 8)).save(thumb)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    assert display_bytes(broken, thumb) == thumb.read_bytes()
    assert display_bytes(None, thumb) == thumb.read_bytes()
    assert display_bytes(tmp_path / "gone.png", None) is None
    assert thumbnail_bytes(None) is None and thumbnail_bytes(tmp_path / "gone.jpg") is None


def test_image_statuses():
    assert IMAGE_STATUSES == ("ok", "pending_download", "quarantined")
