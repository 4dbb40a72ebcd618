"""Assertions shared by the trainer tests (no tests here)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]


def trainable_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    """The final adapter tensors (+ relsim projection) of a finished run."""
    from safetensors.torch import load_file

    final = Path(run_dir) / "final"
    out = dict(load_file(str(final / "adapter_model.safetensors")))
    proj = final / "projection_and_config.pt"
    if proj.exists():
        out.update({f"projection.{k}": v for k, v in torch.load(proj, weights_only=True)["projection"].items()})
    return out


def max_change(a: dict, b: dict) -> float:
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a if k in b)


def assert_same_weights(a: dict, b: dict, atol: float = 5e-5) -> None:
    """Equal within fp tolerance: a resumed run's first steps ran in another process (thread
    counts, kernel choices), so bit-identity is not expected; the caller also checks that
    training moved the weights by far more than `atol`."""
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=atol, rtol=1e-3, msg=lambda m, k=k: f"{k}: {m}")


def run_killed(kind: str, ws_root: Path, base: str, name: str, kill_at: int, timeout: int = 240):
    """Train in a subprocess that SIGKILLs itself after optimizer step `kill_at`."""
    import os

    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "relcurate.testing.training_runs", kind, str(ws_root), base, name,
                           str(kill_at)], env=env, capture_output=True, text=True, timeout=timeout)
