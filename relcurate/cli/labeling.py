"""`relcurate labeling ...`: the filter-labeling queue, gold questions and agreement from the shell
(the Labeling setup and Dashboard pages show the same)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from relcurate.cli.common import DbOpt, WorkspaceOpt, err, open_workspace

app = typer.Typer(help="Filter-labeling queue, gold questions, agreement and consensus.", no_args_is_help=True)
console = Console(soft_wrap=True)


def _fmt(x: float | None, pattern: str = "{:.3f}") -> str:
    return "—" if x is None else pattern.format(x)


@app.command("sync")
def sync(full: Annotated[bool, typer.Option(help="Also pool older images that became usable, close quarantined ones.")] = False,
         workspace: WorkspaceOpt = Path("."), db: DbOpt = None) -> None:
    """Add newly ingested images to the labeling pool."""
    from relcurate.curation.labeling.leases import sync_pool

    n = sync_pool(open_workspace(workspace, db).engine, full=full)
    console.print(f"pooled {n} image{'s' if n != 1 else ''}")


@app.command("config")
def config(
    overlap_k: Annotated[Optional[int], typer.Option(help="Annotators per overlap image.")] = None,
    overlap_fraction: Annotated[Optional[float], typer.Option(help="Share of images labelled by k annotators.")] = None,
    gold_rate: Annotated[Optional[float], typer.Option(help="Chance that a task is a gold question.")] = None,
    lease_minutes: Annotated[Optional[int], typer.Option(help="How long a handed-out task is reserved.")] = None,
    strategy: Annotated[Optional[str], typer.Option(help="Task order (random, sequential, or a registered one).")] = None,
    min_dwell_ms: Annotated[Optional[int], typer.Option(help="How long an image must be on screen before a key counts.")] = None,
    workspace: WorkspaceOpt = Path("."), db: DbOpt = None,
) -> None:
    """Show the queue settings, or change the ones given."""
    from relcurate.curation.labeling import leases
    from relcurate.curation.labeling.leases import QueueError, get_config, set_config

    ws = open_workspace(workspace, db)
    changes = dict(overlap_k=overlap_k, overlap_fraction=overlap_fraction, gold_rate=gold_rate,
                   lease_seconds=lease_minutes * 60 if lease_minutes is not None else None, strategy=strategy,
                   min_dwell_ms=min_dwell_ms)
    if any(v is not None for v in changes.values()):
        try:
            set_config(ws.engine, **changes)
        except QueueError as exc:
            err.print(f"[red]error:[/] {escape(str(exc))}")
            raise typer.Exit(2)
    cfg = get_config(ws.engine)
    table = Table("setting", "value")
    for name in ("overlap_k", "overlap_fraction", "gold_rate", "lease_seconds", "strategy"):
        table.add_row(name, escape(str(getattr(cfg, name))))
    table.add_row("min_dwell_ms", str(leases.min_dwell_ms(ws.engine)))
    console.print(table)


@app.command("status")
def status(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
           workspace: WorkspaceOpt = Path("."), db: DbOpt = None) -> None:
    """Queue sizes and the adjudication backlog."""
    from relcurate.curation.labeling.agreement import count_disputes
    from relcurate.curation.labeling.leases import queue_sizes

    ws = open_workspace(workspace, db)
    sizes = {**queue_sizes(ws.engine), "awaiting_adjudication": count_disputes(ws.engine)}
    if as_json:
        console.print_json(json.dumps(sizes))
        return
    table = Table("measure", "count")
    for k, v in sizes.items():
        table.add_row(k, str(v))
    console.print(table)


@app.command("agreement")
def agreement_cmd(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
                  workspace: WorkspaceOpt = Path("."), db: DbOpt = None) -> None:
    """Cohen's kappa per annotator pair, Krippendorff's alpha, positive rate and gold accuracy."""
    from relcurate.curation.labeling.agreement import agreement_report

    rep = agreement_report(open_workspace(workspace, db).engine)
    if as_json:
        console.print_json(json.dumps({
            "alpha": rep.alpha, "alpha_units": rep.alpha_units,
            "pairs": [vars(p) for p in rep.pairs],
            "annotators": [{**vars(a), "positive_rate": a.positive_rate, "gold_accuracy": a.gold_accuracy}
                           for a in rep.annotators]}))
        return
    console.print(f"Krippendorff's alpha (nominal): {_fmt(rep.alpha)} over {rep.alpha_units} images")
    pairs = Table("annotator", "with", "n", "agreement", "kappa", title="pairs")
    for p in rep.pairs:
        pairs.add_row(escape(p.user_a), escape(p.user_b), str(p.n), _fmt(p.observed, "{:.0%}"), _fmt(p.kappa))
    console.print(pairs)
    people = Table("annotator", "yes", "no", "skip", "positive rate", "gold n", "gold accuracy", title="annotators")
    for a in rep.annotators:
        people.add_row(escape(a.username), str(a.yes), str(a.no), str(a.skip), _fmt(a.positive_rate, "{:.0%}"),
                       str(a.gold_n), _fmt(a.gold_accuracy, "{:.0%}"))
    console.print(people)


@app.command("gold")
def gold(image_id: int, answer: Annotated[str, typer.Argument(help="yes | no | remove")],
         note: Annotated[Optional[str], typer.Option()] = None,
         workspace: WorkspaceOpt = Path("."), db: DbOpt = None) -> None:
    """Make an image a gold question with a known answer (or remove it)."""
    from relcurate.curation.labeling.leases import QueueError, remove_gold, set_gold

    ws = open_workspace(workspace, db)
    try:
        if answer == "remove":
            console.print("removed" if remove_gold(ws.engine, image_id) else "was not a gold question")
        else:
            set_gold(ws.engine, image_id, answer, note=note)
            console.print(f"image {image_id}: gold {escape(answer)}")
    except (QueueError, ValueError) as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2)


@app.command("consensus")
def consensus_cmd(out: Annotated[Path, typer.Option("--out", "-o", help="JSONL file to write.")],
                  workspace: WorkspaceOpt = Path("."), db: DbOpt = None) -> None:
    """Write the consensus label of every labelled image (adjudication > gold > majority)."""
    from relcurate.curation.labeling.agreement import consensus

    rows = consensus(open_workspace(workspace, db).engine)
    with out.open("w") as f:
        for c in rows.values():
            f.write(json.dumps({"image_id": c.image_id, "answer": c.answer, "method": c.method,
                                "yes": c.yes, "no": c.no}) + "\n")
    ties = sum(c.answer is None for c in rows.values())
    console.print(f"wrote {len(rows)} consensus labels to {escape(str(out))} ({ties} ties without an answer)")
