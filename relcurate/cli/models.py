"""`relcurate models ...`: the model registry and whole-workspace scoring."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from relcurate.cli.common import DbOpt, WorkspaceOpt, err, open_workspace, progress_bar

app = typer.Typer(help="Model registry, embeddings and filter scoring.", no_args_is_help=True)
console = Console(soft_wrap=True)


@app.command("list")
def list_(kind: Annotated[Optional[str], typer.Option(help="filter | captioner | relsim | baseline")] = None,
          workspace: WorkspaceOpt = Path("."), db: DbOpt = None) -> None:
    from relcurate.models.registry import list_model_versions

    table = Table("name:version", "kind", "base", "adapter", "metrics", "created")
    for mv in list_model_versions(open_workspace(workspace, db), kind=kind):
        table.add_row(escape(f"{mv.name}:{mv.version}"), mv.kind, escape(mv.base_model), escape(mv.adapter_path or ""),
                      escape(json.dumps(mv.metrics, sort_keys=True)), f"{mv.created_at:%Y-%m-%d %H:%M}")
    console.print(table)


@app.command("register")
def register(
    name: str,
    kind: Annotated[str, typer.Option(help="filter | captioner | relsim | baseline")],
    base: Annotated[str, typer.Option(help="Base model path or hub id (e.g. Qwen/Qwen2.5-VL-7B-Instruct; 'attribute' for the attribute baseline).")],
    adapter: Annotated[Optional[str], typer.Option(help="LoRA adapter / relsim checkpoint folder.")] = None,
    config: Annotated[Optional[str], typer.Option(help="JSON config, e.g. '{\"init\": {\"batch_size\": 4}}'.")] = None,
    workspace: WorkspaceOpt = Path("."),
    db: DbOpt = None,
) -> None:
    """Register an existing model (e.g. the published relsim checkpoint) as a new version."""
    from relcurate.models.registry import register_model

    try:
        cfg = json.loads(config) if config else {}
        mv = register_model(open_workspace(workspace, db), kind=kind, name=name, base_model=base,
                            adapter_path=adapter, config=cfg)
    except (ValueError, json.JSONDecodeError) as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2)
    console.print(f"registered {escape(mv.name)}:{mv.version} ({mv.kind})")


@app.command("embed")
def embed(
    model: Annotated[str, typer.Argument(help="name or name:version of an embedder (relsim or baseline).")],
    batch_size: int = 16,
    index: Annotated[bool, typer.Option(help="Build the vector index afterwards.")] = True,
    workspace: WorkspaceOpt = Path("."),
    db: DbOpt = None,
) -> None:
    """Embed every usable image (resumable; under `accelerate launch` each process takes a shard)."""
    from relcurate.models.registry import get_model_version, load_model
    from relcurate.models.workspace_scoring import build_workspace_index, embed_workspace

    ws = open_workspace(workspace, db)
    mv = get_model_version(ws, model)
    if mv.kind not in ("relsim", "baseline"):
        err.print(f"[red]error:[/] {escape(model)} is a {mv.kind} model, not an embedder")
        raise typer.Exit(2)
    with progress_bar(f"embed {mv.name}:{mv.version}") as update:
        out = embed_workspace(ws, load_model(ws, mv), mv, batch_size=batch_size, progress=update)
    if index:
        try:
            idx = build_workspace_index(ws, mv)
            console.print(f"index: {len(idx)} vectors ({idx.kind})")
        except ValueError as exc:  # other shards not finished yet
            console.print(f"index not built yet: {escape(str(exc))}")
    console.print(f"vectors in {escape(str(out))}")


@app.command("score-filter")
def score_filter(
    model: Annotated[str, typer.Argument(help="name or name:version of a filter model.")],
    batch_size: int = 16,
    workspace: WorkspaceOpt = Path("."),
    db: DbOpt = None,
) -> None:
    """P(Yes) for every usable image, stored as predictions of that model version."""
    from relcurate.models.registry import get_model_version, load_model
    from relcurate.models.workspace_scoring import score_filter_workspace

    ws = open_workspace(workspace, db)
    mv = get_model_version(ws, model)
    if mv.kind != "filter":
        err.print(f"[red]error:[/] {escape(model)} is a {mv.kind} model, not a filter")
        raise typer.Exit(2)
    with progress_bar(f"filter {mv.name}:{mv.version}") as update:
        n = score_filter_workspace(ws, load_model(ws, mv), mv, batch_size=batch_size, progress=update)
    console.print(f"{n} predictions stored for {escape(mv.name)}:{mv.version}")
