"""`relcurate loop ...`: the active-learning loops. `loop filter` configures the filter loop,
enqueues fast-head refreshes and LoRA retrains (the worker runs them), and reports where the
loop stands; `loop jobs` lists the job queue."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from relcurate.cli.common import DbOpt, WorkspaceOpt, err, open_workspace

app = typer.Typer(help="Active-learning loops and their background jobs.", no_args_is_help=True)
filter_app = typer.Typer(help="The filter loop: fast head, strategies, positives remaining.", no_args_is_help=True)
app.add_typer(filter_app, name="filter")
console = Console(soft_wrap=True)


def parse_mix(text: str) -> dict[str, float]:
    """"uncertainty=40,positive=30,diversity=20,random=10" -> quotas."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        try:
            if not sep:
                raise ValueError
            out[name.strip()] = float(value)
        except ValueError:
            raise typer.BadParameter(f"mix part {part!r} is not NAME=SHARE") from None
    return out


@filter_app.command("configure")
def configure(embedding: Annotated[Optional[str], typer.Option(help="Embedding space NAME:VERSION (vectors must exist).")] = None,
              every: Annotated[Optional[int], typer.Option(help="Refresh the fast head after this many new labels.")] = None,
              strategy: Annotated[Optional[str], typer.Option(help="Task order: mix | uncertainty | positive | diversity | random.")] = None,
              mix: Annotated[Optional[str], typer.Option(help="Quotas, e.g. uncertainty=40,positive=30,diversity=20,random=10.")] = None,
              enable: Annotated[Optional[bool], typer.Option("--enable/--disable", help="Automatic refreshes on or off.")] = None,
              workspace: WorkspaceOpt = Path("."), db: DbOpt = None) -> None:
    from relcurate.models.registry import ModelNotFound
    from relcurate.training.filter_loop import configure_loop

    ws = open_workspace(workspace, db)
    try:
        s = configure_loop(ws, embedding=embedding, every=every, strategy=strategy,
                           mix=parse_mix(mix) if mix else None, enabled=enable)
    except (ModelNotFound, ValueError) as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2)
    console.print(escape(json.dumps({"embedding": s.embedding, "every": s.every, "enabled": s.enabled})))


@filter_app.command("refresh")
def refresh(here: Annotated[bool, typer.Option("--here", help="Run it in this process instead of enqueueing it for the worker.")] = False,
            embedding: Annotated[Optional[str], typer.Option(help="Embedding space (default: the configured one).")] = None,
            workspace: WorkspaceOpt = Path("."), db: DbOpt = None) -> None:
    """Retrain the fast head on the consensus labels and re-rank the queue."""
    from relcurate.training.fast_head import FastHeadError, refresh_fast_head
    from relcurate.training.filter_loop import enqueue_refresh, get_loop

    ws = open_workspace(workspace, db)
    try:
        if here:
            emb = embedding or get_loop(ws).embedding
            if not emb:
                raise ValueError("no embedding space given or configured (--embedding NAME:VERSION)")
            res = refresh_fast_head(ws, emb, progress=lambda f, note: err.print(f"{f:4.0%} {escape(note)}"))
            console.print(escape(json.dumps(res.as_dict(), default=str)))
            return
        enq = enqueue_refresh(ws, embedding=embedding)
    except (FastHeadError, ValueError, LookupError) as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2)
    console.print(f"job {enq.job.id} " + ("queued" if enq.created else f"already {enq.job.state}") +
                  " (run `relcurate worker` to process it)")


@filter_app.command("retrain")
def retrain(base: str = typer.Option(..., "--base", help="a registered model or a local model path"),
            name: str = typer.Option("filter-ft", "--name", help="model name of the new version"),
            max_steps: int = typer.Option(None, "--max-steps"),
            workspace: WorkspaceOpt = Path("."), db: DbOpt = None) -> None:
    """Enqueue a LoRA retrain of the real filter on the consensus labels (the worker runs it)."""
    from relcurate.training.filter_loop import enqueue_retrain

    params = {"base": base, "name": name, **({"max_steps": max_steps} if max_steps else {})}
    enq = enqueue_retrain(open_workspace(workspace, db), params=params)
    console.print(f"job {enq.job.id} " + ("queued" if enq.created else f"already {enq.job.state}"))


@filter_app.command("status")
def status(workspace: WorkspaceOpt = Path("."), db: DbOpt = None) -> None:
    from relcurate.curation.labeling.queue_heads import composition_by_strategy, head_sizes
    from relcurate.training.fast_head import latest_fast_head, learning_curve
    from relcurate.training.filter_loop import get_loop, labels_since_refresh

    ws = open_workspace(workspace, db)
    s = get_loop(ws)
    now, seen = labels_since_refresh(ws, s)
    latest = latest_fast_head(ws, s.name)
    console.print(f"embedding: {escape(str(s.embedding))}  refresh every {s.every} labels  "
                  f"({now - seen} new since the last fast head)  heads: {escape(json.dumps(head_sizes(ws.engine)))}")
    if latest is not None and "positives_remaining" in latest.metrics:
        r = latest.metrics["positives_remaining"]
        console.print(f"positives remaining: ~{r['estimate']:.0f} [{r['low']:.0f}, {r['high']:.0f}] of "
                      f"{r['unlabeled']} unlabeled (audit {r['audit_size']})")
    t = Table("strategy", "leased", "done", "yes", "yes rate")
    for row in composition_by_strategy(ws.engine):
        t.add_row(escape(row["strategy"]), str(row["leased"]), str(row["done"]), str(row["yes"]),
                  "" if row["yes_rate"] is None else f"{row['yes_rate']:.0%}")
    console.print(t)
    c = Table("model", "labels", "split", "F1", "precision", "recall")
    for row in learning_curve(ws):
        c.add_row(escape(f"{row['model']}:{row['version']}"), str(row["labels"]), row["split"],
                  f"{row['f1']:.3f}", f"{row['precision']:.3f}", f"{row['recall']:.3f}")
    console.print(c)


@app.command("jobs")
def jobs_(limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
          workspace: WorkspaceOpt = Path("."), db: DbOpt = None) -> None:
    from relcurate.db.jobs import list_jobs

    t = Table("id", "kind", "state", "progress", "attempts", "note", "error")
    for j in list_jobs(open_workspace(workspace, db).engine, limit=limit):
        t.add_row(str(j.id), escape(j.kind), j.state, f"{j.progress:.0%}", f"{j.attempts}/{j.max_attempts}",
                  escape(j.progress_note or ""), escape((j.error or "").splitlines()[0] if j.error else ""))
    console.print(t)
