"""Pool scoring throughput (images/s) against the decode-only bound measured in the same run.

    .venv/bin/python bench/pool.py [--n 256] [--shards 8] [--size 384] [--reps 3] [--workers 2]

Rows (medians over --reps):
  decode only      the loader alone: read webdataset shards, sha256, JPEG decode, shrink to the
                   filter's max_pixels, in `--workers` DataLoader processes (the bound)
  cheap model      score_shards end to end with a near-free scorer (mean brightness): shows the
                   pipeline overhead (goal: >= 0.8 of the bound)
  tiny filter      score_shards with the tiny random Qwen2.5-VL filter (real transformers code)
  model only       the tiny filter's predict_proba on images decoded beforehand (1 process)
and the share of the tiny-filter run spent in the model vs decoding.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]

import numpy as np  # noqa: E402
import torch.utils.data  # noqa: E402

from relcurate.curation.pool.scoring import ShardStream, _Batch, _identity, score_shards  # noqa: E402
from relcurate.curation.pool.shards import discover_shards  # noqa: E402
from relcurate.testing.models import noise_images  # noqa: E402
from relcurate.testing.pool import write_wds_shard  # noqa: E402


class Cheap:
    max_pixels = 448 * 448

    def predict_proba(self, images):
        return np.array([im.getpixel((0, 0))[0] / 255.0 for im in images], dtype=np.float32)


def decode_only(shards, workers: int, batch_size: int, max_pixels: int) -> tuple[float, int]:
    t = time.perf_counter()
    loader = torch.utils.data.DataLoader(ShardStream(shards, batch_size=batch_size, max_pixels=max_pixels),
                                         batch_size=None, collate_fn=_identity, num_workers=workers,
                                         prefetch_factor=4 if workers else None)
    n = sum(len(m.images) for m in loader if isinstance(m, _Batch))
    return time.perf_counter() - t, n


def score_once(shards, scorer, workers: int, batch_size: int) -> tuple[float, int]:
    out = Path(tempfile.mkdtemp(prefix="bench-pool-out-"))
    try:
        t = time.perf_counter()
        prog = score_shards(shards, scorer, out, model_version="bench:1", batch_size=batch_size, workers=workers,
                            rank=0, world_size=1)
        return time.perf_counter() - t, prog.images
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=256, help="images in the pool")
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--size", type=int, default=384, help="image side in pixels (JPEG)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2, help="DataLoader decode processes")
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()

    from relcurate.models.qwen_filter import QwenFilter
    from relcurate.models.tiny import build_tiny_qwen

    root = Path(tempfile.mkdtemp(prefix="bench-pool-"))
    try:
        per = -(-args.n // args.shards)
        images = noise_images(args.n, seed=1, sizes=[(args.size, args.size)] * args.n)
        for s in range(args.shards):
            write_wds_shard(root / f"{s:05d}.tar", images[s * per:(s + 1) * per], first_key=s * per)
        shards, _ = discover_shards([root / "*.tar"])
        tiny = QwenFilter(build_tiny_qwen(root / "tiny", vocab="bpe"), batch_size=args.batch_size)
        max_px = tiny.max_pixels
        decoded = [im.convert("RGB") for im in images]

        rows: dict[str, list[float]] = {"decode only": [], "cheap model": [], "tiny filter": [], "model only": []}
        for _ in range(args.reps):
            dt, n = decode_only(shards, args.workers, args.batch_size, max_px)
            rows["decode only"].append(n / dt)
            dt, n = score_once(shards, Cheap(), args.workers, args.batch_size)
            rows["cheap model"].append(n / dt)
            dt, n = score_once(shards, tiny, args.workers, args.batch_size)
            rows["tiny filter"].append(n / dt)
            t = time.perf_counter()
            for i in range(0, len(decoded), args.batch_size):
                tiny.predict_proba(decoded[i:i + args.batch_size])
            rows["model only"].append(len(decoded) / (time.perf_counter() - t))
        med = {k: statistics.median(v) for k, v in rows.items()}
        bound = med["decode only"]
        print(f"pool: {args.n} JPEG images {args.size}x{args.size} in {args.shards} webdataset shards, "
              f"{args.workers} decode workers, batch {args.batch_size}, medians of {args.reps}")
        print(f"{'run':<14} {'images/s':>10} {'vs decode-only':>15}")
        for k, v in med.items():
            print(f"{k:<14} {v:>10.1f} {v / bound:>15.2f}")
        model_s = 1 / med["model only"]
        total_s = 1 / med["tiny filter"]
        print(f"tiny filter run: ~{min(1.0, model_s / total_s):.0%} of the time in the model, "
              f"decode-only cost {1 / bound * 1e3:.2f} ms/image vs model {model_s * 1e3:.2f} ms/image")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
