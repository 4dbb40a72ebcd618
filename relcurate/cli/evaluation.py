"""`relcurate eval ...`: the retrieval study, the LLM judge, the A/B study, the similarity space
and mining. Thin wrappers over relcurate.evaluation; long work shows progress and resumes."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from relcurate.cli.common import DbOpt, WorkspaceOpt, err, open_workspace, progress_bar

app = typer.Typer(help="Evaluation: retrieval study, LLM judge, A/B study, similarity space, mining.",
                  no_args_is_help=True)
console = Console(soft_wrap=True)


def _fail(exc: Exception) -> None:
    err.print(f"[red]error:[/] {escape(str(exc))}")
    raise typer.Exit(2)


def _iv(d: dict | None) -> str:
    if not d or d.get("estimate") is None or d.get("n", 0) == 0:
        return "—"
    return f"{d['estimate']:.3f} [{d['low']:.3f}, {d['high']:.3f}]"


@app.command("retrieval")
def retrieval_cmd(
    method: Annotated[Optional[list[str]], typer.Option("--method", "-m", help="name[:version] of an embedder; repeat. Default: every registered embedder.")] = None,
    queries: Annotated[int, typer.Option("--queries", "-n", help="Seeded queries from the held-out split.")] = 1000,
    k: Annotated[int, typer.Option("--k", "-k", help="Hits per query.")] = 10,
    seed: int = 0,
    splits: Annotated[str, typer.Option(help="Split weights, as for the relsim export.")] = "train=100000,test=14000",
    split_seed: Annotated[int, typer.Option(help="The export's split seed.")] = 0,
    held_out: str = "test",
    max_distractors: Annotated[Optional[int], typer.Option(help="Sample this many distractors (default: every other image).")] = None,
    distractor_kind: Annotated[Optional[str], typer.Option(help="Distractors only from sources of this kind (folder | url | jsonl | parquet | ...).")] = None,
    caption_similarity: Annotated[bool, typer.Option(help="MiniLM similarity of accepted captions.")] = True,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    workspace: WorkspaceOpt = Path("."),
    db: DbOpt = None,
) -> None:
    """The paper's retrieval study on this workspace (embeddings resume where they stopped)."""
    from relcurate.evaluation.methods import MethodError
    from relcurate.evaluation.retrieval import RetrievalConfig, run_retrieval
    from relcurate.evaluation.runs import get_run, read_result
    from relcurate.exports.splits import parse_splits
    from relcurate.models.registry import ModelNotFound

    ws = open_workspace(workspace, db)
    try:
        cfg = RetrievalConfig(methods=method or None, n_queries=queries, k=k, seed=seed,
                              split_weights=parse_splits(splits), split_seed=split_seed, held_out=held_out,
                              max_distractors=max_distractors, distractor_kind=distractor_kind,
                              caption_similarity=caption_similarity)
        with progress_bar("retrieval", quiet=as_json) as update:
            run_id = run_retrieval(ws, cfg, progress=lambda stage, d, t: update(d, t))
    except (ValueError, MethodError, ModelNotFound) as exc:
        _fail(exc)
    summary = read_result(ws, get_run(ws, run_id))
    if as_json:
        typer.echo(json.dumps({"run_id": run_id, "database": summary["database"],
                               "metrics": {m: s["metrics"] for m, s in summary["methods"].items()}}, indent=2))
        return
    table = Table(f"method (run #{run_id})", f"group_recall@{k}", f"caption_recall@{k}", "caption_sim@1", "coverage")
    for label, s in summary["methods"].items():
        m = s["metrics"]
        table.add_row(escape(label), _iv(m[f"group_recall@{k}"]), _iv(m[f"caption_recall@{k}"]),
                      _iv(m["caption_sim@1"]), f"{m['caption_sim@1'].get('coverage', 0):.0%}")
    console.print(table)
    console.print(f"database: {summary['database']['held_out']} held-out + {summary['database']['distractors']} "
                  f"distractors; {len(summary['queries'])} queries")


@app.command("judge")
def judge_cmd(
    run: Annotated[int, typer.Argument(help="A retrieval run id.")],
    base_url: Annotated[Optional[str], typer.Option(envvar="RELCURATE_JUDGE_BASE_URL", help="OpenAI-compatible endpoint, e.g. https://api.openai.com/v1 (or [judge] base_url in relcurate.toml).")] = None,
    model: Annotated[Optional[str], typer.Option(envvar="RELCURATE_JUDGE_MODEL", help="Judge model, e.g. gpt-4o (or [judge] model).")] = None,
    api_key_env: Annotated[Optional[str], typer.Option(help="Environment variable holding the key (default RELCURATE_JUDGE_API_KEY, then OPENAI_API_KEY); never printed.")] = None,
    method: Annotated[Optional[list[str]], typer.Option("--method", "-m", help="Methods of the run to judge (default: all).")] = None,
    reference: Annotated[Optional[str], typer.Option(help="Method the paired differences are taken against.")] = None,
    temperature: Annotated[Optional[float], typer.Option(help="Default 0 (the reference used 0.7).")] = None,
    concurrency: Optional[int] = None,
    retries: Optional[int] = None,
    max_requests: Annotated[Optional[int], typer.Option(help="Spending cap: paid requests this run.")] = None,
    max_cost: Annotated[Optional[float], typer.Option(help="Spending cap: estimated cost this run.")] = None,
    price_prompt_per_1k: Optional[float] = None,
    price_completion_per_1k: Optional[float] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    workspace: WorkspaceOpt = Path("."),
    db: DbOpt = None,
) -> None:
    """Score each method's top hit with an LLM judge (cached: a rerun pays only for what is missing)."""
    from relcurate.evaluation.judge import judge_config
    from relcurate.evaluation.judge_study import judge_retrieval
    from relcurate.evaluation.runs import RunNotFound, get_run, read_result
    from relcurate.workspace import CONFIG_NAME

    ws = open_workspace(workspace, db)
    try:
        cfg = judge_config(ws.root / CONFIG_NAME, base_url=base_url, model=model, api_key_env=api_key_env,
                           temperature=temperature, concurrency=concurrency, retries=retries,
                           max_requests=max_requests, max_cost=max_cost, price_prompt_per_1k=price_prompt_per_1k,
                           price_completion_per_1k=price_completion_per_1k)
        with progress_bar("judge", quiet=as_json) as update:
            jid = judge_retrieval(ws, run, cfg, methods=method or None, reference=reference, progress=update)
    except (ValueError, TypeError, RunNotFound, FileNotFoundError) as exc:
        _fail(exc)
    summary = read_result(ws, get_run(ws, jid))
    if as_json:
        typer.echo(json.dumps({"run_id": jid, "table": summary["table"], "stats": summary["stats"]}, indent=2))
        return
    table = Table(f"method (judge run #{jid})", "mean judge score (0-10)", f"minus {summary['reference']}",
                  "ok", "invalid", "failed", "capped")
    for r in summary["table"]:
        table.add_row(escape(r["method"]), _iv(r["mean"]), _iv(r.get("minus_reference")), str(r["ok"]),
                      str(r["invalid"]), str(r["failed"]), str(r["capped"]))
    console.print(table)
    st = summary["stats"]
    console.print(f"requests {st['requests']}, from cache {st['cached']}, retries {st['retries']}, "
                  f"estimated cost {st['cost']:.4f}. Paper (GPT-4o, T=0.7, its data): "
                  + ", ".join(f"{k} {v}" for k, v in summary["paper_scores"].items()))


@app.command("ab-create")
def ab_create(
    run: Annotated[int, typer.Argument(help="A retrieval run id.")],
    method: Annotated[str, typer.Option(help="The method under study (name:version as in the run).")],
    baseline: Annotated[list[str], typer.Option("--baseline", "-b", help="Baselines to compare with; repeat.")],
    triplets: Annotated[int, typer.Option(help="Triplets per baseline.")] = 300,
    raters: Annotated[int, typer.Option(help="Raters per triplet.")] = 3,
    seed: int = 0,
    workspace: WorkspaceOpt = Path("."),
    db: DbOpt = None,
) -> None:
    """Create an A/B preference study; raters answer on the app's "A/B study" page."""
    from relcurate.evaluation.ab_study import StudyError, create_study, progress_of
    from relcurate.evaluation.runs import RunNotFound

    ws = open_workspace(workspace, db)
    try:
        sid = create_study(ws, run, method=method, baselines=baseline, n_triplets=triplets,
                           raters_per_triplet=raters, seed=seed)
    except (StudyError, RunNotFound, FileNotFoundError) as exc:
        _fail(exc)
    console.print(f"A/B study #{sid}: {progress_of(ws, sid)['triplets']} triplets, {raters} raters each")


@app.command("ab-results")
def ab_results(
    study: Annotated[int, typer.Argument(help="An A/B study id.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
    workspace: WorkspaceOpt = Path("."),
    db: DbOpt = None,
) -> None:
    """Preference and tie rates per method pair, with intervals and rater agreement."""
    from relcurate.evaluation.ab_study import study_results
    from relcurate.evaluation.runs import RunNotFound

    ws = open_workspace(workspace, db)
    try:
        res = study_results(ws, study)
    except RunNotFound as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps(res, indent=2, default=str))
        return
    table = Table("A vs B", "triplets", "answers", "prefer A", "prefer B", "same", "alpha")
    for p in res["pairs"]:
        alpha = p["agreement"]["krippendorff_alpha"]
        table.add_row(escape(f"{p['method_a']} vs {p['method_b']}"), str(p["triplets"]), str(p["answers"]),
                      _iv(p["prefer_a"]), _iv(p["prefer_b"]), _iv(p["same"]), "—" if alpha is None else f"{alpha:.2f}")
    console.print(table)


@app.command("mine")
def mine(
    relational: Annotated[str, typer.Option(help="Relational embedder (e.g. relsim:1).")],
    attribute: Annotated[str, typer.Option(help="Attribute embedder (e.g. clip:1 or attribute:1).")],
    top: int = 200,
    skip_grouped: Annotated[bool, typer.Option(help="Leave out pairs already in one seed group.")] = True,
    min_relational: Optional[float] = None,
    scoring: Annotated[str, typer.Option(help="z: standardise each similarity over all pairs first; raw: plain difference.")] = "z",
    workspace: WorkspaceOpt = Path("."),
    db: DbOpt = None,
) -> None:
    """Pairs that are relationally close but visually far (relational minus attribute similarity)."""
    from relcurate.evaluation.mining import run_mining
    from relcurate.evaluation.runs import get_run, read_result
    from relcurate.evaluation.spaces import SpaceUnavailable
    from relcurate.models.registry import ModelNotFound

    ws = open_workspace(workspace, db)
    try:
        with progress_bar("mine") as update:
            rid = run_mining(ws, relational=relational, attribute=attribute, top=top, skip_grouped=skip_grouped,
                             min_relational=min_relational, scoring=scoring, progress=update)
    except (SpaceUnavailable, ModelNotFound, ValueError) as exc:
        _fail(exc)
    pairs = read_result(ws, get_run(ws, rid))["pairs"]
    table = Table(f"pair (mining run #{rid})", "relational", "attribute", "gap")
    for p in pairs[:20]:
        table.add_row(f"#{p['a']} & #{p['b']}", f"{p['relational']:.3f}", f"{p['attribute']:.3f}", f"{p['gap']:.3f}")
    console.print(table)
    console.print(f"{len(pairs)} pairs saved; browse them on the app's \"Mining\" page")


@app.command("space")
def space(
    query: Annotated[int, typer.Argument(help="Image id of the query.")],
    relational: Annotated[str, typer.Option(help="Relational embedder (y axis).")],
    attribute: Annotated[str, typer.Option(help="Attribute embedder (x axis).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Figure file: .png, .svg or .html.")] = Path("similarity-space.png"),
    seed: int = 0,
    workspace: WorkspaceOpt = Path("."),
    db: DbOpt = None,
) -> None:
    """The similarity-space figure of one query (attribute x, relational y, four regions)."""
    from relcurate.evaluation.similarity_space import REGIONS, save_chart, similarity_space, space_chart
    from relcurate.evaluation.spaces import SpaceUnavailable
    from relcurate.models.registry import ModelNotFound

    ws = open_workspace(workspace, db)
    try:
        pts = similarity_space(ws, query, relational=relational, attribute=attribute, seed=seed)
        path = save_chart(space_chart(pts, interactive=False), out)
    except (SpaceUnavailable, ModelNotFound, ValueError) as exc:
        _fail(exc)
    regions = pts.regions()
    counts = ", ".join(f"{name}: {regions.count(name)}" for name in REGIONS.values())
    console.print(f"{len(pts.ids)} images placed ({counts}); figure: {escape(str(path))}")


@app.command("baselines")
def baselines(workspace: WorkspaceOpt = Path("."), db: DbOpt = None) -> None:
    """Register the paper's baselines (CLIP-L/14, DINOv2-large) whose weights are in the local hub cache."""
    from relcurate.evaluation.methods import PAPER_BASELINES, register_paper_baselines

    added = register_paper_baselines(open_workspace(workspace, db))
    if added:
        console.print("registered: " + ", ".join(escape(a) for a in added))
    else:
        console.print("none added (already registered, or not in the local cache: "
                      + ", ".join(PAPER_BASELINES) + ")")


@app.command("runs")
def runs(
    kind: Annotated[Optional[str], typer.Option(help="retrieval | judge | mining | ab")] = None,
    workspace: WorkspaceOpt = Path("."),
    db: DbOpt = None,
) -> None:
    """Evaluation runs of this workspace, newest first."""
    from relcurate.evaluation.runs import list_runs

    table = Table("id", "kind", "name", "status", "created", "result folder")
    for r in list_runs(open_workspace(workspace, db), kind):
        table.add_row(str(r.id), r.kind, escape(r.name), r.status, f"{r.created_at:%Y-%m-%d %H:%M}", escape(r.path or ""))
    console.print(table)
