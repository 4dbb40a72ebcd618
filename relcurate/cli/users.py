"""`relcurate users ...`: manage accounts from the shell (the admin page does the same).

An operator tool, not a security boundary: anyone who can run it against a workspace can also
open its database, so it asks for no password. Every change is recorded in the audit trail with
the operator's name (`--operator`, RELCURATE_OPERATOR, else the OS login); `users audit` lists it."""
from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from relcurate.cli.common import DbOpt, OperatorOpt, WorkspaceOpt, err, open_workspace, operator_name

app = typer.Typer(help="Manage user accounts.", no_args_is_help=True)
console = Console(soft_wrap=True)


@app.command("add")
def add(
    username: str,
    role: Annotated[str, typer.Option(help="annotator | curator | reviewer | admin")] = "annotator",
    password: Annotated[Optional[str], typer.Option(help="Password (default: generated and printed once).")] = None,
    workspace: WorkspaceOpt = Path("."),
    db: DbOpt = None,
    operator: OperatorOpt = None,
) -> None:
    from relcurate.accounts import AccountError, create_user

    ws = open_workspace(workspace, db)
    pw = password or secrets.token_urlsafe(12)
    try:
        create_user(ws.engine, username, pw, role, by=operator_name(operator), channel="cli")
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
def role(username: str, new_role: str, workspace: WorkspaceOpt = Path("."), db: DbOpt = None,
         operator: OperatorOpt = None) -> None:
    """Change a role (recorded in the audit trail under the operator's name)."""
    from relcurate.accounts import AccountError, set_role

    try:
        set_role(open_workspace(workspace, db).engine, username, new_role, by=operator_name(operator), channel="cli")
    except (AccountError, ValueError) as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2)


@app.command("disable")
def disable(username: str, workspace: WorkspaceOpt = Path("."), db: DbOpt = None,
            operator: OperatorOpt = None) -> None:
    from relcurate.accounts import AccountError, set_active

    try:
        set_active(open_workspace(workspace, db).engine, username, False, by=operator_name(operator), channel="cli")
    except AccountError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2)


@app.command("passwd")
def passwd(username: str, workspace: WorkspaceOpt = Path("."), db: DbOpt = None,
           operator: OperatorOpt = None) -> None:
    """Set a new generated password and print it once (the audit trail records that, not it)."""
    from relcurate.accounts import AccountError, set_password

    pw = secrets.token_urlsafe(12)
    try:
        set_password(open_workspace(workspace, db).engine, username, pw, by=operator_name(operator), channel="cli")
    except AccountError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2)
    console.print(f"new password for {escape(username)}: {pw}")


@app.command("audit")
def audit(limit: Annotated[int, typer.Option(help="How many events, newest first.")] = 50,
          workspace: WorkspaceOpt = Path("."), db: DbOpt = None) -> None:
    """The audit trail: account and export actions with who (user or operator) and channel."""
    from relcurate.audit import audit_log

    table = Table("when", "channel", "who", "action", "target")
    for e in audit_log(open_workspace(workspace, db).engine, limit=limit):
        table.add_row(f"{e.created_at:%Y-%m-%d %H:%M:%S}", e.channel, escape(e.actor), escape(e.action),
                      escape(e.target or ""))
    console.print(table)
