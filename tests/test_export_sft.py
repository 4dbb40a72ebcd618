"""Chat-format SFT exports: the filter (consensus Yes/No, class counts) and the captioner."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlmodel import select

from relcurate.testing.exports import build_curated, read_jsonl
from relcurate.curation.labeling import agreement, labels
from relcurate.db.engine import read_scope
from relcurate.db.models import User
from relcurate.exports.sft import export_captioner_sft, export_filter_sft
from relcurate.models.protocols import FILTER_QUESTION
from relcurate.workspace import Workspace

TWO_WAY = {"train": 1, "test": 1}


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """The curated workspace plus filter labels: clear majorities, a tie, an adjudicated dispute."""
    tmp = tmp_path_factory.mktemp("sft")
    ws = Workspace.init(tmp / "ws")
    cur = build_curated(ws, tmp)
    with read_scope(ws.engine) as s:
        uid = {u.username: u.id for u in s.exec(select(User))}
    votes = {  # image -> answers by (ann, cur, adm)
        "p00": ("yes", "yes", None), "p01": ("yes", None, None), "p02": ("no", "no", "yes"),
        "p03": ("no", None, None), "p04": ("yes", "no", None),  # p04: a tie
        "p05": ("yes", "no", None),  # p05: disputed, adjudicated "no" below
        "p06": ("skip", None, None), "j100": ("yes", None, None),
    }
    n = 0
    for key, answers in votes.items():
        for user, answer in zip(("ann", "cur", "adm"), answers):
            if answer:
                n += 1
                labels.record_label(ws.engine, image_id=cur.ids[key], user_id=uid[user], answer=answer,
                                    request_id=f"req-{n}")
    agreement.adjudicate(ws.engine, image_id=cur.ids["p05"], user_id=uid["rev"], answer="no")
    yield cur
    ws.engine.dispose()


def test_filter_sft_rows_and_class_counts(labelled, tmp_path):
    cur = labelled
    res = export_filter_sft(cur.ws, tmp_path / "out", user="cur", splits=TWO_WAY)
    out = res.path
    rows = read_jsonl(out / "filter_sft_train.jsonl") + read_jsonl(out / "filter_sft_test.jsonl")
    expected = {"p00": "Yes", "p01": "Yes", "p02": "No", "p03": "No", "p05": "No", "j100": "Yes"}
    assert len(rows) == len(expected)  # the tie (p04) and the skip-only image (p06) are left out
    by_label = {r["label"] for r in rows}
    assert by_label == {"Yes", "No"}
    for r in rows:
        user, assistant = r["messages"]
        assert user["role"] == "user" and assistant["role"] == "assistant"
        assert user["content"][0] == {"type": "image", "image": r["images"][0]}
        assert user["content"][1] == {"type": "text", "text": FILTER_QUESTION}
        assert assistant["content"] == [{"type": "text", "text": r["label"]}]
        assert (out / r["images"][0]).exists() and r["images"][0].startswith("images/")
    assert any(r["consensus"] == "adjudicated" and r["label"] == "No" for r in rows)
    jpeg = [r for r in rows if r["images"][0].endswith(".jpg")]
    assert len(jpeg) == 1  # originals keep their format here
    classes = res.counts["classes"]
    assert sum(c["Yes"] for c in classes.values()) == 3 and sum(c["No"] for c in classes.values()) == 3
    assert res.counts["ties_left_out"] == 1
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["classes"] == classes and manifest["kind"] == "filter-sft"
    # p00, p01, p02 are one group (g0): same split
    split_of = {}
    for split in ("train", "test"):
        for r in read_jsonl(out / f"filter_sft_{split}.jsonl"):
            split_of[r["id"]] = split
    from relcurate.exports.snapshot import load_snapshot, snapshot_connection

    with snapshot_connection(cur.ws.engine) as conn:
        snap = load_snapshot(conn)
    assert len({split_of[snap.identity[cur.ids[k]][0]] for k in ("p00", "p01", "p02")}) == 1


def test_filter_sft_reference_paths_and_custom_consensus(labelled, tmp_path):
    """images="reference" points at the store; any consensus function with the same shape works."""
    from relcurate.curation.labeling.agreement import Consensus

    cur = labelled
    fixed = {cur.ids["p10"]: Consensus(cur.ids["p10"], "yes", "majority", 1, 0)}
    res = export_filter_sft(cur.ws, tmp_path / "out", user="cur", images="reference",
                            consensus_fn=lambda engine: fixed)
    rows = read_jsonl(res.path / "filter_sft_train.jsonl") + read_jsonl(res.path / "filter_sft_test.jsonl")
    assert len(rows) == 1 and Path(rows[0]["images"][0]).is_absolute() and Path(rows[0]["images"][0]).exists()
    assert not (res.path / "images").exists()


def test_captioner_sft_per_image_and_per_group(labelled, tmp_path):
    from relcurate.models.qwen_captioner import CAPTION_PROMPT

    cur = labelled
    single = export_captioner_sft(cur.ws, tmp_path / "one", user="adm", splits=TWO_WAY)
    rows = read_jsonl(single.path / "captioner_sft_train.jsonl") + read_jsonl(single.path / "captioner_sft_test.jsonl")
    assert len(rows) == 18  # the same (image, accepted caption) pairs as the relsim export
    for r in rows:
        user, assistant = r["messages"]
        assert len(r["images"]) == 1 and user["content"][-1]["text"] == CAPTION_PROMPT
        assert assistant["content"][0]["text"] and (single.path / r["images"][0]).exists()
    group = export_captioner_sft(cur.ws, tmp_path / "grp", user="adm", per="group", splits=TWO_WAY)
    grows = read_jsonl(group.path / "captioner_sft_train.jsonl") + read_jsonl(group.path / "captioner_sft_test.jsonl")
    assert sorted(r["group_id"] for r in grows) == sorted(cur.groups[g] for g in ("g0", "g1", "g2", "g3", "g4"))
    g4 = next(r for r in grows if r["group_id"] == cur.groups["g4"])
    assert len(g4["images"]) == 2  # the pending URL member has no image to show
    g0 = next(r for r in grows if r["group_id"] == cur.groups["g0"])
    assert len(g0["images"]) == 3 and "group of 3 images" in g0["messages"][0]["content"][-1]["text"]
    assert g0["messages"][1]["content"][0]["text"].startswith("The {Object} of group g0")
