"""Trackers chosen by name go through accelerate's tracker API: a short relsim run on the tiny model
with TensorBoard (event files read back with tensorboard's EventAccumulator) and with W&B in
offline mode (the run's transaction log read back; no network, and the API key never written)."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from relcurate.testing.models import tiny_qwen_path
from relcurate.testing.training import build_training_workspace
from relcurate.testing.training_runs import small_settings, train
from relcurate.training.trackers import read_metrics

STEPS = 3


@pytest.fixture
def ws(tmp_path):
    from relcurate.workspace import Workspace

    w = Workspace.init(tmp_path / "ws")
    build_training_workspace(w, n_groups=8, labels=False)
    return w


def _train(ws, trackers: tuple[str, ...], name: str):
    s = small_settings("relsim", max_steps=STEPS, checkpoint_every=10**6, trackers=trackers)
    return train("relsim", ws, str(tiny_qwen_path("bpe")), name, settings=s)


def test_tensorboard_tracker_writes_the_loss(ws):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    r = _train(ws, ("local", "tensorboard"), "tb")
    logdir = r.run_dir / "logs" / "tb"  # accelerate: logging_dir / run name
    assert list(logdir.glob("events.out.tfevents.*"))
    events = EventAccumulator(str(logdir))
    events.Reload()
    assert {"loss", "lr", "samples_per_s", "temperature"} <= set(events.Tags()["scalars"])
    loss = events.Scalars("loss")
    assert [e.step for e in loss] == [h["step"] for h in r.history] == list(range(1, STEPS + 1))
    assert [e.value for e in loss] == pytest.approx([h["loss"] for h in r.history], rel=1e-6)
    assert [m["step"] for m in read_metrics(r.run_dir)] == list(range(1, STEPS + 1))  # local alongside


def _wandb_records(path: Path):
    """The records of a W&B transaction log (`run-*.wandb`): a LevelDB-style log of 32 KiB blocks
    after a 7-byte header, each record chunk = crc32 (4) + length (2) + type (1: full, 2: first,
    3: middle, 4: last), the payload a `wandb_internal_pb2.Record`. wandb 0.30 no longer ships a
    Python reader (its Go core writes the file)."""
    from wandb.proto import wandb_internal_pb2

    data, block, head = path.read_bytes(), 32768, 7
    assert data[:4] == b":W&B"
    pos, parts = head, b""
    while pos + head <= len(data):
        if block - pos % block < head:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + head])
        parts += data[pos + head:pos + head + length]
        pos += head + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(parts)
            parts = b""
            yield record


def test_wandb_offline_run_has_the_metrics_and_no_api_key(ws, tmp_path, monkeypatch, capfd):
    secret = "local-" + "0123456789abcdef" * 2 + "feedc0de"  # shaped like a key, never valid
    wandb_dir = tmp_path / "wandb-dir"
    wandb_dir.mkdir()
    for k, v in {"WANDB_MODE": "offline", "WANDB_DIR": str(wandb_dir), "WANDB_API_KEY": secret,
                 "WANDB_CONFIG_DIR": str(tmp_path / "wandb-config"), "WANDB_CACHE_DIR": str(tmp_path / "wandb-cache"),
                 "WANDB_DATA_DIR": str(tmp_path / "wandb-data")}.items():
        monkeypatch.setenv(k, v)
    try:
        r = _train(ws, ("local", "wandb"), "wb")
    finally:
        import wandb

        wandb.teardown()  # stop the wandb-core service this test started
    runs = list((wandb_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1, runs
    records = list(_wandb_records(runs[0]))
    kinds = [rec.WhichOneof("record_type") for rec in records]
    assert "exit" in kinds  # the run was finished (accelerator.end_training), not left open
    assert [rec.run.project for rec in records if rec.WhichOneof("record_type") == "run"] == ["wb"]
    config = {i.key or "/".join(i.nested_key): json.loads(i.value_json)
              for rec in records if rec.WhichOneof("record_type") == "config" for i in rec.config.update}
    assert config["kind"] == "relsim" and config["settings.loop.max_steps"] == STEPS
    history = [{i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.history.item}
               for rec in records if rec.WhichOneof("record_type") == "history"]
    assert [h["_step"] for h in history] == list(range(1, STEPS + 1))
    assert [h["loss"] for h in history] == pytest.approx([h["loss"] for h in r.history], rel=1e-6)
    assert all({"lr", "samples_per_s", "temperature"} <= set(h) for h in history)
    out, err = capfd.readouterr()
    assert secret not in out + err
    written = [p for root in (wandb_dir, tmp_path / "wandb-config", tmp_path / "wandb-data", r.run_dir)
               if root.exists() for p in root.rglob("*") if p.is_file()]
    assert written and not [p for p in written if secret.encode() in p.read_bytes()]
