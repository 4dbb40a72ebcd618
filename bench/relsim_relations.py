"""Issue 11 proof (b), the paper's claim in miniature: a relsim trained on the CPU on the synthetic
templates' anonymous captions retrieves same-relation (same-template) images with recall@1 at
least 2x the attribute baseline, while the attribute baseline wins on same-colour retrieval.

Training: `relcurate.testing.relations.build_relation_workspace` (G seed groups per template, 3
members each, shapes and colours varied inside a group, the template's caption accepted), the real
relsim trainer on a tiny Qwen2.5-VL built from config. Evaluation: fresh images (never trained on),
`--eval-per-template` per template, recall@1 (self excluded) of same template and of same colour,
for relsim and `models.baselines.AttributeEmbedder`, over `--seeds` training seeds (median, spread).
Writes a table to stdout and a PNG bar chart (altair + vl-convert) to --out.

What it took (2026-12-03; 56 px, tiny Qwen2.5-VL hidden 64 x 2 layers, batch 32, lr 1.5e-3, LoRA on
every linear layer including the random vision tower's (`TINY_ALL_TARGETS`); shared 2-core CPU at
load 2-5, so train times are rough). Eval sets: 160 fresh images (`relation_eval_set(10, seed=7)`)
and 256 (`relation_eval_set(16, seed=11)`); ratio = relsim / attribute same-template R@1; mining =
share of tests/test_eval_mining.py's top 20 relsim-minus-attribute pairs that are same template,
other colour (random pair 1.8%). Per seed 7 / 8 / 9:
  groups steps vision jitter | 160: attr  relsim (ratio)        | 256: attr  relsim (ratio)         | mining
  8      300   32     0      | 0.362  0.625/0.662/0.625 (1.73x) | 0.430  0.613/0.641/0.574 (1.43x)  | 45/50/30%
  24     1000  128    0      | 0.362  0.800/0.800/0.812 (2.21x) | 0.430  0.773/0.777/0.766 (1.80x)  | 90/55/70%
  48     2000  128    0      | 0.362  0.812/0.875/0.787 (2.24x) | 0.430  0.797/0.879/0.820 (1.91x)  | 70/80/80%
  48     2000  128    0.15   | 0.256  0.794/0.756/0.781 (3.05x) | 0.348  0.766/0.785/0.812 (2.26x) | 65/60/70%
  one seed (7): 24/1000 hidden 128: 0.863 (2.38x) / 0.785 (1.83x); 48/2000 hidden 128: 0.844
  (2.33x) / 0.824 (1.92x); 24/1000 at 84 px: 0.775 (2.14x) on 160; 24/1000 vision 32: 0.800 (2.21x).
Train time per seed on an idle machine: 24/1000 ~110 s, 48/2000 ~230 s (hidden 128: ~2x).
The attribute baseline wins on colour in every run (relsim colour R@1 0.10-0.17 against 0.29/0.36).

Reading it: more data *and* more steps is what moved relsim (8 groups overfit their 384 images;
3x the data at 300 steps underfit); a 128-wide vision tower gives 14 px patches room. Without
jitter every image of a template puts its parts at the same pixels, so the attribute baseline's
thumbnail finds the template by layout, and its recall rises with eval density (160 -> 256 images:
0.362 -> 0.430; other eval seeds 0.29-0.38 and 0.43-0.45) faster than relsim's does: 2x holds on
160 images on every seed but not on 256. `--layout-jitter 0.15` (each scene shrunk to 85-100% and
moved, training and eval images alike: a relation does not sit at fixed pixels in real images)
takes that shortcut away from the attribute baseline (0.256 / 0.348) while relsim still learns:
with it, 48 groups x 2000 steps meets 2x on both eval sets on every seed (worst 2.95x / 2.20x),
and that run is this bench's default (`relations.BENCH_RUN`). The suite's test-sized run
(`relations.TEST_RUN`: 24 x 1000, no jitter, seed 7; 0.800 and 0.8125 in two runs, 2.21-2.24x
on 160 images) is the second row.
Layout jitter 0.3 at 8 groups x 300 steps was too much (relsim 0.13); 112 px at 300 steps did not
converge; training the vision tower in full instead of LoRA changed nothing measurable.

Run: PYTHONPATH=$PWD .venv/bin/python bench/relsim_relations.py [--seeds 3] [--groups G] [--steps N]
     [--layout-jitter J] [--image-size 56] [--hidden 64] [--layers 2] [--vision-hidden 128]
     [--eval-per-template 10 16] [--lr 1.5e-3] [--full-vision] [--no-mining] [--out bench/relsim_relations.png]
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
from relcurate.models.relsim_embedder import TINY_FULL_VISION, TINY_TEXT_TARGETS  # noqa: E402
from relcurate.testing.relations import BENCH_RUN, RelationRun, relation_eval_set, relation_recalls, train_relation_relsim  # noqa: E402


def mining_template(root: Path) -> Path:
    """tests/test_eval_mining.py's workspace (demo pool of 80 + 32 seed groups), attribute-embedded."""
    from relcurate.models.workspace_scoring import embed_workspace
    from relcurate.testing.evaluation import build_eval_workspace, register_eval_models

    ws = build_eval_workspace(root / "mining", n_pool=80)
    for mv in register_eval_models(ws):
        embed_workspace(ws, load_model(ws, mv), mv)
    ws.engine.dispose()
    return root / "mining"


def mining_share(template: Path, work: Path, trained_root: Path, trained) -> float:
    """Issue 12: share of the top 20 relsim-minus-attribute pairs (z scoring) that are
    same-template / different-colour, on a copy of the mining workspace."""
    import shutil

    from relcurate.evaluation import mining
    from relcurate.evaluation.runs import get_run, read_result
    from relcurate.models.registry import register_model
    from relcurate.models.workspace_scoring import embed_workspace
    from relcurate.testing.evaluation import synthetic_truth
    from relcurate.workspace import Workspace

    shutil.copytree(template, work)
    ws = Workspace.open(work)
    truth = synthetic_truth(ws)
    mv = register_model(ws, kind="relsim", name="trained", base_model=trained.base_model,
                        adapter_path=str(trained_root / trained.adapter_path), config=trained.config)
    embed_workspace(ws, load_model(ws, mv), mv, batch_size=32)
    pairs = read_result(ws, get_run(ws, mining.run_mining(ws, relational="trained", attribute="attribute", top=20),
                                    "mining"))["pairs"]
    ws.engine.dispose()
    hits = [truth[p["a"]]["template"] is not None and truth[p["a"]]["template"] == truth[p["b"]]["template"]
            and truth[p["a"]]["color"] != truth[p["b"]]["color"] for p in pairs]
    return sum(hits) / len(hits)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    d = BENCH_RUN
    ap.add_argument("--groups", type=int, default=d.groups_per_template, help="seed groups per template")
    ap.add_argument("--image-size", type=int, default=d.image_size)
    ap.add_argument("--hidden", type=int, default=d.text_hidden)
    ap.add_argument("--layers", type=int, default=d.num_layers)
    ap.add_argument("--vision-hidden", type=int, default=d.vision_hidden)
    ap.add_argument("--steps", type=int, default=d.steps)
    ap.add_argument("--batch", type=int, default=d.batch_size)
    ap.add_argument("--lr", type=float, default=d.lr)
    ap.add_argument("--eval-per-template", type=int, nargs="+", default=[10, 16],
                    help="fresh eval images per template, one eval set each (seeds 7, 11, 15, ...)")
    ap.add_argument("--seeds", type=int, default=3, help="training seeds 7, 8, ...")
    ap.add_argument("--full-vision", action="store_true",
                    help="train the tiny vision tower in full (modules_to_save), LoRA on the text layers only")
    ap.add_argument("--layout-jitter", type=float, default=d.layout_jitter,
                    help="shrink/move whole scenes at random, training and eval images alike (0: off)")
    ap.add_argument("--out", default="bench/relsim_relations.png")
    ap.add_argument("--no-mining", action="store_true", help="skip the issue-12 mining share")
    a = ap.parse_args()
    scratch = tempfile.TemporaryDirectory(prefix="relsim-relations-mining-")
    mining_ws = None if a.no_mining else mining_template(Path(scratch.name))
    evs = [relation_eval_set(k, seed=7 + 4 * i, size=max(a.image_size, 56), layout_jitter=a.layout_jitter)
           for i, k in enumerate(a.eval_per_template)]
    attrs = [relation_recalls(AttributeEmbedder().embed(ev.images), ev) for ev in evs]
    runs = []  # per seed: {"recalls": [per eval set], "train_s", "final_loss", "mining"}
    for seed in range(a.seeds):
        run = RelationRun(groups_per_template=a.groups, image_size=a.image_size, text_hidden=a.hidden,
                          num_layers=a.layers, vision_hidden=a.vision_hidden, steps=a.steps, batch_size=a.batch, lr=a.lr,
                          seed=7 + seed, layout_jitter=a.layout_jitter,
                          **({"lora_targets": TINY_TEXT_TARGETS, "modules_to_save": TINY_FULL_VISION} if a.full_vision else {}))
        with tempfile.TemporaryDirectory(prefix="relsim-relations-") as tmp:
            t0 = time.perf_counter()
            ws, res = train_relation_relsim(Path(tmp), run)
            train_s = time.perf_counter() - t0
            model = load_model(ws, res.model_version)
            recalls = [relation_recalls(model.embed(ev.images), ev) for ev in evs]
            share = (None if mining_ws is None else
                     mining_share(mining_ws, Path(scratch.name) / f"seed{seed}", ws.root, res.model_version))
            ws.engine.dispose()
        runs.append({"recalls": recalls, "train_s": train_s, "mining": share,
                     "final_loss": res.history[-1]["loss"] if res.history else None})
        print(f"seed {7 + seed}: template R@1 " + ", ".join(f"{r['template_r@1']:.3f}" for r in recalls)
              + f"; train {train_s:.0f} s, final loss {runs[-1]['final_loss']:.3f}"
              + ("" if share is None else f"; mining {share:.0%}"), flush=True)
    print(f"relsim relations in miniature: {a.groups} groups x 3 images per template (16 templates), "
          f"{a.image_size}px, tiny Qwen2.5-VL hidden {a.hidden} x {a.layers} layers, {a.steps} steps, batch {a.batch}, "
          f"lr {a.lr}, vision hidden {a.vision_hidden}, "
          f"{'vision tower in full + text LoRA' if a.full_vision else 'LoRA on ' + '/'.join(d.lora_targets)}, "
          f"layout jitter {a.layout_jitter}; {a.seeds} seed(s), medians; "
          f"train s median {statistics.median(r['train_s'] for r in runs):.0f}")
    print(f"{'eval set':<14}{'method':<12}{'same-template R@1':>20}{'same-colour R@1':>18}{'ratio':>8}  spread")
    chart_rows = []
    for i, (ev, attr) in enumerate(zip(evs, attrs)):
        name = f"{len(ev.templates)} images"
        tpl = [r["recalls"][i]["template_r@1"] for r in runs]
        col = [r["recalls"][i]["color_r@1"] for r in runs]
        med_t, med_c = statistics.median(tpl), statistics.median(col)
        ratio = med_t / max(attr["template_r@1"], 1e-9)
        print(f"{name:<14}{'chance':<12}{attr['template_chance']:>20.3f}{attr['color_chance']:>18.3f}")
        print(f"{name:<14}{'attribute':<12}{attr['template_r@1']:>20.3f}{attr['color_r@1']:>18.3f}")
        print(f"{name:<14}{'relsim':<12}{med_t:>20.3f}{med_c:>18.3f}{ratio:>7.2f}x  template {min(tpl):.3f}-{max(tpl):.3f}")
        print(f"{'':<14}same template: {ratio:.2f}x the attribute baseline (goal >= 2x: "
              f"{'met' if ratio >= 2 else 'NOT met'}; worst seed {min(tpl) / max(attr['template_r@1'], 1e-9):.2f}x); "
              f"same colour attribute - relsim {attr['color_r@1'] - med_c:+.3f} "
              f"({'attribute wins' if attr['color_r@1'] > max(col) else 'attribute does NOT win on every seed'})")
        chart_rows += [{"eval set": name, "method": m, "task": t, "recall@1": v}
                       for m, vals in (("attribute", (attr["template_r@1"], attr["color_r@1"])), ("relsim", (med_t, med_c)),
                                       ("chance", (attr["template_chance"], attr["color_chance"])))
                       for t, v in zip(("same template", "same colour"), vals)]
    if mining_ws is not None:
        shares = [r["mining"] for r in runs]
        print(f"mining (issue 12): same-template/different-colour share of the top 20 relsim-minus-attribute "
              f"pairs, per seed: {', '.join(f'{x:.0%}' for x in shares)}; median {statistics.median(shares):.0%} "
              f"({'a majority' if statistics.median(shares) > 0.5 else 'NOT a majority'})")
    scratch.cleanup()
    try:
        import altair as alt
        import pandas as pd

        chart = alt.Chart(pd.DataFrame(chart_rows)).mark_bar().encode(
            x="method:N", y="recall@1:Q", color="method:N", column="task:N", row="eval set:N"
        ).properties(width=160, height=180)
        chart.save(a.out)
        print(f"plot: {a.out}")
    except Exception as e:  # the table is the result; the plot is a convenience
        print(f"plot not written: {e}")


if __name__ == "__main__":
    main()
