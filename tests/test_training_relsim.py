"""relsim trainer on tiny Qwen2.5-VL (CPU, a few steps): learning, registration, kill -9 resume,
too little data, and the reference `relsim` 0.1.0 loader reading the trained checkpoint."""
from __future__ import annotations

import signal

import numpy as np
import pytest

from relcurate.models.registry import list_model_versions, load_model
from relcurate.testing.trainers import assert_same_weights, max_change, run_killed, trainable_weights
from relcurate.testing.training import build_training_workspace
from relcurate.testing.training_runs import small_settings, train
from relcurate.training.checkpoints import complete_checkpoints
from relcurate.training.snapshot import TooLittleData
from relcurate.training.trackers import read_metrics


@pytest.fixture
def ws(tmp_path):
    from relcurate.workspace import Workspace

    w = Workspace.init(tmp_path / "ws")
    build_training_workspace(w, n_groups=8, labels=False)
    return w


def test_relsim_learns_and_registers_a_version(ws, tiny_qwen_bpe):
    r = train("relsim", ws, str(tiny_qwen_bpe), "rs", settings=small_settings("relsim", max_steps=10))
    losses = [h["loss"] for h in r.history]
    assert len(losses) == 10 and np.mean(losses[-3:]) < np.mean(losses[:3])
    mv = r.model_version
    assert mv.kind == "relsim" and mv.version == 1 and mv.adapter_path.endswith("final")
    for key in ("same_group_recall@1", "same_group_recall@5", "same_caption_recall@1", "heldout_in_batch_accuracy",
                "temperature"):
        assert key in mv.metrics
    assert mv.trained_on["sha256"] and mv.trained_on["heldout_images"]
    assert not set(mv.trained_on["heldout_images"]) & set(mv.trained_on["train_images"])
    assert mv.config["training"]["train_query_token"] is True
    assert [m["step"] for m in read_metrics(r.run_dir)][-1] == 10
    # usable at once by every path that loads registered models
    emb = load_model(ws, mv).embed([__import__("PIL.Image").Image.new("RGB", (56, 56), "red")])
    assert emb.shape == (1, 384)
    # the same command again returns the registered version; it does not train or register twice
    again = train("relsim", ws, str(tiny_qwen_bpe), "rs", settings=small_settings("relsim", max_steps=10))
    assert again.reused and again.model_version.id == mv.id
    assert len(list_model_versions(ws, kind="relsim")) == 1


def test_relsim_kill9_resume_matches_uninterrupted(ws, tiny_qwen_bpe):
    ref = train("relsim", ws, str(tiny_qwen_bpe), "straight")
    proc = run_killed("relsim", ws.root, str(tiny_qwen_bpe), "killed", kill_at=5)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    run_dirs = [p for p in (ws.models_dir / "runs").iterdir() if p.name.startswith("killed-")]
    assert len(run_dirs) == 1 and [c.name for c in complete_checkpoints(run_dirs[0])][-1] == "step-00000004"
    resumed = train("relsim", ws, str(tiny_qwen_bpe), "killed")
    assert resumed.resumed_from == 4 and resumed.steps == 8
    final = trainable_weights(resumed.run_dir)
    assert_same_weights(trainable_weights(ref.run_dir), final)
    at_zero = trainable_weights_at_init(tiny_qwen_bpe)
    assert max_change(final, at_zero) > 20 * 5e-5  # the tolerance is far below what training changed


def trainable_weights_at_init(base):
    """LoRA B and the query delta start at zero; A and the projection are seeded: compare against
    a fresh model with the run's seed."""
    import torch

    from relcurate.models.relsim_embedder import RelsimEmbedder

    torch.manual_seed(7)
    e = RelsimEmbedder.new(base, image_size=56, seed=7)
    out = {k.replace(".default", ""): v.detach() for k, v in e.model.state_dict().items()
           if "lora_" in k or "trainable_tokens" in k}
    out.update({f"projection.{k}": v for k, v in e.projection.state_dict().items()})
    return out


def test_relsim_too_little_data_registers_nothing(tmp_path, tiny_qwen_bpe):
    from relcurate.workspace import Workspace

    w = Workspace.init(tmp_path / "small")
    build_training_workspace(w, n_groups=1, per_group=3, labels=False)
    with pytest.raises(TooLittleData, match="relsim training needs at least"):
        train("relsim", w, str(tiny_qwen_bpe), "rs")
    assert list_model_versions(w) == []


def test_reference_loader_reads_a_trained_checkpoint(ws, tiny_qwen_bpe, tmp_path, monkeypatch):
    """The trained relsim-0.1 checkpoint loads in the unmodified reference package and embeds the
    same as our loader (the reference is patched only as in test_models_relsim_interop)."""
    relsim = pytest.importorskip("relsim")
    from test_models_relsim_interop import _QueryWrapper, _reference_base, _reference_embed, _reference_processor

    rs = pytest.importorskip("relsim.relsim_score")

    class BaseShim:
        @staticmethod
        def from_pretrained(name, **kwargs):
            return _reference_base(tiny_qwen_bpe)

    class ProcessorShim:
        @staticmethod
        def from_pretrained(path, **kwargs):
            return _reference_processor(path)

    monkeypatch.setattr(rs, "Qwen2_5_VLForConditionalGeneration", BaseShim)
    monkeypatch.setattr(rs, "AutoProcessor", ProcessorShim)
    monkeypatch.setattr(rs, "QwenWithQueryToken", _QueryWrapper)
    r = train("relsim", ws, str(tiny_qwen_bpe), "interop", settings=small_settings("relsim", max_steps=3))
    model, preprocess = relsim.relsim(pretrained=True, checkpoint_dir=str(r.run_dir / "final"))
    from relcurate.testing.models import noise_images

    images = noise_images(3, seed=3, sizes=[(56, 56)] * 3)
    ours = load_model(ws, r.model_version).embed(images)
    np.testing.assert_allclose(ours, _reference_embed(model, [preprocess(im) for im in images]), atol=1e-5)


def test_relsim_gradient_accumulation_and_checkpointing_options(ws, tiny_qwen_bpe):
    s = small_settings("relsim", max_steps=2, grad_accum=2, gradient_checkpointing=True, batch_size=4)
    s.symmetric, s.learnable_temperature = True, True
    r = train("relsim", ws, str(tiny_qwen_bpe), "accum", settings=s)
    assert r.steps == 2 and [h["step"] for h in r.history] == [1, 2]
    assert r.history[-1]["samples_per_s"] > 0
    assert r.model_version.config["training"]["loop"]["grad_accum"] == 2
