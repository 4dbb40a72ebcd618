"""A small curated workspace for the export tests (helpers, no tests here).

Contents, built through the library (ingest, groups, caption review, labels) on any back end:
- 24 distinct local PNGs and 2 JPEGs (folder ingest), one near duplicate pair (a PNG and a
  slightly brightened copy), 2 URL images pending download;
- 6 seed groups of 3 members with accepted captions (one rejected group, one group with only a
  proposed caption), a per-image accepted caption on 4 images (one of them also a group member);
- users: cur (curator), adm (admin), ann (annotator), rev (reviewer).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from sqlmodel import select

from relcurate.accounts import create_user
from relcurate.curation.groups.membership import create_group
from relcurate.curation.ingest.pipeline import ingest_source
from relcurate.db.engine import session_scope
from relcurate.db.models import Caption, CaptionStatus, GroupStatus, ImageSource, NearDuplicate, SeedGroup
from relcurate.workspace import Workspace

PASSWORD = "password-123"
URLS = ["https://example.org/pics/a.png", "https://example.org/pics/b.jpg"]


@dataclass
class Curated:
    ws: Workspace
    ids: dict[str, int] = field(default_factory=dict)  # file stem / url -> image id
    groups: dict[str, int] = field(default_factory=dict)  # name -> group id


def _pattern(i: int, size: int = 48) -> np.ndarray:
    rng = np.random.default_rng(i)
    coarse = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return np.asarray(PILImage.fromarray(coarse).resize((size, size), PILImage.Resampling.NEAREST))


def write_images(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(24):
        PILImage.fromarray(_pattern(i)).save(folder / f"p{i:02d}.png")
    # near duplicate of p00: same picture, a touch brighter (same pHash neighbourhood, new bytes)
    PILImage.fromarray(np.clip(_pattern(0).astype(int) + 3, 0, 255).astype(np.uint8)).save(folder / "p00_dup.png")
    for i in (100, 101):
        PILImage.fromarray(_pattern(i, 64)).save(folder / f"j{i}.jpg", quality=90)


def build_curated(ws: Workspace, tmp: Path) -> Curated:
    for name, role in (("cur", "curator"), ("adm", "admin"), ("ann", "annotator"), ("rev", "reviewer")):
        create_user(ws.engine, name, PASSWORD, role)
    src = tmp / "src"
    write_images(src)
    ingest_source(ws, src, workers=1, download=False)
    (tmp / "urls.txt").write_text("\n".join(URLS) + "\n")
    ingest_source(ws, tmp / "urls.txt", download=False)
    cur = Curated(ws)
    with session_scope(ws.engine) as s:
        for iid, uri in s.exec(select(ImageSource.image_id, ImageSource.uri)):
            cur.ids[uri.rsplit("/", 1)[1].rsplit(".", 1)[0] if uri.startswith("file:") else uri] = iid
        n_dups = len(s.exec(select(NearDuplicate)).all())
    assert n_dups >= 1, "fixture expects the p00/p00_dup near-duplicate pair"
    specs = [
        ("g0", ["p00", "p01", "p02"], "accepted", GroupStatus.verified),
        ("g1", ["p03", "p04", "p05"], "accepted", GroupStatus.verified),
        ("g2", ["p06", "p07", "j100"], "accepted", GroupStatus.verified),
        ("g3", ["p08", "p09", "p10"], "accepted", GroupStatus.complete),
        ("g4", ["p11", "p12", URLS[0]], "accepted", GroupStatus.draft),
        ("g5", ["p13", "p14", "p15"], "accepted", GroupStatus.rejected),
        ("g6", ["p16", "p17", "p18"], "proposed", GroupStatus.complete),
    ]
    made = {name: create_group(ws, name, [cur.ids[m] for m in members], note=f"note {name}").id
            for name, members, _, _ in specs}
    with session_scope(ws.engine) as s:
        for name, members, cap_status, status in specs:
            g = s.get(SeedGroup, made[name])
            g.status = status  # set directly: member checks would refuse the pending URL image
            s.add(g)
            s.add(Caption(group_id=g.id, text=f'The {{Object}} of group {name} in "{{Place}}" — ünïcode',
                          source="human", status=cap_status))
            cur.groups[name] = g.id
        for key, text in (("p19", "A {Thing} alone."), ("p20", "Two {Animals} side by side."),
                          ("j101", "A {Tool} on a {Surface}."), ("p01", "An extra per-image caption for {X}.")):
            s.add(Caption(image_id=cur.ids[key], text=text, source="human", status=CaptionStatus.accepted))
        s.add(Caption(image_id=cur.ids["p21"], text="Not accepted {Y}.", source="model", status=CaptionStatus.proposed))
    return cur


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
