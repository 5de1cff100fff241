"""Multi-task architectures, one module each; `architecture_class(name)` finds one by name."""

from __future__ import annotations

import importlib

from ..base import MultiTaskModel

_WHERE = {
    "hps": "hard_sharing:HardSharing",
    "single": "single_task:SingleTask",
    "soft": "soft_sharing:SoftSharing",
    "cross_stitch": "cross_stitch:CrossStitch",
    "sluice": "sluice:Sluice",
    "mmoe": "mmoe:MMoE",
    "mtan": "mtan:MTAN",
}


def architecture_class(name: str) -> type[MultiTaskModel]:
    """The architecture class registered as `name` (see `ARCHITECTURE_NAMES`)."""
    if name not in _WHERE:
        raise KeyError(name)
    module, cls = _WHERE[name].split(":")
    return getattr(importlib.import_module(f".{module}", __name__), cls)


ARCHITECTURE_NAMES: tuple[str, ...] = tuple(_WHERE)

__all__ = ["ARCHITECTURE_NAMES", "architecture_class"]
