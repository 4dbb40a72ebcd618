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
from relcurate.cli import evaluation as evaluation_cli
from relcurate.cli import export as export_cli
from relcurate.cli import groups as groups_cli
from relcurate.cli import labeling as labeling_cli
from relcurate.cli import labelstudio as labelstudio_cli
from relcurate.cli import loop as loop_cli
from relcurate.cli import models as models_cli
from relcurate.cli import pool as pool_cli
from relcurate.cli import train as train_cli
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
app.add_typer(pool_cli.app, name="pool")
app.add_typer(labelstudio_cli.app, name="labelstudio")
app.add_typer(evaluation_cli.app, name="eval")
app.add_typer(train_cli.app, name="train")
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
    sources: Annotated[list[Path], typer.Argument(help="Folders, URL lists (.txt), reference JSONL, parquet, seed_group.json, pool keep lists.")],
    kind: Annotated[Optional[str], typer.Option(help="folder | urls | jsonl | parquet | seed_groups | keep_list (default: detect).")] = None,
    image_folder: Annotated[Optional[Path], typer.Option(help="For reference JSONL: folder holding <image_hash>.png.")] = None,
    download: Annotated[bool, typer.Option(help="Download pending URL images now.")] = True,
    allow_private_urls: Annotated[bool, typer.Option(help="Permit loopback/private/link-local URLs.")] = False,
    workers: Annotated[Optional[int], typer.Option(help="Decode processes (default: all cores).")] = None,
    recheck: Annotated[bool, typer.Option(help="Verify quarantined local files again (repaired files are stored).")] = False,
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
                                       allow_private_urls=allow_private_urls, workers=workers, progress=update,
                                       recheck=recheck)
            except ValueError as exc:
                err.print(f"[red]error:[/] {escape(str(exc))}")
                raise typer.Exit(2)
        total.merge(report)
    _audit_run(ws, "ingest", ", ".join(str(x) for x in sources), total)
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
    from relcurate.curation.intake import download_and_queue

    ws = open_workspace(workspace, db)
    with progress_bar("download") as update:
        report = download_and_queue(ws, allow_private=allow_private_urls, progress=update)
    _audit_run(ws, "download", None, report)
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
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port for the web app on 127.0.0.1.")] = 8501,
    serve: Annotated[bool, typer.Option(help="Start the web app after building the workspace.")] = True,
    relsim: Annotated[bool, typer.Option(help="Train (or reuse) a small relsim on the CPU and offer its space.")] = True,
) -> None:
    """Build (or reuse) a demo workspace of synthetic relational images and start the app."""
    from relcurate.curation.demo.build import build_demo

    with progress_bar("demo") as update:
        result = build_demo(workspace, n_images=images, progress=update)
    console.print(f"demo workspace: {escape(str(result.root))}")
    for line in result.messages:
        console.print(escape(line))
    if relsim:
        from relcurate.training.demo_relsim import train_demo_relsim
        from relcurate.workspace import Workspace

        with progress_bar("relsim") as update:
            trained = train_demo_relsim(Workspace.open(result.root), progress=update)
        for line in trained.messages:
            console.print(escape(line))
    from relcurate.training.demo_loop import configure_demo_loop
    from relcurate.workspace import Workspace

    _loop, message = configure_demo_loop(Workspace.open(result.root), trained.model_version if relsim else None)
    console.print(escape(message))
    if serve:
        _serve(result.root, port=port)


@app.command()
def serve(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on; a busy port is an error.")] = 8501,
    address: Annotated[str, typer.Option(help="Address to listen on (keep 127.0.0.1 behind a reverse proxy on this host).")] = "127.0.0.1",
    base_path: Annotated[str, typer.Option(help="URL prefix when a reverse proxy serves the app at a sub-path, e.g. team/relcurate.")] = "",
    worker: Annotated[bool, typer.Option(help="Also start the background job worker (`relcurate worker`).")] = True,
    grace: Annotated[float, typer.Option(min=0.0, help="Seconds children get to stop after SIGTERM/SIGINT/SIGHUP before they are killed.")] = 5.0,
    workspace: WorkspaceOpt = Path("."),
    db: DbOpt = None,
) -> None:
    """Start the web app (Streamlit) for this workspace and supervise it: SIGTERM, SIGINT or SIGHUP
    stops every process it started, then it exits with 128+signal."""
    ws = open_workspace(workspace, db)
    _serve(ws.root, port=port, address=address, base_path=base_path, worker=worker, grace=grace, db=db)


def _serve(root: Path, *, port: int, address: str = "127.0.0.1", base_path: str = "", worker: bool = True,
           grace: float = 5.0, db: str | None = None) -> None:
    from relcurate.labeling_ui import server

    try:
        settings = server.ServeSettings(root=root, port=port, address=address,
                                        base_path=server.normalise_base_path(base_path), db_url=db)
        server.check_port_free(settings.address, settings.port)  # before any message that it serves
        extra = []
        if worker:
            if _has_command("worker"):
                extra.append(server.worker_child(settings))
            else:
                err.print("note: this version has no `relcurate worker` command; serving the web app only")
        console.print(f"serving on {escape(settings.url)}  (health: {escape(settings.health_url)}; Ctrl-C to stop)")
        status = server.serve(settings, extra, grace_s=grace, log=lambda msg: err.print(escape(msg)))
    except server.ServeError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2)
    raise typer.Exit(status)


def _has_command(name: str) -> bool:
    group = typer.main.get_command(app)
    return name in getattr(group, "commands", {})


def _audit_run(ws, action: str, target: str | None, report) -> None:
    """Ingest and download runs join the audit trail under the operator's name."""
    from relcurate.audit import default_operator, record_event

    counts = {k: v for k, v in report.as_dict().items() if isinstance(v, int)}
    counts["quarantined"] = len(report.quarantined)
    record_event(ws.engine, channel="cli", actor=default_operator(), action=action,
                 target=None if target is None else target[-256:], detail=counts)


def _print_report(report) -> None:
    table = Table("result", "count", title="ingest summary")
    table.add_row("added", str(report.added))
    table.add_row("duplicates merged (new source for a stored image)", str(report.duplicates_merged))
    table.add_row("already known (skipped)", str(report.already_known))
    table.add_row("changed (known file with new bytes, read again)", str(report.changed))
    if report.rechecked:
        table.add_row("quarantined items re-verified (--recheck)", str(report.rechecked))
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
