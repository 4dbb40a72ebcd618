"""relcurate.curation.ingest.imagecheck: full verification, thumbnails and phash of single images."""

from __future__ import annotations

import os
import pickle
import resource
import stat
from io import BytesIO
from pathlib import Path

import imagehash
import numpy as np
import pytest
from PIL import Image, ImageFile, ImageOps

from relcurate.curation.ingest.imagecheck import (
    REJECT_REASONS,
    CheckedImage,
    Rejected,
    check_image_bytes,
    check_image_file,
    decode_only,
    phash_hex,
    read_image_file,
)
from relcurate.testing.images import (
    BAD_UTF8_NAME,
    LOOP_DIR_LINK,
    OK,
    bomb_png_bytes,
    encode,
    make_mixed_folder,
    realistic_rgb,
)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("mixed")
    return root, make_mixed_folder(root)


@pytest.fixture(scope="module")
def results(mixed: tuple[Path, dict[str, str]]) -> dict[str, CheckedImage | Rejected]:
    root, expected = mixed
    return {rel: check_image_file(os.path.join(os.fsencode(root), os.fsencode(rel))) for rel in expected}


def outcome(result: CheckedImage | Rejected) -> str:
    return OK if isinstance(result, CheckedImage) else result.reason


def thumb_of(result: CheckedImage | Rejected) -> Image.Image:
    assert isinstance(result, CheckedImage), result
    img = Image.open(BytesIO(result.thumbnail))
    img.load()
    return img


def hamming(a: str, b: str) -> int:
    return bin(int(a, 16) ^ int(b, 16)).count("1")


def test_every_fixture_gets_its_expected_outcome(mixed, results) -> None:
    _, expected = mixed
    assert {rel: outcome(r) for rel, r in results.items()} == expected
    assert set(expected.values()) <= REJECT_REASONS | {OK}


def test_accepted_images_have_small_rgb_jpeg_thumbnails(mixed, results) -> None:
    root, _ = mixed
    accepted = {rel: r for rel, r in results.items() if isinstance(r, CheckedImage)}
    assert len(accepted) >= 15
    for rel, r in accepted.items():
        thumb = thumb_of(r)
        assert (thumb.format, thumb.mode) == ("JPEG", "RGB"), rel
        assert max(thumb.size) <= 256, rel
        # Same aspect as the reported display size (within rounding).
        assert abs(thumb.width / thumb.height - r.width / r.height) < 0.05, rel
        assert len(r.phash) == 16 and int(r.phash, 16) >= 0, rel
        data = Path(os.fsdecode(os.path.join(os.fsencode(root), os.fsencode(rel)))).read_bytes()
        assert r.size_bytes == len(data)
        assert r.ext in {"jpg", "png", "gif", "webp", "bmp", "tiff"}


def test_large_image_thumbnail_fits_256() -> None:
    rgb = realistic_rgb(np.random.default_rng(7), (1000, 750))  # not a whole multiple of 256
    r = check_image_bytes(encode(Image.fromarray(rgb), "JPEG", quality=90))
    assert isinstance(r, CheckedImage)
    assert (r.width, r.height) == (1000, 750)
    assert thumb_of(r).size == (256, 192)


def test_exif_orientation_swaps_display_size_and_rotates_thumbnail(mixed, results) -> None:
    root, _ = mixed
    r = results["awkward/exif_rot6.jpg"]
    assert isinstance(r, CheckedImage)
    with Image.open(root / "awkward/exif_rot6.jpg") as stored:
        assert stored.size == (320, 200)
        upright = ImageOps.exif_transpose(stored).convert("RGB")
    assert (r.width, r.height) == (200, 320) == upright.size
    assert r.orientation == 6
    thumb = thumb_of(r)
    reference = np.asarray(upright.resize(thumb.size), dtype=np.float32)
    assert np.abs(np.asarray(thumb, dtype=np.float32) - reference).mean() < 8


def test_awkward_modes_render_like_their_content(results) -> None:
    assert results["awkward/cmyk.jpg"].mode == "CMYK"
    cmyk = np.asarray(thumb_of(results["awkward/cmyk.jpg"]), dtype=np.float32)
    plain = np.asarray(thumb_of(results["awkward/photo.bmp"]), dtype=np.float32)
    assert np.abs(cmyk - plain).mean() < 12  # same picture, not inverted or garbled

    # 16-bit grey ramp 0..65535: must come out as a dark-to-bright ramp, not clipped to white.
    assert results["awkward/gray16.png"].mode.startswith("I")
    gray = np.asarray(thumb_of(results["awkward/gray16.png"]).convert("L"), dtype=np.float32)
    assert gray[:, :10].mean() < 30 and gray[:, -10:].mean() > 225 and 100 < gray.mean() < 155
    rgb16 = np.asarray(thumb_of(results["awkward/rgb16.png"]), dtype=np.float32)
    assert rgb16[:, :10, 0].mean() < 30 and rgb16[:, -10:, 0].mean() > 225

    # Palette index 0 is transparent: those pixels are flattened onto white.
    with Image.open(BytesIO(results["awkward/palette_transparent.png"].thumbnail)) as t:
        assert t.mode == "RGB"
    for rel in ("awkward/la.png", "awkward/rgba.png", "awkward/onebit.png"):
        assert thumb_of(results[rel]).mode == "RGB"
    assert results["awkward/mislabelled_png.jpg"].format == "PNG"
    assert results["awkward/mislabelled_png.jpg"].ext == "png"


def test_transparent_pixels_become_white() -> None:
    rgba = Image.new("RGBA", (64, 64), (255, 0, 0, 0))
    rgba.paste((0, 0, 255, 255), (0, 0, 32, 64))
    thumb = np.asarray(thumb_of(check_image_bytes(encode(rgba, "PNG"))), dtype=np.int16)
    assert np.abs(thumb[:, 40:] - 255).max() < 10  # invisible red stays invisible
    assert thumb[:, :24, 2].mean() > 200 and thumb[:, :24, 0].mean() < 40


@pytest.mark.parametrize("rel, fmt", [("awkward/animated.gif", "GIF"), ("awkward/animated.webp", "WEBP"), ("awkward/animated.png", "PNG")])
def test_animated_images_count_frames_and_decode_the_first(results, rel: str, fmt: str) -> None:
    r = results[rel]
    assert isinstance(r, CheckedImage)
    assert (r.format, r.frames, r.width, r.height) == (fmt, 3, 96, 64)
    # All three containers hold the same first frame, so their hashes agree closely.
    assert hamming(r.phash, results["awkward/animated.png"].phash) <= 6


def test_invalid_utf8_name_is_readable_by_bytes_or_surrogateescape_path(mixed, tmp_path: Path) -> None:
    root, _ = mixed
    as_bytes = os.path.join(os.fsencode(root), os.fsencode(BAD_UTF8_NAME))
    assert b"\xff\xfe" in as_bytes
    assert isinstance(check_image_file(as_bytes), CheckedImage)
    assert isinstance(check_image_file(os.fsdecode(as_bytes)), CheckedImage)
    # A rejection's detail must be storable as UTF-8 text even for such names.
    bad = os.path.join(os.fsencode(tmp_path), b"broken\xff.jpg")
    with open(bad, "wb") as fh:
        fh.write(b"not an image at all")
    r = check_image_file(bad)
    assert isinstance(r, Rejected) and r.reason == "not_an_image"
    assert "broken\\xff.jpg" in r.detail
    r.detail.encode("utf-8")


def test_walking_the_folder_terminates_and_finds_exactly_the_fixture_files(mixed) -> None:
    root, expected = mixed
    broot = os.fsencode(root)
    found, dir_links = set(), set()
    for dirpath, dirnames, filenames in os.walk(broot):  # followlinks=False: the loop is listed, not entered
        rel_dir = os.path.relpath(dirpath, broot)
        for name in filenames:
            found.add(os.fsdecode(os.path.normpath(os.path.join(rel_dir, name))))
        dir_links |= {os.fsdecode(os.path.join(rel_dir, d)) for d in dirnames if os.path.islink(os.path.join(dirpath, d))}
    assert found == set(expected)
    assert dir_links == {LOOP_DIR_LINK}


def test_phash_is_stable_across_reencoding_and_differs_between_images() -> None:
    rng = np.random.default_rng(42)
    images = [Image.fromarray(realistic_rgb(rng, (640, 480))) for _ in range(4)]
    hashes = []
    for img in images:
        as_jpeg = check_image_bytes(encode(img, "JPEG", quality=95))
        as_png = check_image_bytes(encode(img, "PNG"))
        small = check_image_bytes(encode(img.resize((320, 240)), "WEBP", quality=80))
        assert hamming(as_jpeg.phash, as_png.phash) <= 4
        assert hamming(as_png.phash, small.phash) <= 6
        hashes.append(as_png.phash)
    for i in range(len(hashes)):
        for j in range(i):
            assert hamming(hashes[i], hashes[j]) >= 10


def test_phash_hex_matches_imagehash_bit_for_bit() -> None:
    rng = np.random.default_rng(3)
    for size in [(256, 192), (85, 64), (40, 33)]:
        img = Image.fromarray(realistic_rgb(rng, size))
        assert phash_hex(img) == str(imagehash.phash(img))
    flat = Image.new("RGB", (64, 64), (120, 120, 120))
    assert phash_hex(flat) == str(imagehash.phash(flat))


def test_bomb_is_rejected_before_pixels_are_allocated(mixed) -> None:
    root, _ = mixed
    data = (root / "bad/bomb.png").read_bytes()
    assert len(data) < 200_000  # 30000 x 30000 declared
    peak_before_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    r = check_image_bytes(data)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before_kib) / 1024
    assert isinstance(r, Rejected) and r.reason == "decompression_bomb"
    assert grown_mib < 100  # decoding would need ~900 MB


def test_max_pixels_is_checked_before_decoding() -> None:
    # 72 Mpx: over our 64 Mpx default, under Pillow's own 89 Mpx warning threshold.
    r = check_image_bytes(bomb_png_bytes(9000, 8000))
    assert isinstance(r, Rejected) and r.reason == "decompression_bomb"
    assert "9000x8000" in r.detail
    small = encode(Image.new("RGB", (100, 100)), "PNG")
    assert check_image_bytes(small, max_pixels=5000).reason == "decompression_bomb"
    assert isinstance(check_image_bytes(small, max_pixels=10_000), CheckedImage)


def test_truncated_files_fail_even_if_pillow_was_told_to_load_them(mixed, monkeypatch) -> None:
    root, _ = mixed
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    for rel in ("bad/truncated.jpg", "bad/truncated.png"):
        r = check_image_bytes((root / rel).read_bytes())
        assert isinstance(r, Rejected) and r.reason == "truncated", r
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # the caller's setting is restored


def test_truncated_webp_is_reported_as_truncated() -> None:
    data = encode(Image.fromarray(realistic_rgb(np.random.default_rng(0), (120, 90))), "WEBP")
    r = check_image_bytes(data[: len(data) // 2])
    assert isinstance(r, Rejected) and r.reason == "truncated"


def test_min_side_rejects_tracking_pixels_unless_lowered(mixed) -> None:
    root, _ = mixed
    data = (root / "bad/pixel.gif").read_bytes()
    assert check_image_bytes(data).reason == "too_small"
    assert isinstance(check_image_bytes(data, min_side=1), CheckedImage)


@pytest.mark.timeout(20)
def test_unreadable_paths_are_rejected_not_raised(tmp_path: Path) -> None:
    assert check_image_file(tmp_path / "missing.jpg").reason == "unreadable"
    directory = check_image_file(tmp_path)
    assert directory.reason == "unreadable" and "directory" in directory.detail
    if hasattr(os, "mkfifo"):
        fifo = tmp_path / "pipe.jpg"
        os.mkfifo(fifo)  # opening it for a blocking read would hang forever
        assert check_image_file(fifo).reason == "unreadable"
    locked = tmp_path / "locked.jpg"
    locked.write_bytes(b"x")
    locked.chmod(0)
    try:
        if os.geteuid() != 0:  # root reads anything
            assert check_image_file(locked).reason == "unreadable"
    finally:
        locked.chmod(stat.S_IRUSR | stat.S_IWUSR)


def test_files_over_max_bytes_are_not_read(mixed) -> None:
    root, _ = mixed
    assert read_image_file(root / "good/normal_a.png") == (root / "good/normal_a.png").read_bytes()
    assert read_image_file(root / "good/normal_a.png", max_bytes=1000).reason == "too_large"
    r = check_image_file(root / "good/normal_a.png", max_bytes=1000)
    assert isinstance(r, Rejected) and r.reason == "too_large" and r.sha256 is None


def test_empty_input() -> None:
    assert check_image_bytes(b"") == Rejected(None, 0, "empty", "image: the file is empty (0 bytes).")


def test_results_pickle_and_are_deterministic(mixed, results) -> None:
    root, _ = mixed
    for r in (results["good/normal_b.jpg"], results["bad/truncated.png"], results["bad/loop_a.jpg"]):
        assert pickle.loads(pickle.dumps(r)) == r
    data = (root / "good/normal_b.jpg").read_bytes()
    assert check_image_bytes(data) == check_image_bytes(data)
    assert "thumbnail" not in repr(results["good/normal_b.jpg"])  # keeps logs readable


def test_decode_only_decodes_and_raises_on_truncation(mixed) -> None:
    root, _ = mixed
    assert decode_only((root / "good/normal_b.jpg").read_bytes()) is None
    with pytest.raises(OSError):
        decode_only((root / "bad/truncated.jpg").read_bytes())
