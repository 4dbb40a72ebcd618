"""The judge over a retrieval run: each method's top hit for every query, scored by the LLM
judge (cached, capped), per-method means with bootstrap intervals and paired differences
against a reference method (same queries), in a table shaped like the paper's
(LPIPS 4.56 ... relsim 6.77). Paper numbers are listed beside for orientation only: they were
measured on other data with GPT-4o at temperature 0.7."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from sqlmodel import select

from relcurate.db.engine import read_scope
from relcurate.db.models import Image
from relcurate.evaluation.bootstrap import bootstrap_mean, paired_difference
from relcurate.evaluation.judge import Judge, JudgeConfig, JudgePair
from relcurate.evaluation.judge_cache import JudgeCache, StoreJudgeCache
from relcurate.evaluation.retrieval import read_rankings
from relcurate.evaluation.runs import RESULT_FORMAT, SUMMARY_FILE, finish_run, get_run, run_dir, start_run, write_json
from relcurate.workspace import Workspace

# Mean judge score of the top-1 hit, 1000 queries (the paper's table; DINO: 5.14 in its text).
PAPER_SCORES = {"LPIPS": 4.56, "DINO": 4.68, "dreamsim": 5.76, "CLIP-I": 5.91, "CLIP-T": 5.33, "Qwen-T": 4.86,
                "tuned DINO": 5.62, "tuned CLIP": 6.02, "relsim": 6.77}

Progress = Callable[[int, int], None]


def _image_files(ws: Workspace, ids: set[int]) -> dict[int, tuple]:
    out = {}
    with read_scope(ws.engine) as s:
        id_list = sorted(ids)
        for i in range(0, len(id_list), 500):
            for iid, sha, ext in s.exec(select(Image.id, Image.sha256, Image.ext)
                                        .where(Image.id.in_(id_list[i:i + 500]))).all():
                if sha:
                    out[int(iid)] = (ws.image_path(sha, ext), sha)
    return out


def judge_retrieval(ws: Workspace, retrieval_run_id: int, config: JudgeConfig, *,
                    methods: Sequence[str] | None = None, reference: str | None = None,
                    cache: JudgeCache | None = None, resamples: int = 1000, seed: int = 0,
                    created_by: int | None = None, progress: Progress | None = None) -> int:
    """Judge the top-1 hit of every query for each method; returns the judge EvalRun id.
    Rerunning costs only what the cache lacks (failed and capped pairs are asked again)."""
    get_run(ws, retrieval_run_id, "retrieval")
    rankings = read_rankings(ws, retrieval_run_id)
    chosen = list(methods) if methods else sorted(rankings)
    unknown = [m for m in chosen if m not in rankings]
    if unknown:
        raise ValueError(f"retrieval run {retrieval_run_id} has no method {', '.join(unknown)}; "
                         f"it has {', '.join(sorted(rankings))}")
    queries = sorted(set().union(*(rankings[m].keys() for m in chosen)))
    tops = {m: {q: (rankings[m].get(q) or [None])[0] for q in queries} for m in chosen}
    files = _image_files(ws, set(queries) | {h for t in tops.values() for h in t.values() if h is not None})
    pairs: list[JudgePair] = []
    where: list[tuple[str, int]] = []
    for m in chosen:
        for q in queries:
            h = tops[m][q]
            if h is None or q not in files or h not in files:
                continue
            pairs.append(JudgePair(files[q][0], files[h][0], files[q][1], files[h][1]))
            where.append((m, q))
    run = start_run(ws, "judge", f"judge of retrieval #{retrieval_run_id}",
                    {"retrieval_run": retrieval_run_id, "methods": chosen, "judge": config.public(),
                     "reference": reference}, parent_id=retrieval_run_id, created_by=created_by)
    judge = Judge(config, cache if cache is not None else StoreJudgeCache(ws))
    try:
        results = judge.score(pairs, progress=progress)
        q_row = {q: r for r, q in enumerate(queries)}
        scores = {m: np.full(len(queries), np.nan) for m in chosen}
        status = {m: {"ok": 0, "invalid": 0, "failed": 0, "capped": 0} for m in chosen}
        per_pair = []
        for (m, q), res in zip(where, results):
            status[m][res.status] += 1
            if res.score is not None:
                scores[m][q_row[q]] = res.score
            per_pair.append({"method": m, "query": q, "hit": tops[m][q], "status": res.status, "score": res.score,
                             "cached": res.cached})
        ref = reference if reference in chosen else _default_reference(chosen)
        table = []
        for m in chosen:
            row = {"method": m, "mean": bootstrap_mean(scores[m], resamples=resamples, seed=seed).as_dict(), **status[m]}
            if ref and m != ref:
                row["minus_reference"] = paired_difference(scores[m], scores[ref], resamples=resamples, seed=seed).as_dict()
            table.append(row)
        stats = vars(judge.stats).copy()
        summary = {"format": RESULT_FORMAT, "kind": "judge", "run_id": run.id, "retrieval_run": retrieval_run_id,
                   "reference": ref, "judge": config.public(), "table": table, "pairs": per_pair, "stats": stats,
                   "paper_scores": PAPER_SCORES}
        write_json(run_dir(ws, "judge", run.id) / SUMMARY_FILE, summary)
        incomplete = any(s["failed"] or s["capped"] for s in status.values())
        finish_run(ws, run.id, status="partial" if incomplete else "done",
                   metrics={"means": {r["method"]: r["mean"]["estimate"] for r in table}, "requests": stats["requests"],
                            "cached": stats["cached"], "cost": stats["cost"]})
    except Exception as exc:
        finish_run(ws, run.id, metrics={"error": str(exc)[:500]}, status="failed")
        raise
    return run.id


def _default_reference(methods: Sequence[str]) -> str | None:
    """The first relsim-looking method, else the first one."""
    for m in methods:
        if "relsim" in m.lower():
            return m
    return methods[0] if methods else None
