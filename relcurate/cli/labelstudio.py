"""`relcurate labelstudio ...`: Label Studio as a second front end (library:
relcurate/curation/labelstudio). The token is never printed."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from relcurate.cli.common import DbOpt, WorkspaceOpt, err, open_workspace, progress_bar

app = typer.Typer(help="Label Studio: connect or serve, push tasks, pull annotations, listen for webhooks.",
                  no_args_is_help=True)
console = Console(soft_wrap=True)


def _fail(exc: Exception) -> None:
    err.print(f"[red]error:[/] {escape(str(exc))}")
    raise typer.Exit(2)


def _client(ws):
    from relcurate.curation.labelstudio.connection import LabelStudioError, LSClient

    try:
        return LSClient.from_workspace(ws)
    except LabelStudioError as exc:
        _fail(exc)


def _problems(problems: list[str]) -> None:
    for p in problems:
        err.print(f"[yellow]warning:[/] {escape(p)}")


@app.command("connect")
def connect(url: Annotated[str, typer.Option(help="Label Studio URL, e.g. http://127.0.0.1:8080")],
            token: Annotated[str, typer.Option(help="API token (legacy token or personal access token).",
                                               envvar="RELCURATE_LS_TOKEN", show_envvar=True)],
            document_root: Annotated[Optional[Path], typer.Option(
                help="The server's LOCAL_FILES_DOCUMENT_ROOT, if not this workspace folder (it must contain it).")] = None,
            workspace: WorkspaceOpt = Path("."), db: DbOpt = None) -> None:
    """Check the server and the token, then keep them in the workspace (labelstudio.toml, 0600)."""
    from relcurate.curation.labelstudio.connection import LabelStudioError, LSClient, LSConfig, save_config

    ws = open_workspace(workspace, db)
    try:
        with LSClient(url, token) as client:
            info = client.check()
            save_config(ws, LSConfig(client.url, token,
                                     document_root=str(document_root.resolve()) if document_root else None))
    except LabelStudioError as exc:
        _fail(exc)
    console.print(f"connected to Label Studio {escape(str(info['version']))} at {escape(client.url)} as "
                  f"{escape(str(info['user']))} (token stored, not shown)")


@app.command("serve")
def serve(port: Annotated[Optional[int], typer.Option(help="Port on 127.0.0.1 (default: chosen once, kept).")] = None,
          workspace: WorkspaceOpt = Path("."), db: DbOpt = None) -> None:
    """Start a local Label Studio for this workspace and connect to it; Ctrl-C stops it."""
    from relcurate.curation.labelstudio.connection import LabelStudioError
    from relcurate.curation.labelstudio.server import serve_workspace

    ws = open_workspace(workspace, db)
    err.print("starting Label Studio (the first start migrates its database: about a minute)...")
    try:
        server, login = serve_workspace(ws)
    except LabelStudioError as exc:
        _fail(exc)
    console.print(f"Label Studio at {escape(server.url)}; admin login in {escape(str(login))}")
    try:
        server.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


@app.command("push")
def push(what: Annotated[str, typer.Argument(help="filter | caption")] = "filter",
         limit: Annotated[Optional[int], typer.Option(help="At most this many new tasks (queue order).")] = None,
         model: Annotated[Optional[str], typer.Option(help="Filter model NAME[:VERSION] for predictions "
                                                           "(default: newest with predictions).")] = None,
         restore_config: Annotated[bool, typer.Option(help="Put back relcurate's label config first.")] = False,
         workspace: WorkspaceOpt = Path("."), db: DbOpt = None) -> None:
    """Create/update the project and import the tasks relcurate's queue selects (idempotent)."""
    from relcurate.curation.labelstudio.connection import LabelStudioError
    from relcurate.curation.labelstudio.push import push_captions, push_filter

    ws = open_workspace(workspace, db)
    client = _client(ws)
    try:
        if what == "filter":
            with progress_bar("push filter tasks") as update:
                res = push_filter(ws, client, limit=limit, model_version=model, restore_config=restore_config,
                                  progress=update)
        elif what == "caption":
            res = push_captions(ws, client, limit=limit, restore_config=restore_config)
        else:
            _fail(ValueError(f"unknown project {what!r}: filter | caption"))
    except LabelStudioError as exc:
        _fail(exc)
    _problems(res.problems)
    mv = f" with predictions of {escape(res.model_version)}" if res.model_version else ""
    console.print(f"project {res.project_id}: {res.pushed} new task(s){mv}, {res.already} already there")


@app.command("pull")
def pull(what: Annotated[str, typer.Argument(help="filter | caption")] = "filter",
         workspace: WorkspaceOpt = Path("."), db: DbOpt = None) -> None:
    """Ingest annotations (new, changed, deleted) as label / caption-review events (idempotent)."""
    from relcurate.curation.labelstudio.connection import LabelStudioError
    from relcurate.curation.labelstudio.pull import pull as pull_project

    ws = open_workspace(workspace, db)
    try:
        res = pull_project(ws, _client(ws), what)
    except LabelStudioError as exc:
        _fail(exc)
    _problems(res.problems)
    console.print(f"project {res.project_id}: {res.new} new, {res.updated} changed, {res.deleted} deleted, "
                  f"{res.unchanged} unchanged annotation(s); {res.deleted_tasks} task(s) deleted in Label Studio")


@app.command("listen")
def listen(port: Annotated[int, typer.Option(help="Receiver port on --host.")] = 8765,
           host: Annotated[str, typer.Option(help="Receiver bind address.")] = "127.0.0.1",
           public_url: Annotated[Optional[str], typer.Option(help="URL Label Studio should call "
                                                                  "(default: the receiver's own).")] = None,
           what: Annotated[str, typer.Option(help="filter | caption")] = "filter",
           workspace: WorkspaceOpt = Path("."), db: DbOpt = None) -> None:
    """Receive annotation webhooks and ingest them as they happen (Ctrl-C stops)."""
    from relcurate.curation.labelstudio.connection import LabelStudioError, load_config
    from relcurate.curation.labelstudio.webhooks import WebhookReceiver, register_webhook

    ws = open_workspace(workspace, db)
    client = _client(ws)
    try:
        url = public_url or f"http://{host}:{port}/"
        register_webhook(ws, client, url, what)
        receiver = WebhookReceiver(ws, client, load_config(ws).webhook_secret, host=host, port=port)
    except (LabelStudioError, OSError) as exc:
        _fail(exc)
    receiver.start()
    console.print(f"listening on {escape(receiver.url)} (webhook registered; missed events are caught by "
                  f"`relcurate labelstudio pull`)")
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        receiver.stop()
        st = receiver.stats
        console.print(f"received {st.received}, refused {st.refused}, ingested {st.ingested.changed}")


@app.command("map-user")
def map_user_cmd(email: Annotated[str, typer.Argument(help="Label Studio user e-mail")],
                 username: Annotated[str, typer.Argument(help="relcurate user")],
                 workspace: WorkspaceOpt = Path("."), db: DbOpt = None) -> None:
    """Attribute a Label Studio user's annotations to an existing relcurate user."""
    from relcurate.curation.labelstudio.connection import LabelStudioError, load_config
    from relcurate.curation.labelstudio.mapping import map_user

    ws = open_workspace(workspace, db)
    try:
        map_user(ws, load_config(ws).url, email, username)
    except LabelStudioError as exc:
        _fail(exc)
    console.print(f"{escape(email)} -> {escape(username)}")
