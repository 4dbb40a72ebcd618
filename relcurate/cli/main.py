"""`relcurate` command line: thin wrappers over library functions."""
from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from relcurate.cli.common import DbOpt, WorkspaceOpt, err, open_workspace, progress_bar
from relcurate.cli import captions as captions_cli
from relcurate.cli import export as export_cli
from relcurate.cli import groups as groups_cli
from relcurate.cli import labeling as labeling_cli
from relcurate.cli import loop as loop_cli
from relcurate.cli import models as models_cli
from relcurate.cli import users as users_cli
from relcurate.cli import worker as worker_cli

app = typer.Typer(help="relcurate: curate data for relational visual similarity.", no_args_is_help=True)
app.add_typer(users_cli.app, name="users")
console = Console(soft_wrap=True)


app.add_typer(captions_cli.app, name="captions")
app.add_typer(models_cli.app, name="models")
app.add_typer(export_cli.app, name="export")
app.add_typer(groups_cli.app, name="groups")
app.add_typer(labeling_cli.app, name="labeling")
app.add_typer(loop_cli.app, name="loop")
app.command("worker")(worker_cli.worker)


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Workspace folder (created if missing).")] = Path("."),
    db: DbOpt = None,
) -> None:
    """Create a workspace, or upgrade its database to the latest schema."""
    from relcurate.workspace import Workspace

    ws = Workspace.init(directory, db_url=db)
    console.print(f"workspace ready: {escape(str(ws.root))} (database: {escape(_safe_url(ws.db_url))})")


@app.command()
def ingest(
    sources: Annotated[list[Path], typer.Argument(help="Folders, URL lists (.txt), reference JSONL, parquet, seed_group.json.")],
    kind: Annotated[Optional[str], typer.Option(help="folder | urls | jsonl | parquet | seed_groups (default: detect).")] = None,
    image_folder: Annotated[Optional[Path], typer.Option(help="For reference JSONL: folder holding <image_hash>.png.")] = None,
    download: Annotated[bool, typer.Option(help="Download pending URL images now.")] = True,
    allow_private_urls: Annotated[bool, typer.Option(help="Permit loopback/private/link-local URLs.")] = False,
    workers: Annotated[Optional[int], typer.Option(help="Decode processes (default: all cores).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    workspace: WorkspaceOpt = Path("."),
    db: DbOpt = None,
) -> None:
    """Ingest images: verify, hash, store, quarantine the bad ones with a reason."""
    from relcurate.curation.ingest.store_writes import IngestReport
    from relcurate.curation.intake import ingest_and_queue

    ws = open_workspace(workspace, db)
    total = IngestReport()
    for src in sources:
        if not src.exists():
            err.print(f"[red]error:[/] {escape(str(src))}: no such file or folder")
            raise typer.Exit(2)
        with progress_bar(f"ingest {src.name}", quiet=as_json) as update:
            try:
                report = ingest_and_queue(ws, src, kind=kind, image_folder=image_folder, download=download,
                                       allow_private_urls=allow_private_urls, workers=workers, progress=update)
            except ValueError as exc:
                err.print(f"[red]error:[/] {escape(str(exc))}")
                raise typer.Exit(2)
        total.merge(report)
    if as_json:
        typer.echo(json.dumps(total.as_dict(), indent=2, sort_keys=True))
        return
    _print_report(total)


@app.command()
def download(
    allow_private_urls: Annotated[bool, typer.Option(help="Permit loopback/private/link-local URLs.")] = False,
    workspace: WorkspaceOpt = Path("."),
    db: DbOpt = None,
) -> None:
    """Download every image still pending (resumable)."""
    from relcurate.curation.ingest.dedup import record_near_duplicates
    from relcurate.curation.ingest.pending_downloads import download_pending

    ws = open_workspace(workspace, db)
    with progress_bar("download") as update:
        report = download_pending(ws, allow_private=allow_private_urls, progress=update)
    report.near_duplicates += record_near_duplicates(ws, report.new_image_ids)
    if report.downloaded:
        from relcurate.curation.labeling.leases import sync_pool

        sync_pool(ws.engine, full=True)
    _print_report(report)


@app.command()
def stats(
    as_json: Annotated[bool, typer.Option("--json", help="Stable JSON for scripts.")] = False,
    workspace: WorkspaceOpt = Path("."),
    db: DbOpt = None,
) -> None:
    """Counts of images by status, labels, groups, captions and users."""
    from relcurate.curation.catalog.stats import workspace_stats

    data = workspace_stats(open_workspace(workspace, db))
    if as_json:
        typer.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    table = Table("what", "count", title="relcurate stats")
    for section, values in data.items():
        if not isinstance(values, dict):
            continue
        for key, val in values.items():
            if isinstance(val, dict):
                for k2, v2 in val.items():
                    table.add_row(f"{section}.{key}.{escape(str(k2))}", str(v2))
            else:
                table.add_row(f"{section}.{key}", str(val))
    console.print(table)


@app.command()
def quarantine(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    workspace: WorkspaceOpt = Path("."),
    db: DbOpt = None,
) -> None:
    """List every quarantined image and rejected record with its reason."""
    from relcurate.curation.ingest.store_writes import quarantine_report

    rows = quarantine_report(open_workspace(workspace, db))
    if as_json:
        for where, reason, detail in rows:
            typer.echo(json.dumps({"where": where, "reason": reason, "detail": detail}))
        return
    table = Table("where", "reason", "detail", title=f"quarantine ({len(rows)})")
    for where, reason, detail in rows:
        table.add_row(escape(where), escape(reason), escape(detail))
    console.print(table)


@app.command()
def demo(
    workspace: WorkspaceOpt = Path("demo-workspace"),
    images: Annotated[int, typer.Option(help="How many synthetic images to generate.")] = 300,
    port: Annotated[int, typer.Option(help="Port for the web app on 127.0.0.1.")] = 8501,
    serve: Annotated[bool, typer.Option(help="Start the web app after building the workspace.")] = True,
) -> None:
    """Build (or reuse) a demo workspace of synthetic relational images and start the app."""
    from relcurate.curation.demo.build import build_demo

    with progress_bar("demo") as update:
        result = build_demo(workspace, n_images=images, progress=update)
    console.print(f"demo workspace: {escape(str(result.root))}")
    for line in result.messages:
        console.print(escape(line))
    if serve:
        _serve(result.root, port)


@app.command()
def serve(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8501,
    workspace: WorkspaceOpt = Path("."),
) -> None:
    """Start the web app (Streamlit) for this workspace on 127.0.0.1."""
    ws = open_workspace(workspace, None)
    _serve(ws.root, port)


def _serve(root: Path, port: int) -> None:
    import os
    import subprocess
    import sys

    app_path = Path(__file__).resolve().parents[1] / "labeling_ui" / "app.py"
    env = dict(os.environ, RELCURATE_WORKSPACE=str(root))
    cmd = [sys.executable, "-m", "streamlit", "run", str(app_path), "--server.headless", "true",
           "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none", "--client.toolbarMode", "minimal",
           # A full GC after every rerun doubled key-press-to-next-image latency (bench/label_latency.py).
           "--runner.postScriptGC", "false"]
    console.print(f"serving on http://127.0.0.1:{port}  (Ctrl-C to stop)")
    raise typer.Exit(subprocess.call(cmd, env=env))


def _print_report(report) -> None:
    table = Table("result", "count", title="ingest summary")
    table.add_row("added", str(report.added))
    table.add_row("duplicates merged (new source for a stored image)", str(report.duplicates_merged))
    table.add_row("already known (skipped)", str(report.already_known))
    table.add_row("pending download", str(report.pending_download))
    table.add_row("downloaded", str(report.downloaded))
    table.add_row("quarantined", str(len(report.quarantined)))
    table.add_row("near-duplicate pairs recorded", str(report.near_duplicates))
    console.print(table)
    for q in report.quarantined:
        console.print(f"[yellow]quarantined[/] {escape(q.where)}: {escape(q.reason)} — {escape(q.detail)}")
    for w in report.warnings:
        console.print(f"[yellow]warning[/] {escape(w)}")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def new_password() -> str:
    return secrets.token_urlsafe(12)


if __name__ == "__main__":
    app()
