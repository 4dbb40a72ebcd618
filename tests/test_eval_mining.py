"""Mining and the similarity space on the synthetic benchmark (16 relation templates with ground
truth). Most tests use the template oracle (relcurate/testing/evaluation.py) as the relational
embedder, so they test the ranking and the page, not a model; `test_mining_with_a_trained_relsim`
uses a relsim trained by the real trainer. The attribute side is the real attribute baseline."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from relcurate.evaluation import mining, similarity_space as space
from relcurate.evaluation.runs import get_run, read_result
from relcurate.evaluation.spaces import SpaceUnavailable, paired_spaces
from relcurate.models.registry import load_model
from relcurate.models.workspace_scoring import embed_workspace
from relcurate.testing.evaluation import build_eval_workspace, register_eval_models, synthetic_truth
from relcurate.testing.relations import relations_relsim  # noqa: F401 (session fixture: trained once)
from relcurate.workspace import Workspace

# Issue 12: "the top of that ranking is dominated by same-template, different-colour pairs". The
# suite's relsim (relcurate.testing.relations.TEST_RUN: the bench's 24 x 1000 row, seed 7) put 15
# of the top 20 there in this test and 18 in the bench (75%, 90%; a random pair of this workspace:
# ~2%); the bench's three seeds of that row gave 90%, 55%, 70%. 8 groups x 300 steps got 30-60%.
DOMINATED = 0.5  # more than half of the top 20


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    root = tmp_path_factory.mktemp("mining") / "ws"
    ws = build_eval_workspace(root, n_pool=80)
    for mv in register_eval_models(ws):
        embed_workspace(ws, load_model(ws, mv), mv)
    ws.engine.dispose()
    return root


@pytest.fixture
def ws(template, tmp_path):
    shutil.copytree(template, tmp_path / "ws")
    w = Workspace.open(tmp_path / "ws")
    yield w
    w.engine.dispose()


def test_relationally_close_visually_far_is_same_template_different_colour(ws):
    truth = synthetic_truth(ws)
    run_id = mining.run_mining(ws, relational="oracle", attribute="attribute", top=30)
    pairs = read_result(ws, get_run(ws, run_id, "mining"))["pairs"]
    assert len(pairs) == 30
    assert all(p["gap"] >= q["gap"] for p, q in zip(pairs, pairs[1:]))

    def same_template_other_colour(p):
        a, b = truth[p["a"]], truth[p["b"]]
        return a["template"] is not None and a["template"] == b["template"] and a["color"] != b["color"]

    top = [same_template_other_colour(p) for p in pairs[:20]]
    assert sum(top) >= 18, [(truth[p["a"]], truth[p["b"]]) for p in pairs[:20]]
    # The attribute ranking alone is not: its closest pairs rarely share a template.
    sp = paired_spaces(ws, "oracle:1", "attribute:1")
    by_attr = mining.rank_pairs(mining.PairedSpaces(sp.ids, sp.attribute, np.zeros_like(sp.attribute),
                                                    "a", "zero"), top=20)
    assert sum(same_template_other_colour({"a": p.a, "b": p.b}) for p in by_attr) < 10


def test_skip_grouped_and_start_a_group_from_a_pair(ws):
    from relcurate.accounts import create_user
    from relcurate.curation.groups.membership import member_ids

    run_id = mining.run_mining(ws, relational="oracle", attribute="attribute", top=50, skip_grouped=True)
    pairs = read_result(ws, get_run(ws, run_id))["pairs"]
    grouped = mining._grouped_pairs(ws)
    assert grouped and not any((min(p["a"], p["b"]), max(p["a"], p["b"])) in grouped for p in pairs)
    user = create_user(ws.engine, "cur", "curator-pw", "curator")
    a, b = pairs[0]["a"], pairs[0]["b"]
    gid = mining.start_group_from_images(ws, [a, b], user_id=user.id)
    assert mining.start_group_from_images(ws, [a, b], user_id=user.id) == gid  # a double click: one group
    assert member_ids(ws, gid) == [a, b]


def test_similarity_space_regions_and_figures(ws, tmp_path):
    truth = synthetic_truth(ws)
    query = next(i for i, t in sorted(truth.items()) if t["template"] == "ring")
    pts = space.similarity_space(ws, query, relational="oracle", attribute="attribute", per_cell=1000)
    assert query not in pts.ids.tolist() and len(pts.ids) == len(truth) - 1
    assert pts.x.min() == 0 and pts.x.max() == 1 and pts.y.max() == 1
    regions = dict(zip(pts.ids.tolist(), pts.regions()))
    interesting = [i for i, r in regions.items() if r == "same logic, look different"]
    assert interesting and all(truth[i]["template"] == "ring" for i in interesting)
    # Grid sampling: at most per_cell images per cell, deterministic for a seed.
    small = space.similarity_space(ws, query, relational="oracle", attribute="attribute", per_cell=1, seed=3)
    again = space.similarity_space(ws, query, relational="oracle", attribute="attribute", per_cell=1, seed=3)
    assert len(small.ids) < len(pts.ids) and small.ids.tolist() == again.ids.tolist()
    cells = {(min(int(x * 20), 19), min(int(y * 10), 9)) for x, y in zip(small.x, small.y)}
    assert len(cells) == len(small.ids)
    chart = space.space_chart(pts, thumbnails={int(pts.ids[0]): space.thumbnail_uri(b"\x89PNG\r\n\x1a\nxx")})
    spec = chart.to_dict()
    assert "pick" in str(spec.get("params")) and "data:image/png;base64," in str(spec)
    for suffix in (".svg", ".png"):
        out = space.save_chart(space.space_chart(pts, interactive=False), tmp_path / f"space{suffix}")
        assert out.stat().st_size > 1000
    assert (tmp_path / "space.svg").read_text().lstrip().startswith("<svg")
    assert (tmp_path / "space.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(SpaceUnavailable):
        space.similarity_space(ws, 10**9, relational="oracle", attribute="attribute")


@pytest.mark.timeout(900)  # trains the session's relsim when it runs first (~2 min idle)
def test_mining_with_a_trained_relsim(ws, relations_relsim):
    """Issue 12's claim with a real relsim: the relsim trained once per session on the synthetic
    captions (tests/test_relsim_relations.py) is the relational space here; the top of the
    relsim-minus-attribute ranking is mostly same-template, different-colour pairs."""
    from pathlib import Path

    from relcurate.models.registry import register_model

    root, trained = relations_relsim
    truth = synthetic_truth(ws)
    mv = register_model(ws, kind="relsim", name="trained", base_model=trained.base_model,
                        adapter_path=str(Path(root) / trained.adapter_path), config=trained.config)
    embed_workspace(ws, load_model(ws, mv), mv, batch_size=32)
    run_id = mining.run_mining(ws, relational="trained", attribute="attribute", top=20)
    pairs = read_result(ws, get_run(ws, run_id, "mining"))["pairs"]

    def same_template_other_colour(p):
        a, b = truth[p["a"]], truth[p["b"]]
        return a["template"] is not None and a["template"] == b["template"] and a["color"] != b["color"]

    share = sum(map(same_template_other_colour, pairs)) / len(pairs)
    ids = sorted(truth)
    hits = sum(same_template_other_colour({"a": a, "b": b}) for n, a in enumerate(ids) for b in ids[n + 1:])
    random_rate = hits / (len(ids) * (len(ids) - 1) / 2)
    print(f"trained relsim: {share:.0%} of the top {len(pairs)} mined pairs are same template, other colour "
          f"(a random pair: {random_rate:.1%})")
    assert share >= 3 * random_rate
    assert share > DOMINATED, [(truth[p["a"]]["template"], truth[p["b"]]["template"]) for p in pairs]


def test_standardised_scoring_is_exact_and_scale_free():
    """The z-scores use the exact mean/spread of all pair cosines (closed form, no n x n matrix),
    and a relational space squeezed into a narrow band (an anisotropic relsim) ranks the same as
    its spread-out version: the raw difference would let the attribute space decide alone."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 8))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    sims = (X @ X.T)[np.triu_indices(30, 1)]
    mean, sd = mining.pair_cosine_moments(X)
    assert np.isclose(mean, sims.mean()) and np.isclose(sd, sims.std())

    ids = np.arange(30)
    A = rng.normal(size=(30, 8))
    A /= np.linalg.norm(A, axis=1, keepdims=True)
    squeezed = np.hstack([np.full((30, 1), 3.0), 0.3 * X])  # every cosine near 1
    squeezed /= np.linalg.norm(squeezed, axis=1, keepdims=True)
    wide = mining.rank_pairs(mining.PairedSpaces(ids, X, A, "r", "a"), top=10)
    narrow = mining.rank_pairs(mining.PairedSpaces(ids, squeezed, A, "r", "a"), top=10)
    raw = mining.rank_pairs(mining.PairedSpaces(ids, squeezed, A, "r", "a"), top=10, scoring="raw")
    by_attr = [(p.a, p.b) for p in mining.rank_pairs(mining.PairedSpaces(ids, np.zeros_like(A), A, "r", "a"), top=10)]
    overlap = len({(p.a, p.b) for p in wide} & {(p.a, p.b) for p in narrow})
    assert overlap >= 6, overlap
    assert len({(p.a, p.b) for p in raw} & set(by_attr)) > len({(p.a, p.b) for p in narrow} & set(by_attr))
    assert all(p.gap >= q.gap for p, q in zip(narrow, narrow[1:]))
    with pytest.raises(ValueError):
        mining.rank_pairs(mining.PairedSpaces(ids, X, A, "r", "a"), scoring="cosine")
