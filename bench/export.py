"""Export throughput: 114,000 synthetic (image, accepted caption) rows -> relsim JSONL + HF dataset.

    .venv/bin/python bench/export.py [--rows 114000] [--reps 3] [--db URL]

The store holds 114k images (rows only, no image bytes: the exports run "by reference"), half
with URL sources and half local, 30k seed groups of 3 with accepted captions (90k rows) plus 24k
accepted per-image captions, and 2k near-duplicate pairs. Timed, each a complete export
(permission check, consistent read, group-aware splits, staging folder, sha256 of every file,
manifest, ExportManifest row):

- relsim: ``export_relsim(images="reference")`` -> anonymous_captions_{train,test}.jsonl
- hf: ``export_hf(embed_images=False)`` -> Arrow save_to_disk layout + parquet shards
- total: both, the issue's goal is <= 10 s

Baseline, measured in the same run: the floor of the same output without any of the guarantees
— one SQL join for (image, caption) pairs, json.dumps per row into one file, one
pyarrow table written as one parquet file. Medians over --reps runs after one warm-up
(the warm-up pays the one-off `datasets` import, ~2 s, reported separately).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]

from sqlalchemy import insert, text  # noqa: E402

from relcurate.accounts import create_user  # noqa: E402
from relcurate.db.engine import session_scope  # noqa: E402
from relcurate.db.models import Caption, GroupMember, Image, ImageSource, NearDuplicate, SeedGroup, utcnow  # noqa: E402
from relcurate.workspace import Workspace  # noqa: E402

GOAL_S = 10.0
CHUNK = 5000


def populate(ws: Workspace, n_rows: int) -> None:
    n_group_rows = (n_rows * 90 // 114) // 3 * 3
    n_groups, n_single = n_group_rows // 3, n_rows - n_group_rows
    n_images = n_group_rows + n_single
    now = utcnow()
    with session_scope(ws.engine) as s:
        for lo in range(0, n_images, CHUNK):
            ids = range(lo + 1, min(n_images, lo + CHUNK) + 1)
            s.execute(insert(Image), [{
                "id": i, "sha256": hashlib.sha256(str(i).encode()).hexdigest(), "ext": "png", "status": "ok",
                "source_uri": f"file:///data/pool/{i}.png", "size_bytes": 100_000, "width": 448, "height": 448,
                "phash": None, "meta": {}, "added_at": now} for i in ids])
            s.execute(insert(ImageSource), [{
                "image_id": i, "uri": f"https://example.org/img/{i}.png" if i % 2 else f"file:///data/pool/{i}.png",
                "kind": "url" if i % 2 else "folder", "added_at": now} for i in ids])
        for lo in range(0, n_groups, CHUNK):
            gids = range(lo + 1, min(n_groups, lo + CHUNK) + 1)
            s.execute(insert(SeedGroup), [{"id": g, "name": f"g{g}", "status": "verified", "source": "bench",
                                           "created_at": now, "updated_at": now} for g in gids])
            s.execute(insert(GroupMember), [{"group_id": g, "image_id": 3 * (g - 1) + k + 1, "position": k}
                                            for g in gids for k in range(3)])
            s.execute(insert(Caption), [{"group_id": g, "text": f"A {{Object}} arranged like pattern {g} on a {{Surface}}.",
                                         "source": "import", "status": "accepted", "created_at": now} for g in gids])
        for lo in range(n_group_rows + 1, n_images + 1, CHUNK):
            iids = range(lo, min(n_images, lo + CHUNK - 1) + 1)
            s.execute(insert(Caption), [{"image_id": i, "text": f"One {{Thing}} in the style of example {i}.",
                                         "source": "import", "status": "accepted", "created_at": now} for i in iids])
        s.execute(insert(NearDuplicate), [{"image_a": i, "image_b": i + 7, "distance": 3}
                                          for i in range(1, min(n_images - 7, 4000), 2)])
    create_user(ws.engine, "bench", "bench-password", "curator")


def floor_once(ws: Workspace, out: Path) -> float:
    import pyarrow as pa
    import pyarrow.parquet as pq

    t = time.perf_counter()
    out.mkdir()
    q = text("SELECT i.sha256, c.text, i.source_uri FROM caption c JOIN group_member m ON m.group_id = c.group_id "
             "JOIN image i ON i.id = m.image_id WHERE c.status = 'accepted' UNION ALL "
             "SELECT i.sha256, c.text, i.source_uri FROM caption c JOIN image i ON i.id = c.image_id "
             "WHERE c.status = 'accepted'")
    with ws.engine.connect() as conn:
        rows = conn.execute(q).all()
    with open(out / "rows.jsonl", "w") as fh:
        fh.writelines(json.dumps({"image_hash": h, "caption": c, "url_link": u}) + "\n" for h, c, u in rows)
    cols = list(zip(*rows))
    pq.write_table(pa.table({"image_hash": list(cols[0]), "caption": list(cols[1]), "path": list(cols[2])}),
                   out / "rows.parquet")
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=114_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--db", default=None, help="database URL (default: SQLite in the workspace)")
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-export-"))
    try:
        ws = Workspace.init(root / "ws", db_url=args.db)
        t = time.perf_counter()
        populate(ws, args.rows)
        print(f"store: {args.rows:,} rows populated in {time.perf_counter() - t:.1f} s ({ws.engine.dialect.name})")

        from relcurate.exports.hf import export_hf
        from relcurate.exports.relsim_jsonl import export_relsim

        def relsim(k: str):
            return export_relsim(ws, root / f"relsim-{k}", user="bench", images="reference")

        def hf(k: str):
            return export_hf(ws, root / f"hf-{k}", user="bench", embed_images=False)

        t = time.perf_counter()
        warm = hf("warm")
        print(f"warm-up hf export (includes the one-off `datasets` import): {time.perf_counter() - t:.2f} s")
        n = sum(warm.counts["rows"].values())
        assert n == args.rows, (n, args.rows)
        times: dict[str, list[float]] = {"floor": [], "relsim": [], "hf": [], "total": []}
        for rep in range(args.reps):
            times["floor"].append(floor_once(ws, root / f"floor-{rep}"))
            t = time.perf_counter()
            res = relsim(str(rep))
            times["relsim"].append(time.perf_counter() - t)
            assert sum(res.counts["rows"].values()) == args.rows
            t = time.perf_counter()
            hf(str(rep))
            times["hf"].append(time.perf_counter() - t)
            times["total"].append(times["relsim"][-1] + times["hf"][-1])
        floor = statistics.median(times["floor"])
        print(f"\n{'step':<8}{'median s':>10}{'rows/s':>12}{'vs floor':>10}")
        for name, ts in times.items():
            med = statistics.median(ts)
            print(f"{name:<8}{med:>10.2f}{args.rows / med:>12,.0f}{med / floor:>9.1f}x")
        total = statistics.median(times["total"])
        print(f"\nsplits: {res.counts['rows']}; goal <= {GOAL_S:.0f} s for relsim JSONL + HF dataset: "
              f"{'met' if total <= GOAL_S else 'MISSED'} ({total:.2f} s, {args.rows / total:,.0f} rows/s)")
        ws.engine.dispose()
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
