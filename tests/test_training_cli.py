"""`relcurate train ...`: the clear too-little-data refusal, and a 2-process
`accelerate launch` relsim run on the CPU that registers one version."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

from typer.testing import CliRunner

from relcurate.cli.main import app
from relcurate.models.registry import list_model_versions
from relcurate.testing.trainers import REPO
from relcurate.testing.training import build_training_workspace


def test_train_refuses_with_too_little_data(tmp_path):
    from relcurate.workspace import Workspace

    ws = Workspace.init(tmp_path / "ws")
    build_training_workspace(ws, n_groups=1, per_group=2)
    for kind in ("relsim", "filter", "captioner"):
        res = CliRunner().invoke(app, ["train", kind, "-w", str(ws.root), "--base", "/nonexistent", "--quiet"])
        assert res.exit_code == 2, res.output
        assert "not enough data" in res.output and "needs at least" in res.output
    assert list_model_versions(ws) == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_accelerate_launch_cpu(tmp_path, tiny_qwen_bpe):
    from relcurate.workspace import Workspace

    ws = Workspace.init(tmp_path / "ws")
    build_training_workspace(ws, n_groups=8, labels=False)
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "OMP_NUM_THREADS": "1"}
    # accelerate 1.15: `launch --cpu --num_processes 2` starts ONE process (its simple launcher);
    # the torchrun-based launcher (`--multi_gpu`) on a machine without CUDA gives MULTI_CPU (gloo).
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_ip", "127.0.0.1",
           "--main_process_port", str(_free_port()),
           "-m", "relcurate.cli.main", "train", "relsim", "-w", str(ws.root), "--base", str(tiny_qwen_bpe),
           "--name", "ddp", "--max-steps", "4", "--batch-size", "4", "--checkpoint-every", "2", "--image-size", "56",
           "--lr", "1e-3", "--quiet"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    versions = list_model_versions(ws, kind="relsim")
    assert len(versions) == 1 and versions[0].metrics["steps"] == 4
    assert proc.stdout.count("ddp:1 (relsim) trained, 4 steps") == 1  # printed by the main process only
    run_dir = next((ws.models_dir / "runs").iterdir())
    files = sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*"))
    assert "checkpoints/step-00000002/random_states_1.pkl" in files, files  # each process's RNG
