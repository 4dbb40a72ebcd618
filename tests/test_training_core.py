"""Training building blocks: snapshot + split, too little data, checkpoint atomicity, tracker, loss."""
from __future__ import annotations

import json
import math

import pytest
import torch

from relcurate.testing.training import build_training_workspace
from relcurate.training.checkpoints import MARKER, STATE_FILE, complete_checkpoints, latest_checkpoint
from relcurate.training.relsim_loss import RelsimContrastiveLoss, multi_positive_nll, positives_mask, reference_loss
from relcurate.training.snapshot import TooLittleData, caption_snapshot, filter_snapshot
from relcurate.training.trackers import LocalTracker, read_metrics


def test_caption_snapshot_is_deterministic_and_group_disjoint(workspace):
    build_training_workspace(workspace, n_groups=8, labels=False)
    a = caption_snapshot(workspace, "relsim", heldout_fraction=0.3, seed=1)
    b = caption_snapshot(workspace, "relsim", heldout_fraction=0.3, seed=1)
    assert a.sha256 == b.sha256 and len(a.sha256) == 64
    assert a.train and a.heldout
    assert not ({i.group_id for i in a.train} & {i.group_id for i in a.heldout})
    summary = a.summary()
    assert summary["used"]["groups"] and summary["used"]["captions"]
    assert caption_snapshot(workspace, "relsim", heldout_fraction=0.3, seed=2).sha256 != a.sha256


def test_too_little_data_says_how_much(workspace):
    build_training_workspace(workspace, n_groups=1, per_group=2, labels=False)
    with pytest.raises(TooLittleData, match=r"needs at least \d+ image-caption pairs; the store has 2"):
        caption_snapshot(workspace, "relsim")
    with pytest.raises(TooLittleData, match="filter training needs at least 6 labelled images; the store has 0"):
        filter_snapshot(workspace)


def test_filter_snapshot_classes_and_pool(workspace):
    data = build_training_workspace(workspace, n_groups=8, yes_groups=3, pool=5)
    snap = filter_snapshot(workspace, heldout_fraction=0.3, seed=0)
    answers = {i.target for i in snap.train} | {i.target for i in snap.heldout}
    assert answers == {"yes", "no"}
    assert snap.extra["pool_size"] == 5 and {p[0] for p in snap.extra["pool"]} == set(data.pool)
    with pytest.raises(TooLittleData, match="needs at least 6 labelled images"):
        filter_snapshot(workspace, min_votes=3)  # every image has two votes


def test_incomplete_checkpoints_are_never_taken(tmp_path):
    root = tmp_path / "checkpoints"
    for step, complete in ((2, True), (4, True), (6, False)):
        d = root / f"step-{step:08d}"
        d.mkdir(parents=True)
        (d / STATE_FILE).write_text(json.dumps({"step": step}))
        if complete:
            (d / MARKER).write_text("ok\n")
    (root / ".tmp-step-00000008").mkdir()
    assert [p.name for p in complete_checkpoints(tmp_path)] == ["step-00000002", "step-00000004"]
    assert latest_checkpoint(tmp_path).name == "step-00000004"
    assert latest_checkpoint(tmp_path / "nothing") is None


def test_local_tracker_appends_jsonl_and_csv(tmp_path):
    t = LocalTracker("run", tmp_path / "logs")
    t.store_init_configuration({"lr": 1e-4})
    t.log({"loss": 1.5}, step=1)
    LocalTracker("run", tmp_path / "logs").log({"loss": 1.0, "acc": 0.5}, step=2)  # a resumed run appends
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2]
    lines = (tmp_path / "logs" / "metrics.csv").read_text().splitlines()
    assert lines[0] == "step,time,key,value" and len(lines) == 4


def test_duplicate_captions_are_positives_not_negatives():
    assert positives_mask([0, 1, 0]).tolist() == [[True, False, True], [False, True, False], [True, False, True]]
    img = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    img[2] = img[0]  # two images of one group ...
    txt = img.clone()  # ... so the same caption on rows 0 and 2
    ids = [5, 6, 5, 7]
    loss = RelsimContrastiveLoss(learnable=False)
    ours = loss(img, txt, ids)
    # with arange labels the reference counts row 2's caption as a negative for row 0
    assert float(ours["loss"]) < float(reference_loss(img, txt))
    assert float(ours["accuracy"]) == 1.0
    # with distinct captions the multi-positive loss is the ordinary cross-entropy
    ids_distinct = [0, 1, 2, 3]
    logits = img @ img.T / 0.07
    expected = torch.nn.functional.cross_entropy(logits, torch.arange(4))
    got = multi_positive_nll(logits, positives_mask(ids_distinct))
    assert torch.allclose(got, expected, atol=1e-5)


def test_learnable_temperature_init_clamp_and_gradient():
    loss = RelsimContrastiveLoss(symmetric=True)
    assert loss.temperature == pytest.approx(0.07, rel=1e-5)
    assert loss.logit_scale.requires_grad and float(loss.logit_scale) == pytest.approx(math.log(1 / 0.07))
    img = torch.nn.functional.normalize(torch.randn(6, 8), dim=-1)
    out = loss(img, img.clone(), list(range(6)))
    out["loss"].backward()
    assert loss.logit_scale.grad is not None and float(loss.logit_scale.grad) != 0.0
    with torch.no_grad():
        loss.logit_scale.fill_(50.0)
    assert loss.temperature == pytest.approx(0.01, rel=1e-5)  # clamped at CLIP's 100
    with torch.no_grad():
        loss.logit_scale.fill_(-5.0)
    assert loss.temperature == pytest.approx(1.0)
    assert not RelsimContrastiveLoss(learnable=False).logit_scale.requires_grad


def test_run_folder_ignores_how_a_run_is_watched(workspace):
    from relcurate.training.loop import LoopSettings
    from relcurate.training.versions import run_dir_for

    build_training_workspace(workspace, n_groups=4, labels=False)
    snap = caption_snapshot(workspace, "relsim")
    a = run_dir_for(workspace, "m", snap, "base", {"loop": LoopSettings().as_dict()})
    b = run_dir_for(workspace, "m", snap, "base", {"loop": LoopSettings(progress=False, trackers=("tensorboard",),
                                                                       checkpoint_every=5).as_dict()})
    c = run_dir_for(workspace, "m", snap, "base", {"loop": LoopSettings(lr=1.0).as_dict()})
    assert a == b != c
    with pytest.raises(ValueError, match="model name"):
        run_dir_for(workspace, "../evil", snap, "base", {})


def test_epoch_order_depends_only_on_seed_and_epoch():
    from relcurate.training.loop import epoch_batches

    a = epoch_batches(10, 4, 1, seed=3, epoch=0)
    assert a == epoch_batches(10, 4, 1, seed=3, epoch=0) != epoch_batches(10, 4, 1, seed=3, epoch=1)
    assert [len(b) for b in a] == [4, 4]  # the incomplete trailing batch is dropped
    two = epoch_batches(10, 2, 2, seed=3, epoch=0)  # two processes: 2 global batches of 2x2
    assert len(two) == 4 and len({i for b in two for i in b}) == 8
    assert [len(b) for b in epoch_batches(3, 8, 1, seed=0, epoch=0)] == [3]  # smaller than one batch
