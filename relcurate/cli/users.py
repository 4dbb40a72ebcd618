"""`relcurate users ...`: manage accounts from the shell (the admin page does the same)."""
from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from relcurate.cli.common import DbOpt, WorkspaceOpt, err, open_workspace

app = typer.Typer(help="Manage user accounts.", no_args_is_help=True)
console = Console(soft_wrap=True)


@app.command("add")
def add(
    username: str,
    role: Annotated[str, typer.Option(help="annotator | curator | reviewer | admin")] = "annotator",
    password: Annotated[Optional[str], typer.Option(help="Password (default: generated and printed once).")] = None,
    workspace: WorkspaceOpt = Path("."),
    db: DbOpt = None,
) -> None:
    from relcurate.accounts import AccountError, create_user

    ws = open_workspace(workspace, db)
    pw = password or secrets.token_urlsafe(12)
    try:
        create_user(ws.engine, username, pw, role)
    except (AccountError, ValueError) as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2)
    console.print(f"created {escape(username)} ({escape(role)})" + ("" if password else f" password: {pw}"))


@app.command("list")
def list_(workspace: WorkspaceOpt = Path("."), db: DbOpt = None) -> None:
    from relcurate.accounts import list_users

    table = Table("username", "role", "active", "created")
    for u in list_users(open_workspace(workspace, db).engine):
        table.add_row(escape(u.username), u.role, "yes" if u.active else "no", f"{u.created_at:%Y-%m-%d %H:%M}")
    console.print(table)


@app.command("role")
def role(username: str, new_role: str, workspace: WorkspaceOpt = Path("."), db: DbOpt = None) -> None:
    from relcurate.accounts import AccountError, set_role

    try:
        set_role(open_workspace(workspace, db).engine, username, new_role)
    except (AccountError, ValueError) as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2)


@app.command("disable")
def disable(username: str, workspace: WorkspaceOpt = Path("."), db: DbOpt = None) -> None:
    from relcurate.accounts import AccountError, set_active

    try:
        set_active(open_workspace(workspace, db).engine, username, False)
    except AccountError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2)


@app.command("passwd")
def passwd(username: str, workspace: WorkspaceOpt = Path("."), db: DbOpt = None) -> None:
    """Set a new generated password and print it once."""
    from relcurate.accounts import AccountError, set_password

    pw = secrets.token_urlsafe(12)
    try:
        set_password(open_workspace(workspace, db).engine, username, pw)
    except AccountError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2)
    console.print(f"new password for {escape(username)}: {pw}")
