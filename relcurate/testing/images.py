"""Generators of test images: a folder of bad and awkward files, and realistic JPEGs for benchmarks.

A helper module (no tests here). Everything is deterministic and fast: the whole mixed folder is
written in well under a second, including a 30000x30000 "bomb" PNG of ~110 KB.
"""

from __future__ import annotations

import os
import struct
import zlib
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

OK = "ok"

# A directory symlink pointing at its own parent, created by make_mixed_folder (relative to root).
# A walk that follows directory symlinks never ends on it; os.walk(followlinks=False) lists it in
# `dirnames` and does not descend. It is not in the returned mapping: it is not a file.
LOOP_DIR_LINK = "bad/up"

# Relative name of the file whose name is not valid UTF-8 (as os.fsdecode renders it).
BAD_UTF8_NAME = os.fsdecode(b"awkward/bad\xff\xfename.png")


def realistic_rgb(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """HxWx3 uint8 with photo-like statistics: smooth structure, edges, shapes and sensor noise.

    Flat colours or pure white noise would make JPEG decoding unrealistically fast or slow.
    """
    w, h = size
    coarse = rng.integers(0, 256, (max(2, h // 48), max(2, w // 48), 3), dtype=np.uint8)
    base = np.asarray(Image.fromarray(coarse).resize((w, h), Image.Resampling.BICUBIC), dtype=np.int16)
    gx = np.linspace(-40, 40, w, dtype=np.float32)[None, :, None]
    gy = np.linspace(30, -30, h, dtype=np.float32)[:, None, None]
    img = Image.fromarray(np.clip(base + gx + gy, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(6, 14))):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(w // 20, w // 3)), y0 + int(rng.integers(h // 20, h // 3))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        else:
            draw.rectangle((x0, y0, x1, y1), fill=colour, outline=(0, 0, 0), width=3)
    noise = rng.normal(0, 6, (h, w, 1)).astype(np.float32)
    return np.clip(np.asarray(img, dtype=np.float32) + noise, 0, 255).astype(np.uint8)


def encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    out = BytesIO()
    img.save(out, fmt, **params)
    return out.getvalue()


def realistic_jpegs(n: int, size: tuple[int, int] = (1024, 768), seed: int = 0, quality: int = 90) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [encode(Image.fromarray(realistic_rgb(rng, size)), "JPEG", quality=quality) for _ in range(n)]


def make_jpeg_folder(root: Path, n: int, size: tuple[int, int] = (1024, 768), seed: int = 0) -> list[Path]:
    """Write `n` realistic JPEGs (deterministic for a given seed) into `root`; return their paths."""
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, data in enumerate(realistic_jpegs(n, size, seed)):
        path = root / f"img_{i:05d}.jpg"
        path.write_bytes(data)
        paths.append(path)
    return paths


def _png_chunk(tag: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", zlib.crc32(tag + payload))


def _png(width: int, height: int, bit_depth: int, colour_type: int, zlib_stream: bytes) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib_stream) + _png_chunk(b"IEND", b"")


def bomb_png_bytes(width: int = 30_000, height: int = 30_000) -> bytes:
    """A valid, all-black 1-bit PNG of width x height that is tiny on disk (~110 KB for 30000^2).

    The ~112 MB of zero scanlines are never materialised: deflate with a full flush after each
    1 MiB chunk resets the compressor's history, so every chunk compresses to the same bytes and
    is repeated; the Adler-32 of n zero bytes is computed in closed form.
    """
    raw_len = height * (1 + (width + 7) // 8)  # each row: filter byte 0 + packed bits, all zero
    chunk_len = 1 << 20
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)  # raw deflate; we write the zlib wrapper
    zeros = bytes(chunk_len)
    first = comp.compress(zeros) + comp.flush(zlib.Z_FULL_FLUSH)
    repeat = comp.compress(zeros) + comp.flush(zlib.Z_FULL_FLUSH)
    n_full, rest = divmod(raw_len, chunk_len)
    if n_full == 0:
        body = zlib.compress(bytes(raw_len), 9)[2:-4]
    else:
        tail = comp.compress(bytes(rest)) + comp.flush(zlib.Z_FINISH)
        assert first == repeat  # history reset makes every chunk compress identically
        body = first + repeat * (n_full - 1) + tail
    adler = ((raw_len % 65521) << 16) | 1  # Adler-32 of raw_len zero bytes
    return _png(width, height, 1, 0, b"\x78\xda" + body + struct.pack(">I", adler))


def png16_rgb_bytes(rgb16: np.ndarray) -> bytes:
    """A 48-bit (16 bits per channel) RGB PNG; Pillow can read these but not write them."""
    h, w, _ = rgb16.shape
    rows = np.zeros((h, 1 + w * 6), dtype=np.uint8)
    rows[:, 1:] = rgb16.astype(">u2").view(np.uint8).reshape(h, w * 6)
    return _png(w, h, 16, 2, zlib.compress(rows.tobytes(), 6))


def exif_rotated_jpeg(orientation: int = 6, size: tuple[int, int] = (320, 200)) -> bytes:
    """A non-square JPEG stored sideways with an EXIF orientation tag; red marker top-left."""
    img = Image.new("RGB", size, (40, 90, 200))
    ImageDraw.Draw(img).rectangle((0, 0, size[0] // 3, size[1] // 3), fill=(230, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(img, "JPEG", quality=92, exif=exif.tobytes())


def _frames(rng: np.random.Generator, n: int, size: tuple[int, int]) -> list[Image.Image]:
    return [Image.fromarray(realistic_rgb(rng, size)) for _ in range(n)]


def _awkward_files(rng: np.random.Generator) -> dict[str, bytes]:
    """Valid but unusual images that must be accepted, keyed by relative path."""
    rgb = Image.fromarray(realistic_rgb(rng, (160, 120)))
    gradient16 = np.tile(np.linspace(0, 65535, 160, dtype=np.uint16), (120, 1))
    rgb16 = np.stack([gradient16, gradient16[:, ::-1], np.full_like(gradient16, 30000)], axis=-1)
    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=32)
    palette.info["transparency"] = 0
    la = Image.merge("LA", (rgb.convert("L"), Image.linear_gradient("L").resize(rgb.size)))
    rgba = rgb.copy()
    rgba.putalpha(Image.linear_gradient("L").rotate(90).resize(rgb.size))
    frames = _frames(rng, 3, (96, 64))
    return {
        "awkward/cmyk.jpg": encode(rgb.convert("CMYK"), "JPEG", quality=90),
        "awkward/gray16.png": encode(Image.fromarray(gradient16), "PNG"),
        "awkward/rgb16.png": png16_rgb_bytes(rgb16),
        "awkward/animated.gif": encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0),
        "awkward/animated.webp": encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=100),
        "awkward/animated.png": encode(frames[0], "PNG", save_all=True, append_images=frames[1:], duration=100),
        "awkward/exif_rot6.jpg": exif_rotated_jpeg(6),
        "awkward/palette_transparent.png": encode(palette, "PNG"),
        "awkward/la.png": encode(la, "PNG"),
        "awkward/rgba.png": encode(rgba, "PNG"),
        "awkward/onebit.png": encode(rgb.convert("1"), "PNG"),
        "awkward/photo.webp": encode(rgb, "WEBP", quality=85),
        "awkward/photo.bmp": encode(rgb, "BMP"),
        "awkward/photo.tiff": encode(rgb, "TIFF"),
        "awkward/mislabelled_png.jpg": encode(rgb, "PNG"),  # extension lies; content is what counts
    }


def make_mixed_folder(root: Path) -> dict[str, str]:
    """Create a tree of good, awkward and bad files under `root`.

    Returns relative path -> expected outcome: "ok" or the `Rejected.reason` code. Keys use "/" and
    are `os.fsdecode`d, so `os.fsencode(key)` gives the exact on-disk bytes (one name is not
    valid UTF-8: see BAD_UTF8_NAME). The directory symlink loop LOOP_DIR_LINK is not listed.
    """
    rng = np.random.default_rng(1234)
    root = Path(root)
    for sub in ("good", "awkward", "bad"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    expected: dict[str, str] = {}

    def write(rel: str, data: bytes, outcome: str) -> None:
        (root / rel).write_bytes(data)
        expected[rel] = outcome

    photos = [Image.fromarray(realistic_rgb(rng, (200, 150))) for _ in range(3)]
    write("good/normal_a.png", encode(photos[0], "PNG"), OK)
    write("good/normal_b.jpg", encode(photos[1], "JPEG", quality=90), OK)
    write("normal_top.jpg", encode(photos[2], "JPEG", quality=90), OK)
    for rel, data in _awkward_files(rng).items():
        write(rel, data, OK)

    # The name is invalid UTF-8: only bytes paths (or surrogateescape str) can create/open it.
    bad_name = os.path.join(os.fsencode(root), os.fsencode(BAD_UTF8_NAME))
    fd = os.open(bad_name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(encode(photos[0].rotate(90, expand=True), "PNG"))
    expected[BAD_UTF8_NAME] = OK

    noisy = Image.fromarray(rng.integers(0, 256, (200, 260, 3), dtype=np.uint8))
    png, jpeg = encode(noisy, "PNG"), encode(noisy, "JPEG", quality=90)
    write("bad/truncated.png", png[: len(png) // 2], "truncated")
    write("bad/truncated.jpg", jpeg[: len(jpeg) // 2], "truncated")
    write("bad/empty.jpg", b"", "empty")
    write("bad/page.jpg", b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body>gone</body></html>\n", "not_an_image")
    write("bad/bomb.png", bomb_png_bytes(30_000, 30_000), "decompression_bomb")
    write("bad/pixel.gif", encode(Image.new("P", (1, 1)), "GIF"), "too_small")  # a tracking pixel
    write("bad/notes.ppm", encode(photos[1], "PPM"), "unsupported_format")

    # Two file symlinks pointing at each other: opening either fails with ELOOP.
    os.symlink("loop_b.jpg", root / "bad" / "loop_a.jpg")
    os.symlink("loop_a.jpg", root / "bad" / "loop_b.jpg")
    expected["bad/loop_a.jpg"] = "unreadable"
    expected["bad/loop_b.jpg"] = "unreadable"
    os.symlink("..", root / LOOP_DIR_LINK, target_is_directory=True)
    return expected


def make_near_copies_folder(root: Path, size: tuple[int, int] = (160, 120), seed: int = 7) -> Path:
    """p0..p2.jpg (distinct) plus two near copies of p0: p0_small.jpg (resized, re-encoded at
    JPEG quality 60) and p0_bright.png (10 % brighter). For near-duplicate tests."""
    from PIL import ImageEnhance

    root.mkdir(parents=True, exist_ok=True)
    for i, data in enumerate(realistic_jpegs(3, size, seed=seed)):
        (root / f"p{i}.jpg").write_bytes(data)
    im = Image.open(root / "p0.jpg").convert("RGB")
    im.resize((size[0] * 3 // 4, size[1] * 3 // 4)).save(root / "p0_small.jpg", "JPEG", quality=60)
    ImageEnhance.Brightness(im).enhance(1.1).save(root / "p0_bright.png")
    return root
