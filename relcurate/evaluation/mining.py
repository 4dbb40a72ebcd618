""""Relationally close, visually far": image pairs ranked by relational similarity minus
attribute similarity across the workspace (the pairs a relsim model finds and CLIP-like
features miss), saved as a mining run; starting a seed group from a pair.

The two cosines live on different scales (a relsim space is often anisotropic: most pairs near
0.8, while attribute cosines spread around 0), so by default each is standardised over all pairs
of the workspace (z-score; exact mean and spread from d x d moments, no n x n matrix) before the
difference is taken (`scoring="z"`); `scoring="raw"` keeps the plain difference.

Scored in row blocks (never the full n x n matrix in memory); each block keeps its best
candidates, the global top is taken at the end. Pairs already in one live seed group can be
left out (they are known), as can pairs whose relational similarity is below a floor.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from sqlmodel import select

from relcurate.curation.groups.membership import GroupError, GroupSummary, add_members, list_groups, start_group_with
from relcurate.db.models import GroupMember, GroupStatus, SeedGroup
from relcurate.db.engine import read_scope
from relcurate.evaluation.runs import RESULT_FORMAT, SUMMARY_FILE, finish_run, run_dir, start_run, write_json
from relcurate.evaluation.spaces import PairedSpaces, paired_spaces
from relcurate.workspace import Workspace

Progress = Callable[[int, int], None]


SCORINGS = ("z", "raw")


@dataclass(frozen=True)
class MinedPair:
    a: int
    b: int
    relational: float  # cosines, as the spaces give them
    attribute: float
    gap: float  # the ranking score: relational minus attribute, each standardised unless scoring="raw"


def pair_cosine_moments(X: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of x_i . x_j over all pairs i != j, without the n x n matrix."""
    X = np.asarray(X, np.float64)
    n = len(X)
    if n < 2:
        return 0.0, 0.0
    diag = np.einsum("ij,ij->i", X, X)
    s = X.sum(0)
    mean = (s @ s - diag.sum()) / (n * (n - 1))
    gram = X.T @ X
    second = ((gram * gram).sum() - (diag * diag).sum()) / (n * (n - 1))
    return float(mean), float(np.sqrt(max(second - mean * mean, 0.0)))


def _standardiser(X: np.ndarray, scoring: str) -> tuple[float, float]:
    """(shift, scale) turning a cosine into the score's units; a space without spread scores 0."""
    if scoring == "raw":
        return 0.0, 1.0
    mean, sd = pair_cosine_moments(X)
    return (mean, sd) if sd > 1e-9 else (mean, np.inf)


def rank_pairs(spaces: PairedSpaces, *, top: int = 200, min_relational: float | None = None,
               skip_pairs: set[tuple[int, int]] | None = None, block: int = 1024, scoring: str = "z",
               progress: Progress | None = None) -> list[MinedPair]:
    if scoring not in SCORINGS:
        raise ValueError(f"unknown scoring {scoring!r}; expected one of {SCORINGS}")
    ids, R, A = spaces.ids, spaces.relational, spaces.attribute
    n = len(ids)
    (r_mu, r_sd), (a_mu, a_sd) = _standardiser(R, scoring), _standardiser(A, scoring)
    skip = skip_pairs or set()
    cand: list[tuple[float, int, int, float, float]] = []
    per_block = top + len(skip) + 8
    for start in range(0, n, block):
        stop = min(n, start + block)
        rel = R[start:stop] @ R.T
        att = A[start:stop] @ A.T
        gap = (rel - r_mu) / r_sd - (att - a_mu) / a_sd
        rows = np.arange(start, stop)[:, None]
        gap[np.arange(n)[None, :] <= rows] = -np.inf  # each unordered pair once, no self pairs
        if min_relational is not None:
            gap[rel < min_relational] = -np.inf
        flat = gap.ravel()
        k = min(per_block, flat.size)
        best = np.argpartition(-flat, k - 1)[:k]
        for f in best:
            if not np.isfinite(flat[f]):
                continue
            r, c = divmod(int(f), n)
            i = start + r
            a, b = int(ids[i]), int(ids[c])
            if (min(a, b), max(a, b)) in skip:
                continue
            cand.append((float(flat[f]), a, b, float(rel[r, c]), float(att[r, c])))
        if progress:
            progress(stop, n)
    cand.sort(key=lambda t: (-t[0], t[1], t[2]))
    return [MinedPair(a, b, r, at, g) for g, a, b, r, at in cand[:top]]


def _grouped_pairs(ws: Workspace) -> set[tuple[int, int]]:
    live = [s for s in GroupStatus if s not in (GroupStatus.rejected, GroupStatus.split)]
    with read_scope(ws.engine) as s:
        rows = s.exec(select(GroupMember.group_id, GroupMember.image_id).join(SeedGroup)
                      .where(SeedGroup.status.in_([x.value for x in live]))).all()
    by_group: dict[int, list[int]] = {}
    for g, i in rows:
        by_group.setdefault(g, []).append(int(i))
    out = set()
    for members in by_group.values():
        for x in range(len(members)):
            for y in range(x + 1, len(members)):
                out.add((min(members[x], members[y]), max(members[x], members[y])))
    return out


def run_mining(ws: Workspace, *, relational: str, attribute: str, top: int = 200,
               min_relational: float | None = None, skip_grouped: bool = False, scoring: str = "z",
               created_by: int | None = None, progress: Progress | None = None) -> int:
    """Mine and save the ranking; returns the mining EvalRun id."""
    spaces = paired_spaces(ws, relational, attribute)
    params = {"relational": spaces.relational_label, "attribute": spaces.attribute_label, "top": top,
              "min_relational": min_relational, "skip_grouped": skip_grouped, "scoring": scoring,
              "images": int(len(spaces.ids))}
    run = start_run(ws, "mining", f"mining: {spaces.relational_label} minus {spaces.attribute_label}", params,
                    created_by=created_by)
    pairs = rank_pairs(spaces, top=top, min_relational=min_relational, scoring=scoring,
                       skip_pairs=_grouped_pairs(ws) if skip_grouped else None, progress=progress)
    write_json(run_dir(ws, "mining", run.id) / SUMMARY_FILE,
               {"format": RESULT_FORMAT, "kind": "mining", "run_id": run.id, "params": params,
                "pairs": [{"a": p.a, "b": p.b, "relational": round(p.relational, 6),
                           "attribute": round(p.attribute, 6), "gap": round(p.gap, 6)} for p in pairs]})
    finish_run(ws, run.id, metrics={"pairs": len(pairs), "top_gap": pairs[0].gap if pairs else None})
    return run.id


def start_group_from_images(ws: Workspace, image_ids: Sequence[int], *, user_id: int | None,
                            name: str | None = None) -> int:
    """A draft seed group holding these images (from a mined pair or the similarity space).
    Idempotent per user: their existing draft with exactly these members is returned (a double
    click makes one group)."""
    ids = list(dict.fromkeys(int(i) for i in image_ids))
    if not ids:
        raise GroupError("a group needs at least one image")

    group = start_group_with(ws, ids, name=name or f"mined pair {' & '.join(f'#{i}' for i in ids)}",
                             created_by=user_id, source="mining")
    return int(group.id)


def draft_groups(ws: Workspace, user_id: int | None = None) -> list[GroupSummary]:
    """Draft groups (this user's when given) that an image from the evaluation pages can join."""
    return list_groups(ws, status=GroupStatus.draft, created_by=user_id)


def add_image_to_group(ws: Workspace, group_id: int, image_id: int) -> bool:
    """Add one image to a group (True), or nothing when it is already a member (False)."""
    return bool(add_members(ws, int(group_id), [int(image_id)]))
