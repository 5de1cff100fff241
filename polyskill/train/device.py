"""Checking a torch device name before anything runs on it: a misspelt name, a GPU this machine lacks or a GPU
index beyond its count is one ConfigError, not a torch traceback halfway through a run."""

from __future__ import annotations

import torch

from ..errors import ConfigError

DEVICE_TYPES = ("cpu", "cuda", "mps")


def check_device(name: object, what: str = "device") -> torch.device:
    """The torch.device `name` names, if this machine has it; else one ConfigError saying why (`what` names the
    setting in the message, e.g. "train.device" or "--device")."""
    if not isinstance(name, (str, torch.device)):
        raise ConfigError(f"{what} must be a device name such as cpu or cuda, got {name!r}")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"{what} {str(name)!r} is not a torch device (try cpu, cuda or cuda:0)") from None
    if device.type not in DEVICE_TYPES:
        raise ConfigError(f"{what} {str(name)!r}: polyskill runs on {', '.join(DEVICE_TYPES)}, not {device.type}")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{what} {str(name)!r}: this machine has no Apple GPU (MPS); use cpu")
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"{what} {str(name)!r}: this machine has no CUDA GPU; use cpu")
        if device.index is not None and device.index >= count:
            raise ConfigError(
                f"{what} {str(name)!r}: this machine has {count} CUDA GPU(s), "
                f"cuda:0{f' to cuda:{count - 1}' if count > 1 else ''}"
            )
    return device
