"""Filter SFT on tiny Qwen2.5-VL: learning, metrics + threshold in the version, kill -9 resume."""
from __future__ import annotations

import signal

import numpy as np
import pytest

from relcurate.models.registry import list_model_versions, load_model
from relcurate.testing.trainers import assert_same_weights, run_killed, trainable_weights
from relcurate.testing.training import build_training_workspace
from relcurate.testing.training_runs import small_settings, train
from relcurate.training.filter_metrics import choose_threshold, expected_calibration_error
from relcurate.training.snapshot import TooLittleData


@pytest.fixture
def ws(tmp_path):
    from relcurate.workspace import Workspace

    w = Workspace.init(tmp_path / "ws")
    build_training_workspace(w, n_groups=8, yes_groups=3, pool=4)
    return w


def test_filter_learns_and_registers_with_threshold(ws, tiny_qwen_bpe):
    r = train("filter", ws, str(tiny_qwen_bpe), "flt", settings=small_settings("filter", max_steps=10, lr=3e-3))
    mv = r.model_version
    # the class-weighted loss on the fixed training set drops (per-batch losses of 8 are too noisy)
    from relcurate.models.qwen_filter import QwenFilter
    from relcurate.training.common import load_images
    from relcurate.training.snapshot import filter_snapshot

    train_items = filter_snapshot(ws).train
    y = np.array([i.target == "yes" for i in train_items], dtype=float)
    w = np.where(y == 1, len(y) / (2 * y.sum()), len(y) / (2 * (len(y) - y.sum())))
    images = load_images(ws, train_items)

    def weighted_ce(p):
        p = np.clip(p, 1e-6, 1 - 1e-6)
        return float(np.sum(-w * (y * np.log(p) + (1 - y) * np.log(1 - p))) / w.sum())

    before = weighted_ce(QwenFilter(tiny_qwen_bpe, max_pixels=56 * 56).predict_proba(images))
    after = weighted_ce(load_model(ws, mv).predict_proba(images))
    assert after < before
    assert mv.kind == "filter"
    for key in ("accuracy", "f1_yes", "kappa", "ece", "threshold", "keep_rate", "precision_at_threshold"):
        assert key in mv.metrics, key
    assert mv.config["threshold"] == mv.metrics["threshold"] and mv.metrics["pool_scored"] == 4
    assert mv.trained_on["used"]["labelled_images"]
    probs = load_model(ws, mv).predict_proba([__import__("PIL.Image").Image.new("RGB", (56, 56))])
    assert probs.shape == (1,) and 0 <= probs[0] <= 1


def test_filter_kill9_resume_matches_uninterrupted(ws, tiny_qwen_bpe):
    ref = train("filter", ws, str(tiny_qwen_bpe), "straight")
    proc = run_killed("filter", ws.root, str(tiny_qwen_bpe), "killed", kill_at=3)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    resumed = train("filter", ws, str(tiny_qwen_bpe), "killed")
    assert resumed.resumed_from == 2 and resumed.steps == 8
    assert_same_weights(trainable_weights(ref.run_dir), trainable_weights(resumed.run_dir))


def test_filter_too_little_data(tmp_path, tiny_qwen_bpe):
    from relcurate.workspace import Workspace

    w = Workspace.init(tmp_path / "small")
    build_training_workspace(w, n_groups=3, per_group=2, yes_groups=0)
    with pytest.raises(TooLittleData, match="images with a 'yes' consensus; the store has 0"):
        train("filter", w, str(tiny_qwen_bpe), "flt")
    assert list_model_versions(w) == []


def test_threshold_and_ece():
    y = np.array([1, 1, 0, 0, 0, 0])
    p = np.array([0.9, 0.6, 0.7, 0.2, 0.1, 0.3])
    t = choose_threshold(y, p, target="precision", value=1.0)
    assert t["threshold"] == pytest.approx(0.9) and t["reached"]
    r = choose_threshold(y, p, target="recall", value=1.0)
    assert r["threshold"] == pytest.approx(0.6) and r["recall_at_threshold"] == 1.0
    assert expected_calibration_error(np.array([1, 0]), np.array([1.0, 0.0])) == 0.0
