"""Options and helpers shared by every command."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Callable, Iterator, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

WorkspaceOpt = Annotated[Path, typer.Option("--workspace", "-w", help="Workspace folder (default: current directory).")]
DbOpt = Annotated[Optional[str], typer.Option("--db", help="Database URL (overrides the workspace config and RELCURATE_DB_URL).")]

# Not a login: the CLI is an operator tool for whoever can open the workspace files or the
# database (see relcurate/audit.py). The name is what the audit trail records for this action.
OperatorOpt = Annotated[Optional[str], typer.Option(
    "--operator", envvar="RELCURATE_OPERATOR",
    help="Name recorded in the audit trail for this action (default: RELCURATE_OPERATOR, else your OS login). "
         "Not a permission check: the CLI trusts whoever can open the workspace.")]

err = Console(stderr=True, soft_wrap=True)  # never hard-wrap a message: it names files


def open_workspace(path: Path, db: str | None):
    from relcurate.workspace import Workspace, WorkspaceError

    try:
        return Workspace.open(path, db_url=db)
    except WorkspaceError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2)


@contextmanager
def progress_bar(label: str, quiet: bool = False) -> Iterator[Callable[[int, int], None]]:
    """Yields an `update(done, total)` callback that drives a rich progress bar on stderr."""
    if quiet:
        yield lambda done, total: None
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=err, transient=False) as prog:
        task = prog.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            prog.update(task, completed=done, total=total)

        yield update


def operator_name(given: str | None) -> str:
    from relcurate.audit import default_operator

    return given.strip() if given and given.strip() else default_operator()
