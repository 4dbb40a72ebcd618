"""`relcurate groups ...`: list seed groups, split oversized ones, compare two curators."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from relcurate.cli.common import DbOpt, WorkspaceOpt, err, open_workspace

app = typer.Typer(help="Seed groups: list, split oversized groups, compare curators.", no_args_is_help=True)
console = Console(soft_wrap=True)


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[red]error:[/] {escape(message)}")
    raise typer.Exit(code)


@app.command("list")
def list_(
    status: Annotated[Optional[str], typer.Option(help="Only groups with this status.")] = None,
    needs_split: Annotated[bool, typer.Option("--needs-split", help="Only groups with more than 10 images.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    workspace: WorkspaceOpt = Path("."),
    db: DbOpt = None,
) -> None:
    from relcurate.curation.groups import captions, membership as groups

    ws = open_workspace(workspace, db)
    rows = groups.list_groups(ws, status=status, needs_split=True if needs_split else None)
    accepted = captions.accepted_group_captions(ws)
    if as_json:
        for g in rows:
            print(json.dumps({"id": g.id, "name": g.name, "status": g.status, "members": g.n_members,
                              "needs_split": g.needs_split, "source": g.source, "created_by": g.created_by,
                              "accepted_caption": accepted.get(g.id)}))
        return
    table = Table("id", "name", "status", "images", "by", "accepted caption")
    for g in rows:
        table.add_row(str(g.id), escape(g.name), g.status + (" (split me)" if g.needs_split else ""),
                      str(g.n_members), escape(g.created_by or ""), escape(accepted.get(g.id, "")))
    console.print(table)
    err.print(f"{len(rows)} groups")


@app.command("split")
def split(
    group_ids: Annotated[Optional[list[int]], typer.Argument(help="Groups to split (default: with --all-oversized).")] = None,
    all_oversized: Annotated[bool, typer.Option("--all-oversized", help="Split every group flagged needs_split.")] = False,
    by: Annotated[str, typer.Option(help="order (consecutive chunks) | similarity (built-in image space)")] = "order",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the suggested parts, change nothing.")] = False,
    workspace: WorkspaceOpt = Path("."),
    db: DbOpt = None,
) -> None:
    """Split groups into parts of 2-10 images (sizes as equal as possible)."""
    from relcurate.curation.groups import group_search, membership as groups, splitting

    if by not in ("order", "similarity"):
        _fail("--by must be 'order' or 'similarity'")
    ws = open_workspace(workspace, db)
    ids = list(group_ids or [])
    if all_oversized:
        ids += [g.id for g in groups.list_groups(ws, needs_split=True) if g.id not in ids]
    if not ids:
        _fail("name groups to split, or pass --all-oversized")
    plans = {}
    for gid in ids:
        try:
            plans[gid] = groups.group_detail(ws, gid).member_ids
        except groups.GroupError as exc:
            _fail(str(exc))
    for gid, members in plans.items():
        vectors = group_search.split_vectors(ws, members) if by == "similarity" else None
        try:
            parts = splitting.suggest_split(members, vectors)
        except groups.GroupError as exc:
            _fail(f"group #{gid}: {exc}")
        shown = "  ".join("[" + " ".join(map(str, p)) + "]" for p in parts)
        if dry_run:
            console.print(f"#{gid}: {len(members)} images -> {shown}")
            continue
        try:
            kids = splitting.split_group(ws, gid, parts)
        except groups.GroupError as exc:
            _fail(f"group #{gid}: {exc}")
        console.print(f"#{gid} split into " + ", ".join(f"#{k.id} ({k.status}, {len(p)} images)"
                                                       for k, p in zip(kids, parts)))


@app.command("compare")
def compare(
    reference: Annotated[str, typer.Argument(help="Username of the reference curator (A).")],
    other: Annotated[str, typer.Argument(help="Username of the compared curator (B).")],
    universe: Annotated[str, typer.Option(help="common (images both grouped) | union")] = "common",
    as_json: Annotated[bool, typer.Option("--json")] = False,
    workspace: WorkspaceOpt = Path("."),
    db: DbOpt = None,
) -> None:
    """Agreement of two curators' groupings: pairwise co-membership P/R/F1 and adjusted Rand index."""
    from relcurate.curation.groups import membership as groups

    if universe not in ("common", "union"):
        _fail("--universe must be 'common' or 'union'")
    ws = open_workspace(workspace, db)
    try:
        m = groups.compare_curators_by_name(ws, reference, other, universe=universe)
    except groups.GroupError as exc:
        _fail(str(exc))
    if as_json:
        print(json.dumps(m))
        return
    table = Table("measure", "value")
    for key in ("precision", "recall", "f1", "ari"):
        table.add_row(key, f"{m[key]:.3f}")
    for key in ("tp", "fp", "fn", "n_images", "groups_a", "groups_b"):
        table.add_row(key, str(m[key]))
    console.print(table)
