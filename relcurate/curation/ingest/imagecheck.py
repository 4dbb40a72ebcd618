"""Verify one image completely and derive what ingest stores about it.

`check_image_bytes` / `check_image_file` are pure functions meant to run in a process pool: they
never raise for a bad file, they return a picklable `CheckedImage` or `Rejected`.

What "verified" means here:
* the header is parsed by one of the `ACCEPTED_FORMATS` plugins (anything else is rejected);
* the declared pixel count is checked *before* any pixel is decoded (decompression bombs);
* the first frame is decoded in full (`load()`, not just `verify()`), with truncated data an error;
  JPEGs are decoded with libjpeg's DCT scaling (`draft`): the whole entropy-coded stream is still
  decoded (truncation and corrupt data are caught as before), only the inverse DCT runs smaller.

Speed: the only full-resolution work is the decode itself (for JPEG, not even that). The thumbnail is produced from the
decoded pixels with Pillow's integer `reduce()` (see `_shrink`), EXIF orientation is applied to
the small thumbnail rather than the full image, and the perceptual hash is computed from the
thumbnail. `decode_only` is the baseline the ingest benchmark compares with.

Global Pillow state: `Image.MAX_IMAGE_PIXELS` is left alone; `max_pixels` is our own, stricter
check. Pillow still raises `DecompressionBombError` on its own above 2 * MAX_IMAGE_PIXELS
(~179 Mpx by default), so a `max_pixels` above that needs the process-wide setting raised too.
`ImageFile.LOAD_TRUNCATED_IMAGES` is only touched if some caller set it to True: then it is forced
to False for the duration of the decode and restored afterwards (not thread-safe, but the default
path changes nothing).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from io import BytesIO

import numpy as np
from PIL import ExifTags, Image, ImageFile, UnidentifiedImageError

# Pillow format name -> file extension we store the original under. An allowlist: Pillow can
# parse dozens of formats (some, like TGA, have no magic number and match random bytes), but a
# curation dataset only needs the ones browsers and training loaders read.
ACCEPTED_FORMATS: dict[str, str] = {
    "JPEG": "jpg",
    "MPO": "jpg",  # phone cameras: a JPEG with extra frames (depth/stereo)
    "PNG": "png",
    "GIF": "gif",
    "WEBP": "webp",
    "BMP": "bmp",
    "TIFF": "tiff",
    "AVIF": "avif",
}

# Plugins to try in Image.open: MPO has no opener of its own (the JPEG factory returns MPO files).
_OPEN_WITH: tuple[str, ...] = tuple(f for f in ACCEPTED_FORMATS if f != "MPO")

# Machine codes for `Rejected.reason`.
REJECT_REASONS: frozenset[str] = frozenset(
    {
        "empty",  # zero bytes
        "unreadable",  # the OS would not give us the bytes (missing, ELOOP, EACCES, a directory, a FIFO)
        "too_large",  # file bigger than check_image_file's max_bytes
        "not_an_image",  # no Pillow plugin recognises it (HTML saved as .jpg, ...)
        "unsupported_format",  # an image, but not one of ACCEPTED_FORMATS (PSD, TGA, PPM, ...)
        "decompression_bomb",  # declares more pixels than allowed
        "too_small",  # a side shorter than min_side (tracking pixels, spacers)
        "truncated",  # data ends before the image does
        "corrupt",  # the decoder failed for another reason
        "unsupported_mode",  # decoded, but no sane way to make an RGB thumbnail
    }
)

DEFAULT_MAX_PIXELS = 64_000_000
DEFAULT_THUMB_SIZE = 256
DEFAULT_MIN_SIDE = 8
DEFAULT_MAX_BYTES = 512 * 1024 * 1024
THUMB_FORMAT = "JPEG"
THUMB_QUALITY = 80

_ORIENTATION_TAG = ExifTags.Base.Orientation
# EXIF orientation -> the transpose that displays it upright (same table as ImageOps.exif_transpose).
_TRANSPOSE_FOR_ORIENTATION: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_SIDES = frozenset({5, 6, 7, 8})


@dataclass(frozen=True, slots=True)
class CheckedImage:
    """A fully decoded, accepted image. Picklable (crosses the process-pool boundary)."""

    sha256: str  # of the original bytes, which the caller stores unchanged
    size_bytes: int
    format: str  # Pillow format name, e.g. "JPEG"
    ext: str  # "jpg", "png", ... (see ACCEPTED_FORMATS)
    width: int  # display size, i.e. after EXIF orientation
    height: int
    mode: str  # Pillow mode of the decoded first frame, e.g. "RGB", "CMYK", "I;16", "P"
    frames: int  # >1 for animated GIF/WebP/APNG, multi-page TIFF, MPO
    phash: str  # 16 hex digits: imagehash.phash of the upright thumbnail (see _phash_source)
    thumbnail: bytes = field(repr=False)  # JPEG, RGB, upright, longest side <= thumb_size
    orientation: int = 1  # EXIF orientation that was applied (1 = none)


@dataclass(frozen=True, slots=True)
class Rejected:
    """Why a file was not accepted. `sha256` is None when the bytes could not be read."""

    sha256: str | None
    size_bytes: int
    reason: str  # one of REJECT_REASONS
    detail: str  # a sentence for humans (quarantine listing, logs)


def decode_only(data: bytes) -> None:
    """Baseline for benchmarks: what plain Pillow does to fully decode the first frame."""
    with Image.open(BytesIO(data)) as img:
        img.load()


def check_image_bytes(
    data: bytes,
    *,
    name: str = "",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    thumb_size: int = DEFAULT_THUMB_SIZE,
    min_side: int = DEFAULT_MIN_SIDE,
) -> CheckedImage | Rejected:
    """Fully decode `data` and return its metadata + thumbnail, or why it was rejected."""
    label = name or "image"
    if not data:
        return Rejected(None, 0, "empty", f"{label}: the file is empty (0 bytes).")
    sha = hashlib.sha256(data).hexdigest()

    def reject(reason: str, detail: str) -> Rejected:
        return Rejected(sha, len(data), reason, f"{label}: {detail}")

    try:
        with _truncated_images_are_errors():
            return _check(data, sha, label, reject, max_pixels, thumb_size, min_side)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return reject("decompression_bomb", str(exc))
    except MemoryError:
        return reject("decompression_bomb", "decoding ran out of memory.")
    except Exception as exc:  # a worker must never die on a hostile file
        return reject(_classify_decode_error(exc, data), f"cannot decode ({type(exc).__name__}: {exc}).")


def check_image_file(
    path: str | os.PathLike[str] | os.PathLike[bytes] | bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    **check_kwargs: int,
) -> CheckedImage | Rejected:
    """Read `path` (see `read_image_file`) and `check_image_bytes` it; never raises for OS errors."""
    data = read_image_file(path, max_bytes=max_bytes)
    if isinstance(data, Rejected):
        return data
    return check_image_bytes(data, name=display_name(path), **check_kwargs)


def read_image_file(
    path: str | os.PathLike[str] | os.PathLike[bytes] | bytes, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> bytes | Rejected:
    """The file's bytes, or `Rejected` ("unreadable" / "too_large", sha256 None) instead of OSError.

    Accepts bytes paths (names that are not valid UTF-8 must be walked as bytes, or as str with
    Python's surrogateescape, which `os.fsdecode` gives). Symlinks are followed; loops give ELOOP.
    Non-regular files (directories, FIFOs, devices) are rejected without reading: the file is opened
    with O_NONBLOCK so a FIFO cannot hang the worker (a plain `open(path, "rb")` would), then fstat-ed.
    """
    label = display_name(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        return Rejected(None, 0, "unreadable", f"{label}: cannot open ({_os_error_text(exc)}).")
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
            return Rejected(None, 0, "unreadable", f"{label}: {kind}.")
        if st.st_size > max_bytes:
            return Rejected(None, st.st_size, "too_large", f"{label}: {st.st_size} bytes exceeds the {max_bytes}-byte limit.")
        chunks = []
        remaining = max_bytes + 1  # one byte more than allowed tells us the file grew past the limit
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 24))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
    except OSError as exc:
        return Rejected(None, 0, "unreadable", f"{label}: read failed ({_os_error_text(exc)}).")
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > max_bytes:
        return Rejected(None, len(data), "too_large", f"{label}: exceeds the {max_bytes}-byte limit.")
    return data


# Rows 0..7 of the unnormalised DCT-II matrix for 32 samples (scipy.fftpack.dct's default type 2):
# y[k] = 2 * sum_n x[n] * cos(pi * k * (2n + 1) / 64). Only the 8x8 low frequencies are used.
_DCT_8x32 = 2.0 * np.cos(np.pi * np.arange(8)[:, None] * (2 * np.arange(32)[None, :] + 1) / 64.0)


def phash_hex(img: Image.Image) -> str:
    """`str(imagehash.phash(img))` (hash_size 8), computed with two small matrix products.

    Same steps as imagehash 4.3: greyscale, 32x32 Lanczos, 2-D DCT-II, top-left 8x8 against its
    median. imagehash's scipy + np.median calls cost more than the whole thumbnail resize here.
    Coefficients are rounded to 1e-6 so exact ties (flat or symmetric images) stay ties instead of
    depending on float rounding; apart from such ties the bits equal imagehash's.
    """
    grey = img if img.mode == "L" else img.convert("L")
    small = grey.resize((32, 32), Image.Resampling.LANCZOS)
    pixels = np.frombuffer(small.tobytes(), dtype=np.uint8).reshape(32, 32).astype(np.float64)
    low = np.round(_DCT_8x32 @ pixels @ _DCT_8x32.T, 6).ravel()
    ordered = np.sort(low)
    median = (ordered[31] + ordered[32]) / 2
    return np.packbits(low > median).tobytes().hex()


def _phash_source(thumb: Image.Image) -> Image.Image:
    """Greyscale thumbnail box-reduced to >= 64 px on its short side (2x the hash's 32x32 grid).

    imagehash's 8x Lanczos downscale of a 256-px thumbnail costs more than the rest of the
    thumbnail path; after this reduce it is ~4x cheaper. On 200 generated 1024x768 photos the
    result differs from imagehash.phash of the full-resolution image by 0.1 bits on average
    (max 2), while different photos are >= 14 bits apart.
    """
    grey = thumb.convert("L")
    factor = min(grey.size) // 64
    return grey.reduce(factor) if factor >= 2 else grey


def display_name(path: str | os.PathLike[str] | os.PathLike[bytes] | bytes) -> str:
    """A printable, UTF-8-encodable rendering of a path (undecodable bytes become \\xNN)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


# --------------------------------------------------------------------------------------------
# internals


def _check(data, sha, label, reject, max_pixels, thumb_size, min_side) -> CheckedImage | Rejected:
    try:
        img = Image.open(BytesIO(data), formats=_OPEN_WITH)
    except UnidentifiedImageError:
        other = _identify_any_format(data)
        if other:
            return reject("unsupported_format", f"{other} images are not accepted (allowed: {', '.join(ACCEPTED_FORMATS)}).")
        return reject("not_an_image", "not a recognised image format.")
    with img:
        width, height = img.size
        # Header-only so far: reject oversized images before a single pixel is allocated.
        if width * height > max_pixels:
            return reject("decompression_bomb", f"declares {width}x{height} = {width * height} pixels (limit {max_pixels}).")
        if min(width, height) < min_side:
            return reject("too_small", f"{width}x{height} is smaller than {min_side} px on a side.")
        frames = int(getattr(img, "n_frames", 1))  # before load(): counting GIF frames seeks, and seeking back drops decoded pixels
        if img.format in ("JPEG", "MPO"):
            _draft_for_thumbnail(img, thumb_size)
        img.load()  # the decode of the first frame: the actual verification
        fmt, mode = img.format or "", img.mode
        orientation = _orientation(img)
        thumb = _make_thumbnail(img, thumb_size)
    if thumb is None:
        return reject("unsupported_mode", f"decoded, but mode {mode!r} cannot be rendered as RGB.")
    transpose = _TRANSPOSE_FOR_ORIENTATION.get(orientation)
    if transpose is not None:
        thumb = thumb.transpose(transpose)
        if orientation in _SWAPS_SIDES:
            width, height = height, width
    out = BytesIO()
    thumb.save(out, THUMB_FORMAT, quality=THUMB_QUALITY)
    return CheckedImage(
        sha256=sha,
        size_bytes=len(data),
        format=fmt,
        ext=ACCEPTED_FORMATS.get(fmt, fmt.lower()),
        width=width,
        height=height,
        mode=mode,
        frames=frames,
        phash=phash_hex(_phash_source(thumb)),
        thumbnail=out.getvalue(),
        orientation=orientation if transpose is not None else 1,
    )


def _draft_for_thumbnail(img: Image.Image, thumb_size: int) -> None:
    """Ask libjpeg for a DCT-scaled decode (1/2, 1/4, 1/8) still at least `thumb_size` on the
    longest side. It entropy-decodes the whole stream, so truncated or corrupt data fail exactly
    as in a full decode (a full decode catches no more corrupt pixels); only the inverse DCT and
    colour conversion run at the smaller size. The thumbnail is made from this decode."""
    w, h = img.size
    longest = max(w, h)
    if longest <= thumb_size:
        return
    want = (max(1, -(-w * thumb_size // longest)), max(1, -(-h * thumb_size // longest)))  # ceil
    try:
        img.draft(img.mode, want)
    except (ValueError, OSError):  # draft is an optimisation only: fall back to the full decode
        pass


def _make_thumbnail(img: Image.Image, thumb_size: int) -> Image.Image | None:
    """RGB thumbnail (not yet EXIF-rotated) from an already decoded image; None if hopeless."""
    try:
        work = _resizable(img)
    except (ValueError, OSError):
        return None
    work = _shrink(work, thumb_size)
    if work.mode in ("RGBA", "LA"):
        # Flatten transparency on white, the usual viewer background, so phash sees what people see.
        rgba = work.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return work if work.mode == "RGB" else work.convert("RGB")


def _shrink(img: Image.Image, max_side: int) -> Image.Image:
    """Fit within max_side x max_side, keeping the aspect ratio; never enlarges.

    The full-resolution pass is Pillow's integer box `reduce()` (the cheapest full-size operation
    there is: one read of the pixels); only a remaining factor below 2 is done with bicubic, on
    the small image. This is `thumbnail(reducing_gap=1.0)` without its extra same-size resample
    when the factor is a whole number (1024x768 -> 256x192), which is the common case.
    """
    w, h = img.size
    scale = max(w, h) / max_side
    if scale <= 1:
        return img
    target = (max(1, round(w / scale)), max(1, round(h / scale)))
    factor = int(scale)
    if factor >= 2:
        img = img.reduce(factor)
    if img.size != target:
        img = img.resize(target, Image.Resampling.BICUBIC)
    return img


def _resizable(img: Image.Image) -> Image.Image:
    """The image in a mode whose resize is meaningful: L, RGB, LA, RGBA or CMYK."""
    mode, info = img.mode, img.info
    if mode in ("RGB", "L"):
        return img.convert("RGBA") if "transparency" in info else img  # tRNS colour key
    if mode in ("RGBA", "LA", "CMYK"):
        return img  # CMYK is converted on the small thumbnail, which is cheaper
    if mode in ("P", "PA"):
        # Resizing palette indices would need NEAREST; expand to real colours first.
        return img.convert("RGBA" if mode == "PA" or "transparency" in info else "RGB")
    if mode == "1":
        return img.convert("L")
    if mode.startswith("I") or mode == "F":
        return _high_depth_to_l(img)
    if mode == "La":
        return img.convert("LA")
    return img.convert("RGBA" if "A" in mode or "a" in mode else "RGB")  # RGBX, RGBa, YCbCr, HSV, LAB


def _high_depth_to_l(img: Image.Image) -> Image.Image:
    """Scale 16/32-bit integer or float greyscale to 8 bits (Pillow's convert('L') clips at 255)."""
    a = np.asarray(img)
    if img.mode.startswith("I;16"):
        out = a >> 8
    else:
        finite = a[np.isfinite(a)] if a.dtype.kind == "f" else a
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        if a.dtype.kind != "f" and lo >= 0 and hi <= 255:
            out = a
        elif a.dtype.kind != "f" and lo >= 0 and hi <= 65535:
            out = a >> 8  # 16-bit data held in a 32-bit mode
        else:
            out = (np.nan_to_num(a.astype(np.float64), nan=lo) - lo) * (255.0 / max(hi - lo, 1e-12))
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8), "L")


def _orientation(img: Image.Image) -> int:
    try:
        value = img.getexif().get(_ORIENTATION_TAG, 1)
        return int(value) if int(value) in _TRANSPOSE_FOR_ORIENTATION else 1
    except Exception:  # malformed EXIF must not cost us an otherwise good image
        return 1


def _identify_any_format(data: bytes) -> str | None:
    """Name the format if Pillow knows it at all (only called on the rejection path)."""
    try:
        with Image.open(BytesIO(data)) as other:
            return other.format
    except Exception:
        return None


def _classify_decode_error(exc: BaseException, data: bytes) -> str:
    text = str(exc).lower()
    if "truncated" in text or isinstance(exc, EOFError):
        return "truncated"
    if "decompressed data too large" in text:  # PNG zTXt/iCCP bombs
        return "decompression_bomb"
    # WebP's decoder only says "could not create decoder object"; the RIFF header knows better.
    if data[:4] == b"RIFF" and int.from_bytes(data[4:8], "little") + 8 > len(data):
        return "truncated"
    return "corrupt"


def _os_error_text(exc: OSError) -> str:
    code = errno.errorcode.get(exc.errno or 0, "")
    return f"{code}: {exc.strerror}" if code else str(exc)


@contextlib.contextmanager
def _truncated_images_are_errors() -> Iterator[None]:
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    if not previous:
        yield  # the default: touch nothing
        return
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous
