"""`relcurate train filter|captioner|relsim`: thin wrappers over relcurate.training.

Run the same command under `accelerate launch` for several GPUs or nodes (see README); running it
again after an interruption resumes from the last complete checkpoint.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from relcurate.cli.common import DbOpt, WorkspaceOpt, err, open_workspace

app = typer.Typer(help="Train the filter, the anonymous captioner or relsim on the store's data.", no_args_is_help=True)
console = Console(soft_wrap=True)

BaseOpt = Annotated[Optional[str], typer.Option("--base", help="Base model: registered name[:version], path or hub id (default Qwen/Qwen2.5-VL-7B-Instruct).")]
NameOpt = Annotated[Optional[str], typer.Option("--name", help="Name of the model version to register.")]
EpochsOpt = Annotated[Optional[int], typer.Option(help="Epochs (default: the reference's).")]
StepsOpt = Annotated[Optional[int], typer.Option("--max-steps", help="Stop after this many optimizer steps.")]
BatchOpt = Annotated[Optional[int], typer.Option("--batch-size", help="Per-process micro-batch.")]
AccumOpt = Annotated[int, typer.Option("--grad-accum", help="Gradient accumulation steps.")]
LrOpt = Annotated[Optional[float], typer.Option("--lr", help="Learning rate.")]
CkptOpt = Annotated[int, typer.Option("--checkpoint-every", help="Checkpoint every N optimizer steps.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Training seed.")]
HeldOpt = Annotated[float, typer.Option("--heldout-fraction", help="Share of seed-group components held out.")]
TrackOpt = Annotated[Optional[list[str]], typer.Option("--tracker", help="local (default), tensorboard, wandb, ... (repeatable).")]
GcOpt = Annotated[bool, typer.Option("--gradient-checkpointing", help="Trade compute for memory.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", help="No progress bar.")]


def _loop(settings, epochs, max_steps, batch_size, grad_accum, lr, checkpoint_every, seed, tracker, gc, quiet):
    loop = settings.loop
    for key, value in (("epochs", epochs), ("max_steps", max_steps), ("batch_size", batch_size), ("lr", lr)):
        if value is not None:
            setattr(loop, key, value)
    loop.grad_accum, loop.checkpoint_every, loop.seed = grad_accum, checkpoint_every, seed
    loop.trackers = tuple(tracker) if tracker else ("local",)
    loop.gradient_checkpointing, loop.progress = gc, not quiet
    return settings


def _run(kind: str, workspace: Path, db, name, base, settings) -> None:
    from relcurate.training import train_model
    from relcurate.training.snapshot import TooLittleData

    ws = open_workspace(workspace, db)
    try:
        r = train_model(kind, ws, name=name or f"{kind}-ft", base=base, settings=settings)
    except TooLittleData as exc:
        err.print(f"[red]not enough data:[/] {escape(str(exc))}")
        raise typer.Exit(2)
    except (ValueError, FileNotFoundError) as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2)
    from accelerate import PartialState

    mv = r.model_version
    if mv is None or not PartialState().is_main_process:  # other processes under accelerate launch stay quiet
        return
    state = "already trained; reused" if r.reused else (f"resumed from step {r.resumed_from}" if r.resumed_from else "trained")
    console.print(f"{escape(mv.name)}:{mv.version} ({mv.kind}) {state}, {r.steps} steps; run folder {escape(str(r.run_dir))}")
    shown = {k: v for k, v in mv.metrics.items() if not isinstance(v, (list, dict))}
    console.print(escape(json.dumps(shown, indent=1, sort_keys=True, default=float)))


@app.command("relsim")
def relsim(workspace: WorkspaceOpt = Path("."), db: DbOpt = None, base: BaseOpt = None, name: NameOpt = None,
           epochs: EpochsOpt = None, max_steps: StepsOpt = None, batch_size: BatchOpt = None, grad_accum: AccumOpt = 1,
           lr: LrOpt = None, checkpoint_every: CkptOpt = 1000, seed: SeedOpt = 42, heldout_fraction: HeldOpt = 0.2,
           tracker: TrackOpt = None, gradient_checkpointing: GcOpt = False, quiet: QuietOpt = False,
           image_size: Annotated[int, typer.Option(help="Square training/inference size.")] = 448,
           symmetric: Annotated[bool, typer.Option(help="Add the text->image InfoNCE direction.")] = False,
           freeze_query_token: Annotated[bool, typer.Option(help="Keep <|query|> frozen (the reference's behaviour).")] = False,
           fixed_temperature: Annotated[bool, typer.Option(help="Fixed 0.07 (the reference) instead of learnable.")] = False,
           caption_source: Annotated[str, typer.Option(help="both | group | image captions.")] = "both") -> None:
    """relsim: LoRA + trainable <|query|> + projection, InfoNCE against MiniLM caption embeddings."""
    from relcurate.training.relsim_trainer import RelsimSettings

    s = RelsimSettings(image_size=image_size, symmetric=symmetric, train_query_token=not freeze_query_token,
                       learnable_temperature=not fixed_temperature, heldout_fraction=heldout_fraction,
                       caption_source=caption_source)
    _run("relsim", workspace, db, name, base, _loop(s, epochs, max_steps, batch_size, grad_accum, lr, checkpoint_every,
                                                    seed, tracker, gradient_checkpointing, quiet))


@app.command("filter")
def filter_(workspace: WorkspaceOpt = Path("."), db: DbOpt = None, base: BaseOpt = None, name: NameOpt = None,
            epochs: EpochsOpt = None, max_steps: StepsOpt = None, batch_size: BatchOpt = None, grad_accum: AccumOpt = 1,
            lr: LrOpt = None, checkpoint_every: CkptOpt = 1000, seed: SeedOpt = 42, heldout_fraction: HeldOpt = 0.2,
            tracker: TrackOpt = None, gradient_checkpointing: GcOpt = False, quiet: QuietOpt = False,
            min_votes: Annotated[int, typer.Option(help="2: drop majority labels from a single annotator.")] = 1,
            threshold_target: Annotated[str, typer.Option(help="precision | recall")] = "precision",
            threshold_value: Annotated[float, typer.Option(help="Target held-out precision/recall.")] = 0.9,
            no_class_weights: Annotated[bool, typer.Option(help="Unweighted loss.")] = False) -> None:
    """The interesting-image filter: SFT on consensus labels, answer "Yes"/"No"."""
    from relcurate.training.filter_trainer import FilterSettings

    s = FilterSettings(min_votes=min_votes, threshold_target=threshold_target, threshold_value=threshold_value,
                       class_weights=not no_class_weights, heldout_fraction=heldout_fraction)
    _run("filter", workspace, db, name, base, _loop(s, epochs, max_steps, batch_size, grad_accum, lr, checkpoint_every,
                                                    seed, tracker, gradient_checkpointing, quiet))


@app.command("captioner")
def captioner(workspace: WorkspaceOpt = Path("."), db: DbOpt = None, base: BaseOpt = None, name: NameOpt = None,
              epochs: EpochsOpt = None, max_steps: StepsOpt = None, batch_size: BatchOpt = None,
              grad_accum: AccumOpt = 1, lr: LrOpt = None, checkpoint_every: CkptOpt = 1000, seed: SeedOpt = 42,
              heldout_fraction: HeldOpt = 0.2, tracker: TrackOpt = None, gradient_checkpointing: GcOpt = False,
              quiet: QuietOpt = False,
              per: Annotated[str, typer.Option(help="image (the reference) | group (one prompt per group).")] = "image") -> None:
    """The anonymous captioner: SFT on accepted group captions."""
    from relcurate.training.captioner_trainer import CaptionerSettings

    s = CaptionerSettings(per=per, heldout_fraction=heldout_fraction)
    _run("captioner", workspace, db, name, base, _loop(s, epochs, max_steps, batch_size, grad_accum, lr,
                                                       checkpoint_every, seed, tracker, gradient_checkpointing, quiet))
