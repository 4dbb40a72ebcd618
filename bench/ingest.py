"""Ingest throughput against the bound of decoding the same files with Pillow alone.

    .venv/bin/python bench/ingest.py [--n 2000] [--reps 3] [--workers 2]

Both sides use the same number of processes (default: all cores), read the same JPEGs from the
page cache and run in the same process; the table shows medians over --reps runs. Ingest does the
full job: read, sha256, full decode, EXIF transpose, thumbnail, pHash, write original + thumbnail
into the store, rows in SQLite, near-duplicate search.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from relcurate.testing.images import make_jpeg_folder  # noqa: E402

from relcurate.curation.ingest.imagecheck import decode_only  # noqa: E402
from relcurate.curation.ingest.store_writes import default_workers  # noqa: E402
from relcurate.curation.ingest.pipeline import ingest_source  # noqa: E402
from relcurate.workspace import Workspace  # noqa: E402


def _decode_file(path: str) -> None:
    with open(path, "rb") as fh:
        decode_only(fh.read())


def pillow_bound(paths: list[str], workers: int) -> float:
    t = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(_decode_file, paths, chunksize=8))
    return time.perf_counter() - t


def ingest_once(folder: Path, workers: int) -> float:
    root = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    try:
        ws = Workspace.init(root / "ws")
        t = time.perf_counter()
        report = ingest_source(ws, folder, workers=workers, download=False)
        elapsed = time.perf_counter() - t
        assert report.added + report.duplicates_merged == len(list(folder.glob("*.jpg"))), report
        ws.engine.dispose()
        return elapsed
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--workers", type=int, default=default_workers())
    ap.add_argument("--size", default="1024x768")
    args = ap.parse_args()
    w, h = map(int, args.size.split("x"))

    tmp = Path(tempfile.mkdtemp(prefix="bench-jpegs-"))
    try:
        t = time.perf_counter()
        paths = [str(p) for p in make_jpeg_folder(tmp, args.n, size=(w, h))]
        print(f"generated {args.n} JPEGs {w}x{h} in {time.perf_counter() - t:.1f}s; workers={args.workers}, cores={os.cpu_count()}")
        pillow_bound(paths[:50], args.workers)  # warm the page cache and the pool start-up path
        bound, ours = [], []
        for _ in range(args.reps):  # interleaved so drift hits both sides alike
            bound.append(pillow_bound(paths, args.workers))
            ours.append(ingest_once(tmp, args.workers))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    b, o = statistics.median(bound), statistics.median(ours)
    print()
    print(f"{'what':<40} {'median s':>9} {'images/s':>9}")
    print(f"{'Pillow decode only (bound)':<40} {b:>9.2f} {args.n / b:>9.1f}")
    print(f"{'relcurate ingest (full pipeline)':<40} {o:>9.2f} {args.n / o:>9.1f}")
    print(f"\nratio ingest / bound = {(args.n / o) / (args.n / b):.2f}  (goal >= 0.70)")
    print("runs (s): bound " + ", ".join(f"{x:.2f}" for x in bound) + " | ingest " + ", ".join(f"{x:.2f}" for x in ours))


if __name__ == "__main__":
    main()
