"""Mixed precision as a context: fp32, bf16, or auto (bf16 where the processor computes it natively); and the
channels_last weight layout of convolutional networks."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TypeVar

import torch
from torch import nn

PRECISIONS = ("fp32", "bf16", "auto")

M = TypeVar("M", bound=nn.Module)


def native_bf16(device: torch.device | str = "cpu") -> bool:
    """True when bf16 matrix and convolution kernels run natively (CUDA with bf16, or AVX512-BF16/AMX CPUs)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def resolve(precision: str, device: torch.device | str = "cpu") -> str:
    """'auto' becomes 'bf16' or 'fp32' for this device; other values pass through."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


@contextlib.contextmanager
def inference(precision: str, device: torch.device | str = "cpu") -> Iterator[None]:
    """inference_mode plus `autocast(precision)`: for evaluation passes."""
    with torch.inference_mode(), autocast(precision, device):
        yield


def autocast(precision: str, device: torch.device | str = "cpu") -> contextlib.AbstractContextManager[None]:
    """A context that runs the forward pass in `precision` (losses and distances stay fp32 by design)."""
    device = torch.device(device)
    if resolve(precision, device) == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def channels_last(module: M) -> M:
    """`module` with its 4-d weights in the channels_last layout, which makes its convolutions run channels_last
    (oneDNN's and cuDNN's faster path) whatever the input's layout; forward code need not know, so it also runs
    under `torch.func.vmap`."""
    return module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # missing from torch's stubs
