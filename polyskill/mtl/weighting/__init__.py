"""Gradient aggregators and loss weightings, one module each; `aggregator_class(name)` finds one by name."""

from __future__ import annotations

from ..registry import LazyRegistry

_REGISTRY = LazyRegistry(
    __name__,
    {
        "ew": "ew:EqualWeighting",
        "uw": "uw:UncertaintyWeighting",
        "gradnorm": "gradnorm:GradNorm",
        "dwa": "dwa:DynamicWeightAverage",
        "rlw": "rlw:RandomLossWeighting",
        "mgda": "mgda:MGDA",
        "mgda_normalized_hull": "mgda_normalized_hull:MGDANormalizedHull",
        "pcgrad": "pcgrad:PCGrad",
        "cagrad": "cagrad:CAGrad",
        "imtl": "imtl:IMTLG",
        "nash": "nash:NashMTL",
        "aligned": "aligned:AlignedMTL",
    },
)
AGGREGATOR_NAMES: tuple[str, ...] = _REGISTRY.names

aggregator_class = _REGISTRY.get  # name -> class; KeyError for an unknown name

__all__ = ["AGGREGATOR_NAMES", "aggregator_class"]
