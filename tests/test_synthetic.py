"""Tests for the deterministic synthetic relational image generator."""

from __future__ import annotations

import hashlib
import io
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from relcurate.curation.demo.synthetic import (
    BACKGROUND_COLORS,
    BACKGROUND_KINDS,
    COLORS,
    MANIFEST_NAME,
    NON_RELATIONAL_KINDS,
    SHAPES,
    TEMPLATES,
    generate_group,
    generate_image,
    generate_pool,
    png_bytes,
    read_manifest,
    sample_attributes,
    write_pool,
)

REPO = Path(__file__).resolve().parents[1]


def _digest(seed: int, template: str | None, kind: str | None = None, size: int = 64) -> str:
    return hashlib.sha256(png_bytes(generate_image(seed, template, size=size, kind=kind).image)).hexdigest()


def test_catalogue_sizes() -> None:
    assert len(TEMPLATES) >= 12
    assert len(SHAPES) >= 8
    assert len(COLORS) >= 10
    assert {"plain", "gradient", "noise"} <= set(BACKGROUND_KINDS)
    assert all(name == t.name for name, t in TEMPLATES.items())


@pytest.mark.parametrize("template", [*TEMPLATES, None])
def test_same_seed_gives_identical_bytes_and_seeds_differ(template: str | None) -> None:
    kinds = [None] if template else list(NON_RELATIONAL_KINDS)
    for kind in kinds:
        assert _digest(5, template, kind) == _digest(5, template, kind)
        assert len({_digest(s, template, kind) for s in range(4)}) == 4


def test_determinism_does_not_depend_on_the_process() -> None:
    # Hash randomisation must not leak into seeds (a fresh interpreter with another PYTHONHASHSEED).
    cases = [(3, "ring", None), (11, "mirror", None), (8, None, "clutter")]
    code = (
        "import hashlib;from relcurate.curation.demo.synthetic import generate_image, png_bytes;"
        f"print(*[hashlib.sha256(png_bytes(generate_image(s, t, size=64, kind=k).image)).hexdigest() for s, t, k in {cases!r}])"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == [_digest(s, t, k) for s, t, k in cases]


@pytest.mark.parametrize("template", list(TEMPLATES))
def test_every_template_renders_at_several_sizes(template: str) -> None:
    for size in (32, 100, 256):
        for seed in range(8 if size < 256 else 3):
            item = generate_image(seed, template, size=size)
            assert item.image.size == (size, size) and item.image.mode == "RGB"
            assert item.relational and item.template == template and item.kind == "relational"
            assert item.key == f"{template}-{seed:06d}"
            assert item.anonymous_caption == TEMPLATES[template].anonymous_caption
            x0, y0, x1, y1 = item.attributes["layout_bbox"]
            assert 0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0, "layout leaves the frame"
            assert item.attributes["count"] >= 1
            assert len(item.image.getcolors(maxcolors=1 << 16) or range(1 << 16)) > 4, "blank image"
            # The concrete caption names the actual attributes.
            assert item.attributes["color"] in item.alt_text
            assert item.attributes["shape"] in item.alt_text
            assert item.alt_text.endswith("background")


def test_non_relational_kinds() -> None:
    for kind in NON_RELATIONAL_KINDS:
        for seed in range(6):
            item = generate_image(seed, kind=kind, size=64)
            assert not item.relational and item.template is None and item.anonymous_caption is None
            assert item.kind == kind and item.key == f"{kind}-{seed:06d}"
            assert item.alt_text
    clutter = generate_image(1, kind="clutter", size=64)
    assert len(set(clutter.attributes["shapes"])) >= 3
    assert generate_image(1, kind="single", size=64).attributes["count"] == 1


def test_attributes_are_sampled_independently_of_the_relation() -> None:
    seeds = range(100)
    # By construction an image's attributes depend on its seed only, never on the template ...
    for seed in seeds[:10]:
        shapes = {generate_image(seed, t, size=32).attributes["shape"] for t in TEMPLATES}
        colors = {generate_image(seed, t, size=32).attributes["color"] for t in TEMPLATES}
        assert len(shapes) == 1 and len(colors) == 1
    # ... so every shape and every colour shows up under every relation in a modest sample.
    for template in TEMPLATES:
        items = [generate_image(seed, template, size=32) for seed in seeds]
        assert {i.attributes["shape"] for i in items} == set(SHAPES), template
        assert {i.attributes["color"] for i in items} == set(COLORS), template
        assert len({i.attributes["background"]["kind"] for i in items}) == len(BACKGROUND_KINDS)


def test_sampled_attributes_are_usable() -> None:
    for seed in range(200):
        a = sample_attributes(seed)
        assert a.other_shape != a.shape and a.other_color != a.color
        assert all(c in BACKGROUND_COLORS for c in a.background.colors)
        assert 0.0 <= a.count_u < 1.0


def _palette_words() -> set[str]:
    words = set()
    for name in (*COLORS, *BACKGROUND_COLORS, *SHAPES):
        for w in name.split():
            words |= {w, w + "s", w + "es"}
    return words


def test_anonymous_captions_are_abstract() -> None:
    banned = _palette_words()
    captions = [t.anonymous_caption for t in TEMPLATES.values()]
    assert len(set(captions)) == len(captions), "each relation needs its own caption"
    for template in TEMPLATES.values():
        caption = template.anonymous_caption
        assert re.search(r"\{[A-Z][A-Za-z]*\}", caption), caption
        assert template.placeholders and "Object" in template.placeholders
        plain = re.sub(r"\{[A-Za-z]+\}", " ", caption).lower()
        leaked = set(re.findall(r"[a-z]+", plain)) & banned
        assert not leaked, f"{template.name}: {leaked}"


def test_relation_details_match_the_relation() -> None:
    for seed in range(10):
        grow = generate_image(seed, "growing", size=32).attributes
        assert grow["sizes"] == sorted(grow["sizes"]) and len(set(grow["sizes"])) == grow["count"]
        assert [p[0] for p in grow["positions"]] == sorted(p[0] for p in grow["positions"])

        ring = generate_image(seed, "ring", size=32).attributes
        cx = sum(p[0] for p in ring["positions"]) / ring["count"]
        cy = sum(p[1] for p in ring["positions"]) / ring["count"]
        dists = [math.dist(p, (cx, cy)) for p in ring["positions"]]
        assert max(dists) - min(dists) < 0.06

        odd = generate_image(seed, "odd_one_out", size=32).attributes
        assert (odd["odd_shape"], odd["odd_color"]) != (odd["shape"], odd["color"])
        assert 0 <= odd["odd_index"] < odd["count"] == odd["grid"][0] * odd["grid"][1]

        mirror = generate_image(seed, "mirror", size=32).attributes
        (lx, ly), (rx, ry) = mirror["positions"]
        assert ly == ry and lx < rx

        fade = generate_image(seed, "colour_fade", size=32).attributes
        assert fade["rgb"][0] == list(COLORS[fade["colors"][0]])
        assert fade["rgb"][-1] == list(COLORS[fade["colors"][1]])

        counting = generate_image(seed, "counting", size=32).attributes
        assert len(counting["positions"]) == sum(counting["group_sizes"])


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.25, 1.0])
def test_pool_has_the_requested_relational_fraction(fraction: float) -> None:
    n = 200
    items = list(generate_pool(n, seed=3, relational_fraction=fraction, size=32))
    assert len(items) == n
    assert sum(i.relational for i in items) == round(n * fraction)
    assert len({i.key for i in items}) == n
    rel = [i for i in items if i.relational]
    if len(rel) >= len(TEMPLATES):
        assert {i.template for i in rel} == set(TEMPLATES)  # balanced round-robin
    if fraction < 1.0:
        assert {i.kind for i in items if not i.relational} == set(NON_RELATIONAL_KINDS)


def test_pool_is_deterministic_and_lazy() -> None:
    a = [(i.key, png_bytes(i.image)) for i in generate_pool(20, seed=1, size=32)]
    b = [(i.key, png_bytes(i.image)) for i in generate_pool(20, seed=1, size=32)]
    assert a == b
    assert [i.key for i in generate_pool(20, seed=2, size=32)] != [k for k, _ in a]
    first = next(iter(generate_pool(10**6, seed=0, size=32)))  # renders one image, not a million
    assert first.key.endswith("-000000")
    with pytest.raises(ValueError):
        generate_pool(10, relational_fraction=1.5)


def test_group_shares_the_relation_but_not_the_attributes() -> None:
    group = generate_group("ring", 6, seed=4, size=64)
    assert len(group) == 6 and len({g.key for g in group}) == 6
    assert {g.template for g in group} == {"ring"}
    assert {g.anonymous_caption for g in group} == {TEMPLATES["ring"].anonymous_caption}
    assert len({g.attributes["shape"] for g in group}) == 6
    assert len({g.attributes["color"] for g in group}) == 6
    again = generate_group("ring", 6, seed=4, size=64)
    assert [png_bytes(g.image) for g in group] == [png_bytes(g.image) for g in again]
    assert [g.key for g in generate_group("ring", 6, seed=5, size=64)] != [g.key for g in group]


def test_layout_jitter_changes_where_and_how_big_not_what() -> None:
    """Opt-in: the same relation, attributes and caption, the whole scene shrunk and moved (the
    relations benchmark's "same logic, different look"); off, nothing changes."""
    for seed in range(6):
        plain = generate_image(seed, "ring", size=64)
        assert png_bytes(generate_image(seed, "ring", size=64, layout_jitter=0.0).image) == png_bytes(plain.image)
        moved = generate_image(seed, "ring", size=64, layout_jitter=0.5)
        assert png_bytes(generate_image(seed, "ring", size=64, layout_jitter=0.5).image) == png_bytes(moved.image)
        for key in ("shape", "color", "count", "background"):
            assert moved.attributes[key] == plain.attributes[key]
        assert moved.anonymous_caption == plain.anonymous_caption and moved.alt_text == plain.alt_text
        z, tx, ty = moved.attributes["layout_zoom"]
        assert 0.5 <= z <= 1 and 0 <= tx <= 1 - z + 1e-6 and 0 <= ty <= 1 - z + 1e-6
        x0, y0, x1, y1 = plain.attributes["layout_bbox"]
        expect = [x0 * z + tx, y0 * z + ty, x1 * z + tx, y1 * z + ty]
        assert moved.attributes["layout_bbox"] == pytest.approx(expect, abs=2e-3)
        assert "layout_zoom" not in plain.attributes
    group = generate_group("stack", 3, seed=1, size=64, layout_jitter=0.3)
    assert len({tuple(g.attributes["layout_zoom"]) for g in group}) == 3
    with pytest.raises(ValueError):
        generate_image(0, "ring", layout_jitter=1.0)


def test_bad_arguments() -> None:
    with pytest.raises(KeyError):
        generate_image(0, "no_such_relation")
    with pytest.raises(ValueError):
        generate_image(0, "ring", kind="clutter")
    with pytest.raises(ValueError):
        generate_image(0, kind="nonsense")
    with pytest.raises(KeyError):
        generate_group("no_such_relation", 3, seed=0)
    assert generate_image(9).relational  # no template and no kind: a relation drawn from the seed


def test_write_pool_round_trips(tmp_path: Path) -> None:
    items = list(generate_pool(24, seed=7, relational_fraction=0.5, size=48))
    manifest = write_pool(tmp_path / "a", items)
    assert manifest == tmp_path / "a" / MANIFEST_NAME
    records = read_manifest(manifest)
    assert [r["key"] for r in records] == [i.key for i in items]
    for record, item in zip(records, items):
        assert record == item.record()
        assert set(record) >= {"file", "key", "relational", "template", "attributes", "alt_text", "anonymous_caption"}
        with Image.open(tmp_path / "a" / record["file"]) as img:
            assert img.tobytes() == item.image.tobytes()
    # Same items, another folder: byte-identical files (no timestamps in PNG or manifest).
    write_pool(tmp_path / "b", generate_pool(24, seed=7, relational_fraction=0.5, size=48))
    for path in sorted((tmp_path / "a").iterdir()):
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes(), path.name
    with pytest.raises(ValueError):
        write_pool(tmp_path / "c", [items[0], items[0]])


def test_png_bytes_carry_no_metadata() -> None:
    data = png_bytes(generate_image(0, "ring", size=32).image)
    with Image.open(io.BytesIO(data)) as img:
        assert not img.info or set(img.info) <= {"dpi"}
    assert b"tIME" not in data and b"tEXt" not in data
