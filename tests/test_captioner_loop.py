"""The captioner loop: "caption-pool" captions exactly the interesting images without an accepted
caption, stores version + confidence + checker verdict, queues a review sample (flagged, least
confident, random audit share) saying why; "captioner-retrain" registers a version; outcomes per
captioner version; a double enqueue is one job."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlmodel import select

from relcurate.curation.groups import caption_queue as cq
from relcurate.curation.groups import captions
from relcurate.curation.labeling.labels import record_label
from relcurate.db import jobs
from relcurate.db.engine import read_scope, session_scope
from relcurate.db.models import Caption, CaptionProposal, CaptionStatus, Prediction
from relcurate.jobs.worker import run_worker
from relcurate.models.registry import list_model_versions, register_model
from relcurate.testing.training import build_training_workspace
from relcurate.training import captioner_loop as loop

GOOD = "A {Object} split into {Number} equal parts."
BAD = "A red dog and three cats."  # checker errors: colour, objects, count, no placeholder


@dataclass
class _Result:
    text: str
    confidence: float


class FakeCaptioner:
    """Deterministic captions per image size: which images it saw, and a chosen confidence."""

    def __init__(self, plan):
        self.plan, self.seen = plan, []

    def caption_results(self, images):
        self.seen.append(len(images))
        return [_Result(*self.plan.pop(0)) for _ in images]


@pytest.fixture
def cap_ws(workspace):
    data = build_training_workspace(workspace, n_groups=3, per_group=2, yes_groups=1, pool=7)
    pool = data.pool
    uid = data.users["ann1"]
    for iid in pool[:3] + [pool[5]]:  # consensus Yes (one annotator is a majority of one)
        record_label(workspace.engine, image_id=iid, user_id=uid, answer="yes", request_id=f"y-{iid}")
    record_label(workspace.engine, image_id=pool[6], user_id=uid, answer="no", request_id=f"n-{pool[6]}")
    captions.add_image_caption(workspace, pool[5], GOOD, source="human")
    cid = captions.add_image_caption(workspace, pool[5], GOOD + " Again.", source="human").id
    captions.review_caption(workspace, cid, "accept", user_id=None)  # pool[5] already has an accepted caption
    filt = register_model(workspace, kind="filter", name="filter-ft", base_model="x", config={"threshold": 0.7})
    with session_scope(workspace.engine) as s:
        s.add(Prediction(model_version_id=filt.id, image_id=pool[3], score=0.9))  # kept by the filter
        s.add(Prediction(model_version_id=filt.id, image_id=pool[4], score=0.5))  # below its threshold
    capv = register_model(workspace, kind="captioner", name="cap", base_model="x")
    return workspace, data, capv


def test_caption_pool_captions_exactly_the_eligible_images(cap_ws):
    ws, data, capv = cap_ws
    pool = data.pool
    expected = sorted(pool[:4])  # Yes-consensus or filter-kept; group members have accepted captions
    assert cq.eligible_images(ws, capv.id, kept_by=list_model_versions(ws, kind="filter")[0].id) == expected
    fake = FakeCaptioner([(GOOD, -0.5), (BAD, -0.2), (GOOD, -2.0), (GOOD, -1.0)])
    res = loop.caption_pool(ws, loop.CaptionPoolSettings(batch_size=3, sample_size=3, audit_share=0.0),
                            captioner=fake)
    assert res["eligible"] == 4 and res["captioned"] == 4 and fake.seen == [3, 1]
    with read_scope(ws.engine) as s:
        props = {p.image_id: p for p in s.exec(select(CaptionProposal))}
        caps = {c.image_id: c for c in s.exec(select(Caption).where(Caption.source == "model"))}
    assert sorted(props) == expected == sorted(caps)
    assert all(c.status == CaptionStatus.proposed and c.model_version_id == capv.id for c in caps.values())
    by_image = {i: (p.confidence, p.checker_ok, p.model_version_id) for i, p in props.items()}
    assert by_image[pool[0]] == (-0.5, True, capv.id) and by_image[pool[1]][:2] == (-0.2, False)
    assert "colour_word" in props[pool[1]].checker_codes
    # queue: the flagged one first, then the least confident; the most confident good one waits
    queue = cq.review_queue(ws)
    assert [(q.image_id, q.reason) for q in queue] == [(pool[1], "flagged"), (pool[2], "low_confidence"),
                                                      (pool[3], "low_confidence")]
    assert all(q.model == "cap:1" for q in queue)
    # a rerun with the same version captions nothing again
    again = loop.caption_pool(ws, loop.CaptionPoolSettings(sample_size=0), captioner=FakeCaptioner([]))
    assert again["eligible"] == 0 and again["captioned"] == 0


def test_review_sample_order_and_audit_share(cap_ws):
    ws, data, capv = cap_ws
    ids = data.pool + [i for g in data.groups.values() for i in g]  # ten images, any will do here
    gen = [cq.Generated(iid, f"{GOOD} {n}", confidence=-float(n), checker_ok=n not in (2, 7),
                        checker_codes=() if n not in (2, 7) else ("object_noun",)) for n, iid in enumerate(ids[:10])]
    assert len(cq.record_generated(ws, capv.id, gen)) == 10
    assert cq.record_generated(ws, capv.id, gen) == []  # a retried batch stores nothing twice
    counts = cq.draw_review_sample(ws, capv.id, size=6, audit_share=0.34, seed=1)
    queue = cq.review_queue(ws)
    assert [q.rank for q in queue] == list(range(6)) and counts["audit"] == 2 and sum(counts.values()) == 6
    reasons = [q.reason for q in queue]
    assert reasons == sorted(reasons, key=["flagged", "low_confidence", "audit"].index)  # that order
    # the audit is uniform over all candidates; the rest: flagged first, then least confident
    conf = {g.image_id: g.confidence for g in gen}
    flagged = {g.image_id for g in gen if not g.checker_ok}
    audit = {q.image_id for q in queue if q.reason == "audit"}
    rest = [i for i in ids[:10] if i not in audit]
    want = sorted((i for i in rest if i in flagged), key=conf.get) + \
        sorted((i for i in rest if i not in flagged), key=conf.get)
    assert [q.image_id for q in queue[:4]] == want[:4]
    assert counts["flagged"] == len(flagged - audit)
    # a second draw continues the ranks and never re-queues
    more = cq.draw_review_sample(ws, capv.id, size=10, audit_share=0.0)
    assert sum(more.values()) == 4 and [q.rank for q in cq.review_queue(ws)] == list(range(10))
    assert cq.queued_caption(ws, queue[0].caption_id).reason == "flagged"


def test_outcomes_per_captioner_version(cap_ws):
    ws, data, capv = cap_ws
    v2 = register_model(ws, kind="captioner", name="cap", base_model="x")
    new = cq.record_generated(ws, capv.id, [cq.Generated(i, GOOD + f" {n}.", -1.0, True)
                                            for n, i in enumerate(data.pool[:4])])
    cq.record_generated(ws, v2.id, [cq.Generated(data.pool[4], GOOD, -1.0, True)])
    captions.review_caption(ws, new[0], "accept", user_id=None)
    captions.review_caption(ws, new[1], "accept", user_id=None, text="A {Thing} split into {Number} parts.")
    captions.review_caption(ws, new[2], "reject", user_id=None, reason="describes nothing")
    rows = {r["model"]: r for r in cq.outcomes_by_version(ws)}
    r1 = rows["cap:1"]
    assert (r1["accepted"], r1["edited"], r1["rejected"], r1["pending"], r1["reviewed"]) == (1, 1, 1, 1, 3)
    assert r1["accepted_rate"] == pytest.approx(1 / 3) and r1["rejected_rate"] == pytest.approx(1 / 3)
    assert rows["cap:2"]["pending"] == 1 and rows["cap:2"]["accepted_rate"] is None


def test_jobs_double_enqueue_is_one_job_and_unknown_params_refused(cap_ws):
    ws, _data, _capv = cap_ws
    a = loop.enqueue_caption_pool(ws, params={"sample_size": 5})
    b = loop.enqueue_caption_pool(ws, params={"sample_size": 5})
    assert a.created and not b.created and a.job.id == b.job.id
    r1, r2 = loop.enqueue_captioner_retrain(ws), loop.enqueue_captioner_retrain(ws)
    assert r1.created and not r2.created and r1.job.id == r2.job.id
    with pytest.raises(TypeError):
        loop.CaptionPoolSettings(bogus=1)


def test_caption_pool_job_with_the_tiny_captioner(sqlite_workspace, tiny_qwen_bpe):
    ws = sqlite_workspace
    data = build_training_workspace(ws, n_groups=2, per_group=2, yes_groups=0, pool=3)
    for iid in data.pool:
        record_label(ws.engine, image_id=iid, user_id=data.users["ann1"], answer="yes", request_id=f"y{iid}")
    capv = register_model(ws, kind="captioner", name="tiny-cap", base_model=str(tiny_qwen_bpe),
                          config={"backend": "qwen-captioner", "init": {"max_pixels": 56 * 56}})
    loop.enqueue_caption_pool(ws, params={"sample_size": 2, "audit_share": 0.5, "batch_size": 2})
    assert run_worker(ws, exit_when_idle=True, idle_hooks=[]) == 1
    (job,) = jobs.list_jobs(ws.engine)
    assert job.state == "done", job.error
    assert job.result["eligible"] == 3 and job.result["captioned"] + job.result["not_stored"] == 3
    with read_scope(ws.engine) as s:
        props = list(s.exec(select(CaptionProposal)))
    assert {p.image_id for p in props} <= set(data.pool) and all(p.model_version_id == capv.id for p in props)
    assert all(p.confidence is not None and p.confidence <= 0 and p.job_id == job.id for p in props)
    assert sum(job.result["queued"].values()) == min(2, len(props))


def test_captioner_retrain_job_registers_a_version(sqlite_workspace, tiny_qwen_bpe):
    ws = sqlite_workspace
    build_training_workspace(ws, n_groups=6, per_group=3, labels=False, pool=0)
    loop.enqueue_captioner_retrain(ws, params={"base": str(tiny_qwen_bpe), "name": "cap-loop", "max_steps": 2,
                                               "batch_size": 4, "max_pixels": 56 * 56, "eval_max_new_tokens": 4,
                                               "eval_limit": 4})
    assert run_worker(ws, exit_when_idle=True, idle_hooks=[]) == 1
    (job,) = jobs.list_jobs(ws.engine)
    assert job.state == "done", job.error
    (mv,) = list_model_versions(ws, kind="captioner")
    assert job.result["model"] == f"cap-loop:{mv.version}" and job.result["steps"] == 2
    assert captions.latest_captioner(ws).model_version_id == mv.id  # the next caption-pool uses it
