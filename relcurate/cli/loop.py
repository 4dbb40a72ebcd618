"""`relcurate loop ...`: the active-learning loops. `loop filter` configures the filter loop,
enqueues fast-head refreshes and LoRA retrains (the worker runs them), and reports where the
loop stands; `loop jobs` lists the job queue."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from relcurate.cli.common import DbOpt, WorkspaceOpt, err, open_workspace

app = typer.Typer(help="Active-learning loops and their background jobs.", no_args_is_help=True)
filter_app = typer.Typer(help="The filter loop: fast head, strategies, positives remaining.", no_args_is_help=True)
app.add_typer(filter_app, name="filter")
console = Console(soft_wrap=True)


def parse_mix(text: str) -> dict[str, float]:
    """"uncertainty=40,positive=30,diversity=20,random=10" -> quotas."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        try:
            if not sep:
                raise ValueError
            out[name.strip()] = float(value)
        except ValueError:
            raise typer.BadParameter(f"mix part {part!r} is not NAME=SHARE") from None
    return out


@filter_app.command("configure")
def configure(embedding: Annotated[Optional[str], typer.Option(help="Embedding space NAME:VERSION (vectors must exist).")] = None,
              every: Annotated[Optional[int], typer.Option(help="Refresh the fast head after this many new labels.")] = None,
              strategy: Annotated[Optional[str], typer.Option(help="Task order: mix | uncertainty | positive | diversity | random.")] = None,
              mix: Annotated[Optional[str], typer.Option(help="Quotas, e.g. uncertainty=40,positive=30,diversity=20,random=10.")] = None,
              enable: Annotated[Optional[bool], typer.Option("--enable/--disable", help="Automatic refreshes on or off.")] = None,
              workspace: WorkspaceOpt = Path("."), db: DbOpt = None) -> None:
    from relcurate.models.registry import ModelNotFound
    from relcurate.training.filter_loop import configure_loop

    ws = open_workspace(workspace, db)
    try:
        s = configure_loop(ws, embedding=embedding, every=every, strategy=strategy,
                           mix=parse_mix(mix) if mix else None, enabled=enable)
    except (ModelNotFound, ValueError) as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2)
    console.print(escape(json.dumps({"embedding": s.embedding, "every": s.every, "enabled": s.enabled})))


@filter_app.command("refresh")
def refresh(here: Annotated[bool, typer.Option("--here", help="Run it in this process instead of enqueueing it for the worker.")] = False,
            embedding: Annotated[Optional[str], typer.Option(help="Embedding space (default: the configured one).")] = None,
            workspace: WorkspaceOpt = Path("."), db: DbOpt = None) -> None:
    """Retrain the fast head on the consensus labels and re-rank the queue."""
    from relcurate.training.fast_head import FastHeadError, refresh_fast_head
    from relcurate.training.filter_loop import enqueue_refresh, get_loop

    ws = open_workspace(workspace, db)
    try:
        if here:
            emb = embedding or get_loop(ws).embedding
            if not emb:
                raise ValueError("no embedding space given or configured (--embedding NAME:VERSION)")
            res = refresh_fast_head(ws, emb, progress=lambda f, note: err.print(f"{f:4.0%} {escape(note)}"))
            console.print(escape(json.dumps(res.as_dict(), default=str)))
            return
        enq = enqueue_refresh(ws, embedding=embedding)
    except (FastHeadError, ValueError, LookupError) as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2)
    console.print(f"job {enq.job.id} " + ("queued" if enq.created else f"already {enq.job.state}") +
                  " (run `relcurate worker` to process it)")


@filter_app.command("retrain")
def retrain(base: str = typer.Option(..., "--base", help="a registered model or a local model path"),
            name: str = typer.Option("filter-ft", "--name", help="model name of the new version"),
            max_steps: int = typer.Option(None, "--max-steps"),
            workspace: WorkspaceOpt = Path("."), db: DbOpt = None) -> None:
    """Enqueue a LoRA retrain of the real filter on the consensus labels (the worker runs it)."""
    from relcurate.training.filter_loop import enqueue_retrain

    params = {"base": base, "name": name, **({"max_steps": max_steps} if max_steps else {})}
    enq = enqueue_retrain(open_workspace(workspace, db), params=params)
    console.print(f"job {enq.job.id} " + ("queued" if enq.created else f"already {enq.job.state}"))


@filter_app.command("status")
def status(workspace: WorkspaceOpt = Path("."), db: DbOpt = None) -> None:
    from relcurate.curation.labeling.queue_heads import composition_by_strategy, head_sizes
    from relcurate.training.fast_head import latest_fast_head, learning_curve
    from relcurate.training.filter_loop import get_loop, labels_since_refresh

    ws = open_workspace(workspace, db)
    s = get_loop(ws)
    now, seen = labels_since_refresh(ws, s)
    latest = latest_fast_head(ws, s.name)
    console.print(f"embedding: {escape(str(s.embedding))}  refresh every {s.every} labels  "
                  f"({now - seen} new since the last fast head)  heads: {escape(json.dumps(head_sizes(ws.engine)))}")
    if latest is not None and "positives_remaining" in latest.metrics:
        r = latest.metrics["positives_remaining"]
        console.print(f"positives remaining: ~{r['estimate']:.0f} [{r['low']:.0f}, {r['high']:.0f}] of "
                      f"{r['unlabeled']} unlabeled (audit {r['audit_size']})")
    t = Table("strategy", "leased", "done", "yes", "yes rate")
    for row in composition_by_strategy(ws.engine):
        t.add_row(escape(row["strategy"]), str(row["leased"]), str(row["done"]), str(row["yes"]),
                  "" if row["yes_rate"] is None else f"{row['yes_rate']:.0%}")
    console.print(t)
    c = Table("model", "labels", "split", "F1", "precision", "recall")
    for row in learning_curve(ws):
        c.add_row(escape(f"{row['model']}:{row['version']}"), str(row["labels"]), row["split"],
                  f"{row['f1']:.3f}", f"{row['precision']:.3f}", f"{row['recall']:.3f}")
    console.print(c)


@app.command("jobs")
def jobs_(limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
          workspace: WorkspaceOpt = Path("."), db: DbOpt = None) -> None:
    from relcurate.db.jobs import list_jobs

    t = Table("id", "kind", "state", "progress", "attempts", "note", "error")
    for j in list_jobs(open_workspace(workspace, db).engine, limit=limit):
        t.add_row(str(j.id), escape(j.kind), j.state, f"{j.progress:.0%}", f"{j.attempts}/{j.max_attempts}",
                  escape(j.progress_note or ""), escape((j.error or "").splitlines()[0] if j.error else ""))
    console.print(t)


# -- the captioner and relsim loops -------------------------------------------------------------

captioner_app = typer.Typer(help="The captioner loop: caption interesting images, queue a review sample, retrain.",
                            no_args_is_help=True)
relsim_app = typer.Typer(help="The relsim loop: retrain, re-embed + index, the group builder's default space.",
                         no_args_is_help=True)
app.add_typer(captioner_app, name="captioner")
app.add_typer(relsim_app, name="relsim")

HereOpt = Annotated[bool, typer.Option("--here", help="Run it in this process instead of enqueueing it for the worker.")]


def _queued(enq) -> None:
    console.print(f"job {enq.job.id} ({escape(enq.job.kind)}) " + ("queued" if enq.created else f"already {enq.job.state}")
                  + " (run `relcurate worker` to process it)")


def _fail(exc: Exception) -> None:
    err.print(f"[red]error:[/] {escape(str(exc))}")
    raise typer.Exit(2)


def _say(f: float, note: str) -> None:
    err.print(f"{f:4.0%} {escape(note)}")


@captioner_app.command("caption")
def captioner_caption(here: HereOpt = False,
                      captioner: Annotated[Optional[str], typer.Option(help="Captioner NAME[:VERSION] (default: the newest).")] = None,
                      kept_by: Annotated[Optional[str], typer.Option(help="Filter NAME[:VERSION] whose kept images count too.")] = None,
                      batch_size: Annotated[int, typer.Option(min=1)] = 8,
                      limit: Annotated[Optional[int], typer.Option(min=1, help="Caption at most this many images.")] = None,
                      sample: Annotated[int, typer.Option(min=0, help="Captions queued for review.")] = 50,
                      audit_share: Annotated[float, typer.Option(min=0.0, max=1.0, help="Random share of the sample.")] = 0.2,
                      workspace: WorkspaceOpt = Path("."), db: DbOpt = None) -> None:
    """Caption interesting images without an accepted caption and queue a review sample."""
    from relcurate.models.registry import ModelNotFound
    from relcurate.training.captioner_loop import CaptionPoolSettings, caption_pool, enqueue_caption_pool

    ws = open_workspace(workspace, db)
    params = {"captioner": captioner, "kept_by": kept_by, "batch_size": batch_size, "limit": limit,
              "sample_size": sample, "audit_share": audit_share}
    params = {k: v for k, v in params.items() if v is not None}
    try:
        if here:
            console.print(escape(json.dumps(caption_pool(ws, CaptionPoolSettings.from_params(params), progress=_say),
                                            default=str)))
            return
        _queued(enqueue_caption_pool(ws, params=params))
    except (ValueError, ModelNotFound) as exc:
        _fail(exc)


@captioner_app.command("retrain")
def captioner_retrain(here: HereOpt = False,
                      base: Annotated[Optional[str], typer.Option(help="A registered model or a local path (default: the newest captioner's base).")] = None,
                      name: Annotated[str, typer.Option(help="Model name of the new version.")] = "captioner-ft",
                      max_steps: Annotated[Optional[int], typer.Option(min=1)] = None,
                      workspace: WorkspaceOpt = Path("."), db: DbOpt = None) -> None:
    """Train the captioner on the accepted captions and register a version."""
    from relcurate.models.registry import ModelNotFound
    from relcurate.training.captioner_loop import enqueue_captioner_retrain, retrain_captioner
    from relcurate.training.snapshot import TooLittleData

    ws = open_workspace(workspace, db)
    params = {k: v for k, v in {"base": base, "name": name, "max_steps": max_steps}.items() if v is not None}
    try:
        if here:
            console.print(escape(json.dumps(retrain_captioner(ws, params), default=str)))
            return
        _queued(enqueue_captioner_retrain(ws, params=params))
    except (TooLittleData, ValueError, ModelNotFound) as exc:
        _fail(exc)


@captioner_app.command("status")
def captioner_status(workspace: WorkspaceOpt = Path("."), db: DbOpt = None) -> None:
    """Review outcomes per captioner version and the review queue's head."""
    from relcurate.curation.groups.caption_queue import outcomes_by_version, review_queue

    ws = open_workspace(workspace, db)
    for r in outcomes_by_version(ws):  # lines, not a table: they stay whole in a narrow terminal
        rate = "" if r["accepted_rate"] is None else f", accepted as written {r['accepted_rate']:.0%}"
        console.print(escape(f"{r['model']}: {r['generated']} generated, {r['queued']} queued, {r['accepted']} accepted, "
                             f"{r['edited']} edited, {r['rejected']} rejected, {r['pending']} pending{rate}"))
    for item in review_queue(ws, pending_only=True, limit=20):
        conf = "" if item.confidence is None else f" confidence {item.confidence:.3f}"
        codes = f" checker {','.join(item.checker_codes)}" if item.checker_codes else ""
        console.print(escape(f"#{item.rank} caption {item.caption_id} image {item.image_id}: {item.reason} "
                             f"by {item.model}{conf}{codes} ({item.status})"))


@relsim_app.command("retrain")
def relsim_retrain(here: HereOpt = False,
                   base: Annotated[Optional[str], typer.Option(help="A registered model or a local path (default: the newest relsim's base).")] = None,
                   name: Annotated[str, typer.Option(help="Model name of the new version.")] = "relsim-ft",
                   max_steps: Annotated[Optional[int], typer.Option(min=1)] = None,
                   reembed: Annotated[bool, typer.Option(help="Then re-embed the workspace and make the new space the default.")] = True,
                   workspace: WorkspaceOpt = Path("."), db: DbOpt = None) -> None:
    """Train relsim on the accepted captions (then re-embed, index and make it the default space)."""
    from relcurate.models.registry import ModelNotFound
    from relcurate.training import relsim_loop
    from relcurate.training.snapshot import TooLittleData

    ws = open_workspace(workspace, db)
    params = {k: v for k, v in {"base": base, "name": name, "max_steps": max_steps}.items() if v is not None}
    try:
        if here:
            res = relsim_loop.retrain_relsim(ws, params)
            if reembed:
                res["reembed"] = relsim_loop.reembed(ws, res["model_version_id"])
            console.print(escape(json.dumps(res, default=str)))
            return
        _queued(relsim_loop.enqueue_relsim_retrain(ws, params={**params, "reembed": reembed}))
    except (TooLittleData, ValueError, ModelNotFound) as exc:
        _fail(exc)


@relsim_app.command("reembed")
def relsim_reembed(model: Annotated[Optional[str], typer.Argument(help="relsim NAME[:VERSION] (default: the newest).")] = None,
                   here: HereOpt = False,
                   batch_size: Annotated[int, typer.Option(min=1)] = 16,
                   make_default: Annotated[bool, typer.Option(help="Make its space the group builder's default.")] = True,
                   workspace: WorkspaceOpt = Path("."), db: DbOpt = None) -> None:
    """Embed the workspace with a relsim version, rebuild its index (resumable)."""
    from relcurate.models.registry import ModelNotFound
    from relcurate.training import relsim_loop

    ws = open_workspace(workspace, db)
    try:
        mv = relsim_loop.resolve_relsim(ws, model)
        if here:
            res = relsim_loop.reembed(ws, mv.id, batch_size=batch_size, make_default=make_default,
                                      progress=lambda d, t: err.print(f"embedded {d} of {t}"))
            console.print(escape(json.dumps(res, default=str)))
            return
        _queued(relsim_loop.enqueue_reembed(ws, mv.id, params={"batch_size_embed": batch_size,
                                                               "make_default": make_default}))
    except (ValueError, ModelNotFound) as exc:
        _fail(exc)


@relsim_app.command("use")
def relsim_use(space: Annotated[str, typer.Argument(help="A space name or a relsim NAME:VERSION.")],
               workspace: WorkspaceOpt = Path("."), db: DbOpt = None) -> None:
    """Make a space the group builder's default for "more like this group"."""
    from relcurate.training import relsim_loop

    ws = open_workspace(workspace, db)
    try:
        changed = relsim_loop.set_relsim_space(ws, space)
    except ValueError as exc:
        _fail(exc)
    console.print(f"default space: {escape(relsim_loop.relsim_space(ws))}" + ("" if changed else " (unchanged)"))


@relsim_app.command("compare")
def relsim_compare(group: Annotated[Optional[int], typer.Option(help="Seed group id: top-k neighbours per version and their overlap.")] = None,
                   k: Annotated[int, typer.Option(min=1, max=200)] = 10,
                   as_json: Annotated[bool, typer.Option("--json")] = False,
                   workspace: WorkspaceOpt = Path("."), db: DbOpt = None) -> None:
    """relsim versions side by side: held-out recall, space, default; top-k overlap for a group."""
    from relcurate.curation.groups.membership import member_ids
    from relcurate.training import relsim_loop

    ws = open_workspace(workspace, db)
    members = member_ids(ws, group) if group is not None else None
    res = relsim_loop.compare_versions(ws, members, k=k)
    if as_json:
        typer.echo(json.dumps(res, default=str))
        return
    t = Table("model", "space", "default", "indexed", *relsim_loop.METRICS)
    for r in res["versions"]:
        t.add_row(escape(r["model"]), escape(r["space"]), "yes" if r["default"] else "", "yes" if r["indexed"] else "no",
                  *("" if r[m] is None else f"{r[m]:.3f}" for m in relsim_loop.METRICS))
    console.print(t)
    for o in res["overlap"]:
        console.print(f"top-{k} overlap {escape(o['a'])} vs {escape(o['b'])}: {o['overlap']:.0%}")
