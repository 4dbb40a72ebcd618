"""`relcurate export ...`: write training data out of the workspace (curators and admins only).

Every command names the curator or admin the export is attributed to (``--as-user`` or
``RELCURATE_USER``: recorded in the manifest; this is attribution, not a login — the CLI trusts
whoever can open the workspace, see relcurate/audit.py), records the operator in the audit
trail, writes into a staging folder renamed to OUT when complete, and leaves a manifest.json
(also recorded in the store).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Callable, Optional

import typer
from rich.console import Console
from rich.markup import escape

from relcurate.cli.common import DbOpt, WorkspaceOpt, err, open_workspace, operator_name, progress_bar

app = typer.Typer(help="Export training data (relsim JSONL, seed groups, SFT chat JSONL, Hugging Face datasets).",
                  no_args_is_help=True)
console = Console(soft_wrap=True)

OutArg = Annotated[Path, typer.Argument(help="Output folder (must not exist unless --overwrite).")]
UserOpt = Annotated[Optional[str], typer.Option("--as-user", envvar="RELCURATE_USER",
                                                help="Curator or admin account the export is attributed to in its manifest "
                                                     "(or RELCURATE_USER). Attribution only, no password: not a permission check.")]
SplitsOpt = Annotated[Optional[str], typer.Option("--splits", help="Split weights, e.g. train=100000,test=14000.")]
SeedOpt = Annotated[int, typer.Option(help="Split seed.")]
ImagesOpt = Annotated[str, typer.Option("--images", help="copy | link | reference (write no image files).")]
OverwriteOpt = Annotated[bool, typer.Option(help="Replace OUT if it exists (atomically).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the manifest counts as JSON.")]
CaptionSourceOpt = Annotated[str, typer.Option(help="both | group (group caption for members) | image (per-image captions).")]


def _run(ws, label: str, quiet: bool, fn: Callable) -> None:
    from relcurate.exports.common import ExportError, ExportPermissionError

    with progress_bar(label, quiet=quiet) as update:
        try:
            result = fn(update)
        except ExportPermissionError as exc:
            err.print(f"[red]refused:[/] {escape(str(exc))}")
            raise typer.Exit(3)
        except (ExportError, ValueError) as exc:
            err.print(f"[red]error:[/] {escape(str(exc))}")
            raise typer.Exit(2)
    _audit(ws, result)
    for w in result.warnings:
        err.print(f"[yellow]warning:[/] {escape(w)}")
    if quiet:
        typer.echo(json.dumps({"path": str(result.path), "kind": result.kind, "counts": result.counts,
                               "manifest_id": result.manifest_id}, indent=2, sort_keys=True))
        return
    console.print(f"{escape(result.kind)} export written to {escape(str(result.path))}")
    rows = result.counts.get("rows")
    if isinstance(rows, dict):
        console.print("rows: " + ", ".join(f"{escape(k)} {v}" for k, v in rows.items()))
    classes = result.counts.get("classes")
    if classes:
        console.print("classes: " + "; ".join(f"{escape(k)} " + ", ".join(f"{c} {n}" for c, n in v.items())
                                            for k, v in classes.items()))


def _audit(ws, result) -> None:
    """The export's own manifest names the account; the audit trail adds who ran the command
    (RELCURATE_OPERATOR, else the OS login)."""
    from relcurate.audit import record_event

    if ws is not None:
        record_event(ws.engine, channel="cli", actor=operator_name(None), action=f"export.{result.kind}",
                     target=str(result.path)[-256:], detail={"manifest_id": result.manifest_id})


def _weights(spec: str | None, default):
    from relcurate.exports.splits import parse_splits

    try:
        return parse_splits(spec) if spec else default
    except ValueError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2)


@app.command("relsim")
def relsim(
    out: OutArg,
    as_user: UserOpt = None,
    caption_source: CaptionSourceOpt = "both",
    splits: SplitsOpt = None,
    seed: SeedOpt = 0,
    images: ImagesOpt = "copy",
    include_pending: Annotated[bool, typer.Option(help="Also rows of URL images not downloaded yet (no image file).")] = False,
    url_link: Annotated[str, typer.Option(help="For local images: empty | source-uri.")] = "empty",
    overwrite: OverwriteOpt = False,
    as_json: JsonOpt = False,
    workspace: WorkspaceOpt = Path("."),
    db: DbOpt = None,
) -> None:
    """anonymous_captions_<split>.jsonl + images/<image_hash>.png, as the reference relsim trainer reads."""
    from relcurate.exports.relsim_jsonl import export_relsim
    from relcurate.exports.splits import RELSIM_SPLITS

    ws = open_workspace(workspace, db)
    weights = _weights(splits, RELSIM_SPLITS)
    _run(ws, "export relsim", as_json, lambda p: export_relsim(
        ws, out, user=as_user or "", caption_source=caption_source, splits=weights, seed=seed, images=images,
        include_pending=include_pending, url_link=url_link, overwrite=overwrite, progress=p))


@app.command("seed-groups")
def seed_groups(
    out: OutArg,
    as_user: UserOpt = None,
    exclude_status: Annotated[Optional[list[str]], typer.Option(help="Group statuses to leave out (default: rejected, split).")] = None,
    overwrite: OverwriteOpt = False,
    as_json: JsonOpt = False,
    workspace: WorkspaceOpt = Path("."),
    db: DbOpt = None,
) -> None:
    """seed_group.json (reference layout) + seed_groups.jsonl (ids, notes, members, caption, review)."""
    from relcurate.exports.seed_groups import EXCLUDED_GROUP_STATUSES, export_seed_groups

    ws = open_workspace(workspace, db)
    excluded = tuple(exclude_status) if exclude_status else EXCLUDED_GROUP_STATUSES
    _run(ws, "export seed groups", as_json, lambda p: export_seed_groups(
        ws, out, user=as_user or "", exclude_statuses=excluded, overwrite=overwrite))


@app.command("filter-sft")
def filter_sft(
    out: OutArg,
    as_user: UserOpt = None,
    splits: SplitsOpt = None,
    seed: SeedOpt = 0,
    images: ImagesOpt = "copy",
    overwrite: OverwriteOpt = False,
    as_json: JsonOpt = False,
    workspace: WorkspaceOpt = Path("."),
    db: DbOpt = None,
) -> None:
    """Chat JSONL for the Qwen2.5-VL filter: image + the paper's question -> Yes/No (consensus label)."""
    from relcurate.exports.sft import export_filter_sft
    from relcurate.exports.splits import SFT_SPLITS

    ws = open_workspace(workspace, db)
    weights = _weights(splits, SFT_SPLITS)
    _run(ws, "export filter SFT", as_json, lambda p: export_filter_sft(
        ws, out, user=as_user or "", splits=weights, seed=seed, images=images, overwrite=overwrite, progress=p))


@app.command("captioner-sft")
def captioner_sft(
    out: OutArg,
    as_user: UserOpt = None,
    per: Annotated[str, typer.Option(help="image (one image -> caption) | group (all members -> caption).")] = "image",
    caption_source: CaptionSourceOpt = "both",
    splits: SplitsOpt = None,
    seed: SeedOpt = 0,
    images: ImagesOpt = "copy",
    overwrite: OverwriteOpt = False,
    as_json: JsonOpt = False,
    workspace: WorkspaceOpt = Path("."),
    db: DbOpt = None,
) -> None:
    """Chat JSONL for the Qwen2.5-VL captioner: member image(s) -> accepted anonymous caption."""
    from relcurate.exports.sft import export_captioner_sft
    from relcurate.exports.splits import SFT_SPLITS

    ws = open_workspace(workspace, db)
    weights = _weights(splits, SFT_SPLITS)
    _run(ws, "export captioner SFT", as_json, lambda p: export_captioner_sft(
        ws, out, user=as_user or "", per=per, caption_source=caption_source, splits=weights, seed=seed,
        images=images, overwrite=overwrite, progress=p))


@app.command("hf")
def hf(
    out: OutArg,
    as_user: UserOpt = None,
    dataset: Annotated[str, typer.Option(help="relsim (image, caption) | filter (image, Yes/No label).")] = "relsim",
    embed: Annotated[bool, typer.Option("--embed/--by-path", help="Store image bytes, or paths to the workspace originals.")] = False,
    caption_source: CaptionSourceOpt = "both",
    splits: SplitsOpt = None,
    seed: SeedOpt = 0,
    include_pending: Annotated[bool, typer.Option(help="Also rows of URL images not downloaded yet (image is null).")] = False,
    push_to_hub: Annotated[Optional[str], typer.Option(help="Also push to this Hub dataset repo (user/name).")] = None,
    token: Annotated[Optional[str], typer.Option(envvar="HF_TOKEN", help="Hub token for --push-to-hub.")] = None,
    public: Annotated[bool, typer.Option(help="Make a pushed repo public (default private).")] = False,
    overwrite: OverwriteOpt = False,
    as_json: JsonOpt = False,
    workspace: WorkspaceOpt = Path("."),
    db: DbOpt = None,
) -> None:
    """A DatasetDict (save_to_disk layout under hf/) + parquet shards under data/."""
    from relcurate.exports.hf import export_hf

    ws = open_workspace(workspace, db)
    weights = _weights(splits, None)
    _run(ws, "export hf", as_json, lambda p: export_hf(
        ws, out, user=as_user or "", dataset=dataset, embed_images=embed, caption_source=caption_source,
        splits=weights, seed=seed, include_pending=include_pending, push_to_hub=push_to_hub, token=token,
        private=not public, overwrite=overwrite, progress=p))


if __name__ == "__main__":  # `python -m relcurate.cli.export` (used by the kill test before registration)
    app()
