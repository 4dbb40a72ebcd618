"""Where and in what precision the Qwen backends run.

Default: CUDA + bfloat16 when a GPU is visible (the 7B in bf16 needs ~16 GB), otherwise CPU +
float32 (bf16 matmuls on most CPUs are slower than fp32 and lose precision). Every backend takes
`device=`, `dtype=` and `device_map=` so callers can override each one.

Under `accelerate launch` each process must use its own GPU, so the default CUDA device follows
`LOCAL_RANK`; a model too large for one GPU can still be split with `device_map="auto"`.
"""
from __future__ import annotations

import os
from typing import Any

import torch

DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """`None`/"auto" -> cuda:LOCAL_RANK if CUDA is available, else cpu."""
    if device is not None and str(device) != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", torch.cuda.current_device())))
    return torch.device("cpu")


def resolve_dtype(dtype: str | torch.dtype | None = None, device: torch.device | None = None) -> torch.dtype:
    """`None`/"auto" -> bfloat16 on CUDA, float32 elsewhere; strings like "bf16" are accepted."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is not None and dtype != "auto":
        try:
            return DTYPES[dtype]
        except KeyError:
            raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(DTYPES)}") from None
    device = device or resolve_device()
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def from_pretrained_kwargs(
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    device_map: str | dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for `from_pretrained`: weights land directly on the target device.

    With no explicit `device_map` the whole model goes to the one resolved device, which is what a
    data-parallel `accelerate launch` wants (one full copy per process).
    """
    dev = resolve_device(device)
    kwargs: dict[str, Any] = {"dtype": resolve_dtype(dtype, dev)}
    kwargs["device_map"] = device_map if device_map is not None else {"": str(dev)}
    return kwargs
