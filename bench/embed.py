"""relsim embedding throughput: our RelsimEmbedder vs the reference `relsim` 0.1.0 embed loop.

Same weights for both: a randomly initialised Qwen2.5-VL with the 7B's text width (hidden 3584,
28 heads, 4 KV heads, MLP 18944), its real 152,064-row vocabulary and untied LM head, but only a
few decoder layers (default 2), stored in bf16 like the real checkpoint, plus LoRA/query/projection
checkpoints in the relsim layout.
Images are 500-1500 px per side. Each method runs in its own process (clean peak RSS), on the CPU
in bfloat16 (the reference's own dtype; on this AVX512-BF16 CPU it is ~3.5x faster than float32).
The reference's base-model id and transformers-5 issues are patched as in
tests/test_models_relsim_interop.py.

Rows: the reference loop (`model.embed(preprocess(img))`, one image per call, native resolution,
full-vocabulary logits and all hidden states computed), the same loop on 448x448 inputs, and ours
(batched, no LM head) at native resolution and at our default 448x448, all on a checkpoint in the
reference's semantics (frozen query row); one more row uses our checkpoint with the trainable
query row. The equivalence check runs both in float32 on the same centre-cropped 448x448 images.

With only a few layers the LM head is a larger share of the work than in the 28-layer 7B, so the
"no full-vocab logits" saving is larger here than on the real model; the resolution and batching
savings carry over. Run: .venv/bin/python bench/embed.py [--images 8] [--layers 2]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def bench_images(n: int, seed: int, lo: int = 500, hi: int = 1500):
    """Photo-like RGB images (smooth colour fields + shapes + noise), sides in [lo, hi]."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n):
        w, h = (int(x) for x in rng.integers(lo, hi + 1, 2))
        coarse = rng.integers(0, 256, (max(2, h // 64), max(2, w // 64), 3), dtype=np.uint8)
        img = Image.fromarray(coarse).resize((w, h), Image.Resampling.BICUBIC)
        draw = ImageDraw.Draw(img)
        for _ in range(8):
            x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
            box = (x0, y0, x0 + int(rng.integers(20, w // 3)), y0 + int(rng.integers(20, h // 3)))
            draw.ellipse(box, fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
        noise = rng.normal(0, 5, (h, w, 1))
        images.append(Image.fromarray(np.clip(np.asarray(img) + noise, 0, 255).astype(np.uint8)))
    return images


def peak_rss_gib() -> float:
    """This process's peak RSS (VmHWM; ru_maxrss can carry over the parent's high-water mark)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


# ------------------------------------------------------------------------------------ workers
# name -> (implementation, image size (None = native), checkpoint, dtype, equivalence-only)
RUNS = {
    "reference-native": ("reference", None, "ckpt-ref", "bf16", False),
    "reference-448": ("reference", 448, "ckpt-ref", "bf16", False),
    "ours-native": ("ours", None, "ckpt-ref", "bf16", False),
    "ours-448": ("ours", 448, "ckpt-ref", "bf16", False),
    "ours-448-own-ckpt": ("ours", 448, "ckpt-ours", "bf16", False),
    "equiv-reference": ("reference", 448, "ckpt-ref", "fp32", True),
    "equiv-ours": ("ours", 448, "ckpt-ref", "fp32", True),
}
EQUIV_IMAGES = 2


def worker_prepare(args) -> dict:
    import gc

    import torch

    from relcurate.models.relsim_embedder import RelsimEmbedder
    from relcurate.models.tiny import build_tiny_qwen

    t = time.perf_counter()
    build_tiny_qwen(args.model, text_hidden=3584, num_layers=args.layers, num_heads=28, num_kv_heads=4,
                    intermediate_size=18944, vocab="real", dtype=torch.bfloat16, seed=0)  # fmt: skip
    built = time.perf_counter() - t
    # ckpt-ref: the reference's layout and semantics (LoRA + projection, query row frozen), which
    # the reference loads without peft's trainable-token layer; ckpt-ours: our trainable query row.
    for name, train_query in (("ckpt-ref", False), ("ckpt-ours", True)):
        emb = RelsimEmbedder.new(args.model, dtype="float32", device="cpu", train_query_token=train_query)
        gen = torch.Generator().manual_seed(1)
        with torch.no_grad():  # stand-in for training: LoRA B (and the query row) and projection move
            for p in emb.parameters():
                if p.requires_grad:
                    p.add_(torch.randn(p.shape, generator=gen) * 0.02)
        emb.eval().save(Path(args.workdir) / name)
        del emb
        gc.collect()
    return {"build_s": built}


def _timed(fn, batches, repeats: int) -> tuple[list[float], list[np.ndarray]]:
    """Per-batch wall times over `repeats` passes (the outputs of the first pass)."""
    times, outs = [], []
    for r in range(repeats):
        for batch in batches:
            t = time.perf_counter()
            out = fn(batch)
            times.append(time.perf_counter() - t)
            if r == 0:
                outs.append(out)
    return times, outs


def _repeats(image_size, images, args) -> int:
    # 448 passes are short, so one burst of other load on the machine would skew them: repeat.
    # Native passes take minutes; the equivalence runs are not timed.
    return args.repeats if image_size is not None and len(images) == args.images else 1


def worker_ours(args, image_size, ckpt, dtype, images) -> dict:
    from relcurate.models.relsim_checkpoint import load_relsim_checkpoint

    emb = load_relsim_checkpoint(ckpt, args.model, device="cpu", dtype=dtype, image_size=image_size,
                                 batch_size=args.batch_size)  # fmt: skip
    emb.embed(bench_images(1, 99, 200, 200))  # warm-up, not timed
    batches = [images[i : i + args.batch_size] for i in range(0, len(images), args.batch_size)]
    times, outs = _timed(emb.embed, batches, _repeats(image_size, images, args))
    return {"times": times, "batch": args.batch_size, "repeats": _repeats(image_size, images, args),
            "emb": np.concatenate(outs).tolist()}  # fmt: skip


def _patched_reference(model_dir: str, ckpt_dir: str, dtype: str):
    """relsim.relsim with the patches explained in tests/test_models_relsim_interop.py."""
    import torch
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    import relsim.relsim_score as rs

    def add_types(module, a, kw):
        if kw.get("input_ids") is not None and kw.get("mm_token_type_ids") is None:
            kw["mm_token_type_ids"] = (kw["input_ids"] == module.config.image_token_id).int()
        return a, kw

    class Base:
        @staticmethod
        def from_pretrained(name, **kwargs):
            kwargs["torch_dtype"] = torch.float32 if dtype == "fp32" else torch.bfloat16
            model = Qwen2_5_VLForConditionalGeneration.from_pretrained(model_dir, **kwargs)
            model.register_forward_pre_hook(add_types, with_kwargs=True)
            return model

    class Proc:
        @staticmethod
        def from_pretrained(path, **kwargs):
            processor = AutoProcessor.from_pretrained(path, **kwargs)
            processor.return_mm_token_type_ids = False
            return processor

    class Wrapper(rs.QwenWithQueryToken):
        def __init__(self, base_model, processor, hidden_size=3584):
            super().__init__(base_model, processor, base_model.get_base_model().config.get_text_config().hidden_size)

    rs.Qwen2_5_VLForConditionalGeneration, rs.AutoProcessor, rs.QwenWithQueryToken = Base, Proc, Wrapper
    return rs.relsim(pretrained=True, checkpoint_dir=ckpt_dir)


def worker_reference(args, image_size, ckpt, dtype, images) -> dict:
    import contextlib
    import io

    from relcurate.models.relsim_embedder import relsim_preprocess

    with contextlib.redirect_stdout(io.StringIO()):  # the reference prints a lot
        model, preprocess = _patched_reference(args.model, ckpt, dtype)
    if image_size is not None:  # same centre crop + resize as ours, done before its preprocess
        images = [relsim_preprocess(im, image_size) for im in images]
    model.embed(preprocess(bench_images(1, 99, 200, 200)[0]))  # warm-up, not timed
    times, outs = _timed(lambda im: model.embed(preprocess(im)).float().cpu().numpy(), images,
                         _repeats(image_size, images, args))  # fmt: skip
    return {"times": times, "batch": 1, "repeats": _repeats(image_size, images, args),
            "emb": np.concatenate(outs).tolist()}  # fmt: skip


def run_in_worker(args) -> dict:
    if args.worker == "prepare":
        return worker_prepare(args)
    impl, image_size, ckpt, dtype, equiv = RUNS[args.worker]
    images = bench_images(EQUIV_IMAGES if equiv else args.images, args.seed)
    fn = worker_ours if impl == "ours" else worker_reference
    return fn(args, image_size, str(Path(args.workdir) / ckpt), dtype, images)


def run_worker(name: str, args) -> dict:
    out = Path(args.workdir) / f"{name}.json"
    cmd = [sys.executable, __file__, "--worker", name, "--workdir", args.workdir, "--images", str(args.images),
           "--layers", str(args.layers), "--batch-size", str(args.batch_size), "--seed", str(args.seed),
           "--repeats", str(args.repeats)]  # fmt: skip
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TRANSFORMERS_VERBOSITY="error",
               TQDM_DISABLE="1", PYTHONWARNINGS="ignore")  # fmt: skip
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env=env)
    result = json.loads(out.read_text())
    result["wall_s"] = time.perf_counter() - t
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes at 448 (native: 1)")
    parser.add_argument("--worker", choices=["prepare", *RUNS])
    parser.add_argument("--workdir")
    args = parser.parse_args()

    if args.worker:
        args.model = str(Path(args.workdir) / "model")
        result = run_in_worker(args)
        result["peak_rss_gib"] = peak_rss_gib()
        (Path(args.workdir) / f"{args.worker}.json").write_text(json.dumps(result))
        return

    args.workdir = tempfile.mkdtemp(prefix="relsim-bench-")
    load_before = os.getloadavg()[0]
    try:
        prep = run_worker("prepare", args)
        print(f"7B-width tiny Qwen2.5-VL ({args.layers} layers, 152,064-row vocab) + 2 checkpoints built in "
              f"{prep['wall_s']:.0f}s; {args.images} images 500-1500 px; {os.cpu_count()} CPU cores", flush=True)  # fmt: skip
        rows = {}
        for name in RUNS:
            rows[name] = run_worker(name, args)
            print(f"  {name}: {rows[name]['wall_s']:.0f}s", flush=True)
    finally:
        shutil.rmtree(args.workdir, ignore_errors=True)

    print(f"\n{'method (bf16, CPU)':<20}{'resolution':>11}{'imgs/call':>10}{'median s/call':>15}{'images/s':>10}"
          f"{'peak RSS GiB':>14}")  # fmt: skip
    ips = {}
    for name, r in rows.items():
        if RUNS[name][4]:
            continue
        passes = np.array_split(np.asarray(r["times"]), r["repeats"])  # per-pass total time
        ips[name] = len(r["emb"]) / statistics.median(float(p.sum()) for p in passes)
        res = "native" if RUNS[name][1] is None else "448x448"
        print(f"{name:<20}{res:>11}{r['batch']:>10}{statistics.median(r['times']):>15.3f}{ips[name]:>10.3f}"
              f"{r['peak_rss_gib']:>14.2f}")  # fmt: skip
    print(f"\nspeed-up, ours-448 (our default) vs reference-native (its scoring API): "
          f"{ips['ours-448'] / ips['reference-native']:.1f}x")
    print(f"speed-up at equal resolution: native {ips['ours-native'] / ips['reference-native']:.1f}x, "
          f"448 {ips['ours-448'] / ips['reference-448']:.1f}x")
    print(f"our checkpoint (trainable <|query|> row) vs reference layout, ours at 448: "
          f"{ips['ours-448-own-ckpt'] / ips['ours-448']:.2f}x")
    diff = np.abs(np.asarray(rows["equiv-ours"]["emb"]) - np.asarray(rows["equiv-reference"]["emb"])).max()
    print(f"max |ours - reference| on the same 448x448 inputs ({EQUIV_IMAGES} images, float32): {diff:.2e}")
    print(f"(1-min load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after: other work on the "
          f"machine slows both sides alike)")


if __name__ == "__main__":
    main()
