"""Multi-task architectures, one module each; `architecture_class(name)` finds one by name."""

from __future__ import annotations

from ..registry import LazyRegistry

_REGISTRY = LazyRegistry(
    __name__,
    {
        "hps": "hard_sharing:HardSharing",
        "single": "single_task:SingleTask",
        "soft": "soft_sharing:SoftSharing",
        "cross_stitch": "cross_stitch:CrossStitch",
        "sluice": "sluice:Sluice",
        "mmoe": "mmoe:MMoE",
        "mtan": "mtan:MTAN",
        "cgc": "cgc:CGC",
        "ple": "ple:PLE",
        "dselect_k": "dselect_k:DSelectK",
        "ltb": "ltb:LTB",
    },
)
ARCHITECTURE_NAMES: tuple[str, ...] = _REGISTRY.names

architecture_class = _REGISTRY.get  # name -> class; KeyError for an unknown name

__all__ = ["ARCHITECTURE_NAMES", "architecture_class"]
