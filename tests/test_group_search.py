"""Finding images for a group: browse filters (both back ends), the built-in attribute space
(embedded on demand, cached on disk), "more like this group" (centroid + leave-one-out),
"images like this one", near-duplicate flags, saved third-party spaces, split suggestions."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image as PILImage

from relcurate.testing.groups import populate
from relcurate.accounts import create_user
from relcurate.curation.groups import captions, group_search, membership as groups, splitting
from relcurate.curation.groups.group_search import BUILTIN_SPACE, BrowseFilter
from relcurate.curation.ingest.pipeline import ingest_source
from relcurate.db.engine import read_scope, session_scope
from relcurate.db.models import CurrentLabel, FilterLabel
from relcurate.models.index import VectorIndex
from relcurate.workspace import Workspace


@pytest.fixture(scope="module")
def ws_ids(tmp_path_factory):
    """One read-mostly SQLite workspace for the search tests (embedding is done once)."""
    tmp = tmp_path_factory.mktemp("search")
    ws = Workspace.init(tmp / "ws")
    ids = populate(ws, tmp)
    yield ws, ids
    ws.engine.dispose()


def family(ids: dict[str, int], fam: str) -> set[int]:
    return {v for k, v in ids.items() if k.startswith(fam)}


def test_browse_filters(workspace, tmp_path):
    ids = populate(workspace, tmp_path)
    user = create_user(workspace.engine, "ann", "annotator-pw")
    gid = groups.create_group(workspace, "reds", [ids["red0"], ids["red1"]]).id
    captions.add_group_caption(workspace, gid, "A {Fruit} ripening over {Days} days.", source="human")
    captions.add_image_caption(workspace, ids["blue3"], "A {Vessel} under {Weather} skies.", source="model")
    with session_scope(workspace.engine) as s:
        for key, answer in (("green0", "yes"), ("green1", "no")):
            label = FilterLabel(image_id=ids[key], user_id=user.id, answer=answer)
            s.add(label)
            s.flush()
            s.add(CurrentLabel(image_id=ids[key], user_id=user.id, label_id=label.id, answer=answer))

    def found(**kw) -> set[int]:
        cards, total = group_search.browse(workspace, BrowseFilter(**kw), limit=100)
        assert total == len(cards)
        return {c.id for c in cards}

    assert found(text="FROG") == family(ids, "green")  # alt-text, case-insensitive
    assert found(text="ripening") == {ids["red0"], ids["red1"]}  # a group caption
    assert found(text="vessel") == {ids["blue3"]}  # a per-image caption
    assert found(text="plain.png") == {ids["plain"]}  # source file name
    assert found(status="quarantined") == {ids["broken"]}
    assert found(source_kind="folder", status=None) == {ids["plain"], ids["broken"]}
    assert found(label="yes") == {ids["green0"]} and found(label="no") == {ids["green1"]}
    assert len(found(label="unlabelled")) == 14
    assert found(membership="grouped") == {ids["red0"], ids["red1"]}
    assert found(membership="ungrouped", text="apple") == family(ids, "red") - {ids["red0"], ids["red1"]}
    assert ids["red0"] not in found(exclude_group=gid)
    cards, total = group_search.browse(workspace, BrowseFilter(), offset=10, limit=4)
    assert total == 16 and [c.id for c in cards] == sorted(found())[10:14]
    assert group_search.source_kinds(workspace) == ["folder", "jsonl"]
    with pytest.raises(ValueError):
        found(label="maybe")


def test_builtin_space_is_embedded_once_and_reloaded(ws_ids, tmp_path):
    ws, ids = ws_ids
    calls = []
    index = group_search.ensure_space(ws, progress=lambda done, total: calls.append((done, total)))
    usable = set(ids.values()) - {ids["broken"]}
    assert set(index.ids.tolist()) == usable and calls == [(16, 16)]
    assert (ws.vectors_dir / BUILTIN_SPACE / "index.faiss").exists()
    calls.clear()
    assert group_search.ensure_space(ws, progress=lambda *a: calls.append(a)) is index and calls == []
    group_search._index_cache.clear()  # as a fresh process would: read back from disk
    again = group_search.open_space(ws, BUILTIN_SPACE)
    found, vecs = group_search.vectors_of(again, [ids["red0"], ids["broken"]])
    assert found == [ids["red0"]] and vecs.shape == (1, again.dim)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert group_search.available_spaces(ws)[0] == BUILTIN_SPACE


def test_more_like_group_centroid_and_leave_one_out(ws_ids):
    ws, ids = ws_ids
    members = [ids["red0"], ids["red1"], ids["red2"]]
    res = group_search.more_like_group(ws, members, k=4)
    others = family(ids, "red") - set(members)
    assert {n.image_id for n in res.centroid[:2]} == others  # the other reds first
    assert [n.score for n in res.centroid] == sorted((n.score for n in res.centroid), reverse=True)
    assert {n.image_id for n in res.leave_one_out[:2]} == others
    assert {f.image_id for f in res.member_fit} == set(members) and all(f.rank >= 0 for f in res.member_fit)
    assert not res.not_embedded and ids["broken"] not in {n.image_id for n in res.centroid}
    # Filters apply to suggestions: only images whose alt-text mentions a boat.
    boats = group_search.more_like_group(ws, members, k=3, flt=BrowseFilter(text="boat"))
    assert len(boats.centroid) == 3 and {n.image_id for n in boats.centroid} <= family(ids, "blue")
    single = group_search.more_like_group(ws, [ids["green0"]], k=2)
    assert single.leave_one_out == [] and single.member_fit == [] and len(single.centroid) == 2


def test_like_image_and_near_duplicate_flag(ws_ids, tmp_path):
    ws, ids = ws_ids
    near = group_search.like_image(ws, ids["blue0"], k=4)
    assert {n.image_id for n in near} == family(ids, "blue") - {ids["blue0"]}
    # A slightly brightened copy of red0: same pHash neighbourhood, flagged as a near-duplicate.
    src = ws.image_path(*_sha_ext(ws, ids["red0"]))
    folder = tmp_path / "copy"
    folder.mkdir()
    with PILImage.open(src) as im:
        PILImage.eval(im.convert("RGB"), lambda v: min(255, v + 6)).save(folder / "red0-copy.png")
    ingest_source(ws, folder, workers=1)
    res = group_search.more_like_group(ws, [ids["red0"], ids["red1"]], k=3)
    flagged = {n.image_id: n.near_duplicate_of for n in res.centroid}
    copy_id = max(flagged)
    assert flagged[copy_id] == ids["red0"]
    assert all(v is None for k, v in flagged.items() if k != copy_id)
    assert group_search.like_image(ws, 10_000_000) == []


def _sha_ext(ws, image_id):
    from relcurate.db.models import Image

    with read_scope(ws.engine) as s:
        img = s.get(Image, image_id)
        return img.sha256, img.ext


@pytest.mark.parametrize("kind", ["exact", "approx"])
def test_saved_third_party_space(ws_ids, kind):
    """A space saved by another model (VectorIndex folder) is offered and searched as saved."""
    ws, ids = ws_ids
    # A made-up space where each red sits next to a green (the opposite of colour similarity).
    keys = [k for k in ids if k[:-1] in ("red", "green")]
    vecs = np.zeros((len(keys), 4), np.float32)
    for row, key in enumerate(keys):
        vecs[row, int(key[-1]) % 4] = 1.0
        vecs[row, 3] += 0.01 * row
    VectorIndex.build(vecs, [ids[k] for k in keys], model_version="toy", kind=kind, nlist=1 if kind == "approx" else None,
                      nprobe=1 if kind == "approx" else None).save(ws.vectors_dir / f"toy-{kind}")
    assert f"toy-{kind}" in group_search.available_spaces(ws)
    res = group_search.more_like_group(ws, [ids["red1"], ids["blue0"]], space=f"toy-{kind}", k=1)
    assert res.not_embedded == [ids["blue0"]]
    assert [n.image_id for n in res.centroid] == [ids["green1"]]
    with pytest.raises(ValueError, match="no embedding space"):
        group_search.more_like_group(ws, [ids["red1"]], space="missing")


def test_split_suggestion_by_embedding_separates_families(ws_ids):
    ws, ids = ws_ids
    members = [ids[f"{fam}{i}"] for i in range(5) for fam in ("red", "blue")] + [ids["plain"]]
    vecs = group_search.split_vectors(ws, members)
    parts = splitting.suggest_split(members, vecs)
    assert sorted(map(len, parts)) == [5, 6]
    reds, blues = family(ids, "red"), family(ids, "blue")
    assert any(reds <= set(p) for p in parts) and any(blues <= set(p) for p in parts)
    assert group_search.split_vectors(ws, [ids["red0"], ids["broken"]]) is None
