"""Captioner SFT on tiny Qwen2.5-VL: answer-only loss, learning, held-out group metrics, resume."""
from __future__ import annotations

import signal

import numpy as np
import pytest

from relcurate.models.registry import list_model_versions, load_model
from relcurate.testing.trainers import assert_same_weights, run_killed, trainable_weights
from relcurate.testing.training import build_training_workspace
from relcurate.testing.training_runs import small_settings, train
from relcurate.training.snapshot import TooLittleData


@pytest.fixture
def ws(tmp_path):
    from relcurate.workspace import Workspace

    w = Workspace.init(tmp_path / "ws")
    build_training_workspace(w, n_groups=8, labels=False)
    return w


def test_answer_tokens_only_are_labelled(ws, tiny_qwen_bpe):
    from relcurate.models.qwen_common import load_processor
    from relcurate.training.captioner_trainer import CaptionerTask, samples
    from relcurate.training.snapshot import caption_snapshot

    snap = caption_snapshot(ws, "captioner")
    proc = load_processor(tiny_qwen_bpe)
    task = CaptionerTask(ws, None, [], proc, small_settings("captioner"))
    batch = task.collate(samples(snap.train[:2], "image"))
    labels, ids = batch["labels"], batch["inputs"]["input_ids"]
    for row in range(2):
        kept = labels[row][labels[row] != -100].tolist()
        text = proc.tokenizer.decode(kept)
        assert text == snap.train[row].target + "<|im_end|>"
        assert ids[row, -len(kept):].tolist() == kept


@pytest.mark.parametrize("per", ["image", "group"])
def test_captioner_learns_and_registers(ws, tiny_qwen_bpe, per):
    s = small_settings("captioner", max_steps=8)
    s.per = per
    r = train("captioner", ws, str(tiny_qwen_bpe), f"cap-{per}", settings=s)
    losses = [h["loss"] for h in r.history]
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    mv = r.model_version
    assert mv.kind == "captioner"
    for key in ("anonymity_pass_rate", "minilm_cosine_to_accepted", "heldout_groups"):
        assert key in mv.metrics
    cap = load_model(ws, mv)
    assert isinstance(cap.caption([__import__("PIL.Image").Image.new("RGB", (56, 56))])[0], str)


def test_captioner_kill9_resume_matches_uninterrupted(ws, tiny_qwen_bpe):
    ref = train("captioner", ws, str(tiny_qwen_bpe), "straight")
    proc = run_killed("captioner", ws.root, str(tiny_qwen_bpe), "killed", kill_at=3)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    resumed = train("captioner", ws, str(tiny_qwen_bpe), "killed")
    assert resumed.resumed_from == 2 and resumed.steps == 8
    assert_same_weights(trainable_weights(ref.run_dir), trainable_weights(resumed.run_dir))


def test_captioner_too_little_data(tmp_path, tiny_qwen_bpe):
    from relcurate.workspace import Workspace

    w = Workspace.init(tmp_path / "small")
    build_training_workspace(w, n_groups=1, per_group=2, labels=False)
    with pytest.raises(TooLittleData, match="captioner training needs at least"):
        train("captioner", w, str(tiny_qwen_bpe), "cap")
    assert list_model_versions(w) == []
