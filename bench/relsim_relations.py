"""Issue 11 proof (b), the paper's claim in miniature: a relsim trained on the CPU on the synthetic
templates' anonymous captions retrieves same-relation (same-template) images with recall@1 at
least 2x the attribute baseline, while the attribute baseline wins on same-colour retrieval.

Training: `relcurate.testing.relations.build_relation_workspace` (G seed groups per template, 3
members each, shapes and colours varied inside a group, the template's caption accepted), the real
relsim trainer on a tiny Qwen2.5-VL built from config. Evaluation: fresh images (never trained on),
`--eval-per-template` per template, recall@1 (self excluded) of same template and of same colour,
for relsim and `models.baselines.AttributeEmbedder`, over `--seeds` training seeds (median, spread).
Writes a table to stdout and a PNG bar chart (altair + vl-convert) to --out.

Measured 2026-12-02 on the shared 2-core CPU (load 2-6), one training seed, 64 fresh eval images
(16 templates x 4; chance: template 0.048, colour 0.082); attribute baseline: template 0.250,
colour 0.344. relsim (tiny Qwen2.5-VL hidden 64 x 2 layers, 56 px, batch 32, lr 3e-3):
  4 groups/template, 60 steps, lr 1e-3, LoRA q/v only:      template 0.266, colour 0.203 (1.06x)
  4 groups/template, 80 steps, 112 px, LoRA q/v only:       template 0.219, colour 0.125 (0.88x)
  4 groups/template, 120 steps, LoRA q/v + vision qkv/MLP:  template 0.391, colour 0.219 (1.56x), 158 s
  8 groups/template, 240 steps, same:                       template 0.484, colour 0.172 (1.94x), 210 s
  12 groups/template, 360 steps, same:                      template 0.438, colour 0.172 (1.75x), 401 s
  8 groups/template, 400 steps, same:                       template 0.469, colour 0.125 (1.88x), 136 s
  8 groups/template, 240 steps, hidden 128:                 template 0.438, colour 0.172 (1.75x), 83 s
(bench/relsim_relations.png is the 12-group row's chart.)

Measured 2026-12-02 (later, same machine, load 0-7 from other jobs) on a BIGGER eval set, 256 fresh
images (16 per template, `relation_eval_set(16, seed=11)`; attribute there: template 0.430, colour
0.359 -- the attribute baseline's template recall grows with eval density, its layout thumbnail
finds same-template neighbours), 8 groups/template, 300 steps, batch 32, lr 3e-3, hidden 64:
  LoRA vision qkv/MLP + text q/v (the earlier best), seed 7:  template 0.477, colour 0.129 (1.11x), 18 s idle
  LoRA on every layer (`TINY_ALL_TARGETS`: + patch embedding, merger, k/o, vision attn.proj), seed 7:
                                                            template 0.652, colour 0.141 (1.52x), 359 s loaded
  same, seed 8:                                             template 0.570, colour 0.117 (1.33x), 85 s idle
  same, vision hidden 128 (vision heads 4), seed 7:         template 0.250, colour 0.141 (0.58x)
Letting LoRA reach the random patch embedding is the step that helped (now the default here); a
wider vision tower at the same steps learned less. The 2x goal is NOT met on >= 160 fresh images:
best 1.52x, 1.33x on a second seed. The attribute baseline wins on colour in every row.
The attribute baseline wins on colour in every row. The 2x goal on same-template recall@1 was NOT
reached (best 1.94x, one hit short of 0.500 on 64 queries); what mattered most was letting LoRA
reach the random vision tower (`RelsimSettings.lora_targets`), then pool size and steps (a plateau
near 0.45-0.48 beyond 8 groups / 240 steps); width 128 and 112 px images did not help. Single-seed numbers on 64 queries move by ~0.05 between configs.

Run: PYTHONPATH=$PWD .venv/bin/python bench/relsim_relations.py [--groups 8] [--image-size 56]
     [--hidden 64] [--layers 2] [--vision-hidden 32] [--steps 300] [--eval-per-template 10] [--lr 3e-3] [--seeds 1] [--out bench/relsim_relations.png]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from relcurate.models.baselines import AttributeEmbedder  # noqa: E402
from relcurate.models.registry import load_model  # noqa: E402
from relcurate.testing.relations import RelationRun, relation_eval_set, relation_recalls, train_relation_relsim  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    d = RelationRun()
    ap.add_argument("--groups", type=int, default=d.groups_per_template, help="seed groups per template")
    ap.add_argument("--image-size", type=int, default=d.image_size)
    ap.add_argument("--hidden", type=int, default=d.text_hidden)
    ap.add_argument("--layers", type=int, default=d.num_layers)
    ap.add_argument("--vision-hidden", type=int, default=d.vision_hidden)
    ap.add_argument("--steps", type=int, default=d.steps)
    ap.add_argument("--batch", type=int, default=d.batch_size)
    ap.add_argument("--lr", type=float, default=d.lr)
    ap.add_argument("--eval-per-template", type=int, default=d.eval_per_template)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--out", default="bench/relsim_relations.png")
    a = ap.parse_args()
    rows = []
    ev = relation_eval_set(a.eval_per_template, size=max(a.image_size, 56))
    attr = relation_recalls(AttributeEmbedder().embed(ev.images), ev)
    for seed in range(a.seeds):
        run = RelationRun(groups_per_template=a.groups, image_size=a.image_size, text_hidden=a.hidden,
                          num_layers=a.layers, vision_hidden=a.vision_hidden, steps=a.steps, batch_size=a.batch, lr=a.lr,
                          eval_per_template=a.eval_per_template, seed=7 + seed)
        with tempfile.TemporaryDirectory(prefix="relsim-relations-") as tmp:
            t0 = time.perf_counter()
            ws, res = train_relation_relsim(Path(tmp), run)
            train_s = time.perf_counter() - t0
            rel = relation_recalls(load_model(ws, res.model_version).embed(ev.images), ev)
            ws.engine.dispose()
        rows.append({**rel, "train_s": train_s, "final_loss": res.history[-1]["loss"] if res.history else None})
    med = {k: statistics.median(r[k] for r in rows) for k in ("template_r@1", "color_r@1", "train_s")}
    spread = {k: (min(r[k] for r in rows), max(r[k] for r in rows)) for k in ("template_r@1", "color_r@1")}
    n = len(ev.templates)
    print(f"relsim relations in miniature: {a.groups} groups x 3 images per template (16 templates), "
          f"{a.image_size}px, tiny Qwen2.5-VL hidden {a.hidden} x {a.layers} layers, {a.steps} steps, batch {a.batch}, "
          f"lr {a.lr}, vision hidden {a.vision_hidden}, LoRA on {'/'.join(d.lora_targets)}; eval {n} fresh images; {a.seeds} seed(s), medians")
    print(f"{'method':<12}{'same-template R@1':>20}{'same-colour R@1':>18}{'train s':>10}")
    print(f"{'chance':<12}{attr['template_chance']:>20.3f}{attr['color_chance']:>18.3f}{'':>10}")
    print(f"{'attribute':<12}{attr['template_r@1']:>20.3f}{attr['color_r@1']:>18.3f}{'':>10}")
    print(f"{'relsim':<12}{med['template_r@1']:>20.3f}{med['color_r@1']:>18.3f}{med['train_s']:>10.1f}"
          f"   (spread template {spread['template_r@1'][0]:.3f}-{spread['template_r@1'][1]:.3f})")
    ratio = med["template_r@1"] / max(attr["template_r@1"], 1e-9)
    print(f"ratio relsim/attribute, same template: {ratio:.2f}x (goal >= 2x: {'met' if ratio >= 2 else 'NOT met'}); "
          f"same colour attribute - relsim: {attr['color_r@1'] - med['color_r@1']:+.3f} "
          f"({'attribute wins' if attr['color_r@1'] > med['color_r@1'] else 'attribute does NOT win'})")
    try:
        import altair as alt
        import pandas as pd

        data = pd.DataFrame([{"method": m, "task": t, "recall@1": v}
                             for m, src in (("attribute", attr), ("relsim", med), ("chance", None))
                             for t, key in (("same template", "template_r@1"), ("same colour", "color_r@1"))
                             for v in [(src[key] if src else attr[key.split("_")[0] + "_chance"])]])
        chart = alt.Chart(data).mark_bar().encode(x="method:N", y="recall@1:Q", color="method:N",
                                                  column="task:N").properties(width=160, height=220)
        chart.save(a.out)
        print(f"plot: {a.out}")
    except Exception as e:  # the table is the result; the plot is a convenience
        print(f"plot not written: {e}")


if __name__ == "__main__":
    main()
