"""`relcurate pool score|keep`: filter a web-scale pool of shards without ingesting it.

Under `accelerate launch` (several GPUs, nodes, or `--cpu`) `pool score` runs once per process and
each takes its share of the shards; only the main process draws the live progress and the summary.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from relcurate.cli.common import DbOpt, WorkspaceOpt, err, open_workspace

app = typer.Typer(help="Score shards of a web-scale pool with a filter and keep the best.", no_args_is_help=True)
console = Console(soft_wrap=True)
MAX_BAD_LINES = 20


def _fmt_eta(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class _LiveProgress:
    """Shards done, images/s, keep rate so far (at the preview threshold), ETA."""

    def __init__(self, enabled: bool, label: str):
        self.enabled = enabled
        self.label = label
        self.prog: Progress | None = None
        self.task = None

    def __enter__(self):
        if self.enabled:
            self.prog = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("shards  {task.fields[images]} img  {task.fields[rate]} img/s  "
                                            "keep {task.fields[keep]}  bad {task.fields[bad]}  ETA {task.fields[eta]}"),
                                 TimeElapsedColumn(), console=err, transient=False)
            self.prog.__enter__()
            self.task = self.prog.add_task(self.label, total=None, images=0, rate="0.0", keep="-", bad=0, eta="--:--")
        return self

    def __call__(self, p) -> None:
        if self.prog is None:
            return
        self.prog.update(self.task, completed=p.shards_done, total=p.shards_total, images=p.images,
                         rate=f"{p.images_per_s:.1f}", keep=f"{100 * p.keep_rate:.2f}%" if p.images else "-",
                         bad=p.bad, eta=_fmt_eta(p.eta_s))

    def __exit__(self, *exc):
        if self.prog is not None:
            self.prog.__exit__(*exc)


@app.command("score")
def score(
    shards: Annotated[list[str], typer.Argument(help="webdataset .tar shards or parquet files: paths, globs or folders.")],
    model: Annotated[str, typer.Option("--model", help="name or name:version of a registered filter.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder (resumable: re-run the same command).")],
    batch_size: Annotated[int, typer.Option(help="Images per scoring batch.")] = 16,
    workers: Annotated[int, typer.Option(help="Data-loading processes decoding images per scoring process.")] = 2,
    preview_threshold: Annotated[float, typer.Option(help="P(Yes) at which the live 'keep' rate is counted.")] = 0.5,
    allow_private_urls: Annotated[bool, typer.Option(help="Permit loopback/private URLs in parquet shards.")] = False,
    workspace: WorkspaceOpt = Path("."),
    db: DbOpt = None,
) -> None:
    """P(Yes) for every image of the shards: one parquet per shard under OUT/shards plus a manifest."""
    from relcurate.curation.pool.scoring import process_state, score_shards, summarize
    from relcurate.curation.pool.shards import discover_shards
    from relcurate.models.registry import ModelNotFound, get_model_version, load_model

    state = process_state()
    ws = open_workspace(workspace, db)
    try:
        mv = get_model_version(ws, model)
    except (ModelNotFound, ValueError) as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2)
    if mv.kind != "filter":
        err.print(f"[red]error:[/] {escape(model)} is a {mv.kind} model, not a filter")
        raise typer.Exit(2)
    found, missing = discover_shards(shards)
    if not found:
        err.print("[red]error:[/] no shard found: " + escape(", ".join(f"{b.shard} ({b.detail})" for b in missing)))
        raise typer.Exit(2)
    label = f"{mv.name}:{mv.version}"
    live = _LiveProgress(state.is_local_main_process, f"pool score {label}"
                         + (f" [rank {state.process_index}/{state.num_processes}]" if state.num_processes > 1 else ""))
    try:
        with live:
            prog = score_shards(found, load_model(ws, mv), out, model_version=label, batch_size=batch_size,
                                workers=workers, preview_threshold=preview_threshold,
                                allow_private_urls=allow_private_urls, progress=live)
    except ValueError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2)
    if not state.is_main_process:
        return
    summary = summarize(out, extra_bad=missing, write_bad=True)
    table = Table("result", "value", title=f"pool score summary ({escape(str(out))})")
    table.add_row("model version", escape(summary.model_version))
    table.add_row("shards scored", f"{summary.shards_done} of {summary.shards_total}")
    table.add_row("samples read / scored", f"{summary.n_samples} / {summary.n_scored}")
    table.add_row("this process: images/s", f"{prog.images_per_s:.1f} ({prog.images} in {prog.elapsed_s:.1f} s, "
                  f"{prog.shards_skipped} shards already done)")
    table.add_row(f"keep rate at P(Yes) >= {preview_threshold}", f"{100 * prog.keep_rate:.2f}% (this run)")
    for reason, n in summary.bad_by_reason().items():
        table.add_row(f"bad: {escape(reason)}", str(n))
    console.print(table)
    for b in summary.bad[:MAX_BAD_LINES]:
        console.print(f"[yellow]bad[/] {escape(b['shard'])} key {escape(str(b['key']))}: "
                      f"{escape(b['reason'])} — {escape(b['detail'])}")
    if len(summary.bad) > MAX_BAD_LINES:
        console.print(f"... {len(summary.bad) - MAX_BAD_LINES} more in {escape(str(Path(out) / 'bad.jsonl'))}")
    if summary.missing:
        console.print(f"[yellow]{len(summary.missing)} shards not finished[/]: re-run the same command to resume")


@app.command("keep")
def keep(
    out_dir: Annotated[Path, typer.Argument(help="The folder `pool score --out` wrote.")],
    threshold: Annotated[Optional[float], typer.Option(help="Keep P(Yes) >= T.")] = None,
    keep_rate: Annotated[Optional[float], typer.Option(help="Keep the top share R of the pool (e.g. 0.007).")] = None,
    dest: Annotated[Optional[Path], typer.Option("--out", help="Keep-list file (default DIR/keep.parquet).")] = None,
    allow_partial: Annotated[bool, typer.Option(help="Use the shards scored so far.")] = False,
) -> None:
    """Write the kept list; `relcurate ingest KEEPLIST -w WS` ingests it with provenance."""
    from relcurate.curation.pool.keep import write_keep_list

    if (threshold is None) == (keep_rate is None):
        err.print("[red]error:[/] give exactly one of --threshold or --keep-rate")
        raise typer.Exit(2)
    try:
        res = write_keep_list(out_dir, threshold=threshold, keep_rate=keep_rate, dest=dest, allow_partial=allow_partial)
    except (ValueError, FileNotFoundError) as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2)
    console.print(f"kept {res.n_kept} of {res.n_scored} ({100 * res.keep_rate:.3f}%) at P(Yes) >= "
                  f"{res.threshold:.6g}: {escape(str(res.path))}")
    if res.missing_shards:
        console.print(f"[yellow]{len(res.missing_shards)} shards not scored yet were left out[/]")
