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
        "fairgrad": "fairgrad:FairGrad",
        "upgrad": "upgrad:UPGrad",
        "dualproj": "dualproj:DualProj",
        "config": "config:ConFIG",
        "gradvac": "gradvac:GradVac",
        "sdmgrad": "sdmgrad:SDMGrad",
        "imtl_hybrid": "imtl_hybrid:IMTLHybrid",
        "gls": "gls:GeometricLossStrategy",
        "stch": "stch:SmoothTchebycheff",
        "famo": "famo:FAMO",
        "dbmtl": "dbmtl:DBMTL",
        "moco": "moco:MoCo",
        "graddrop": "graddrop:GradDrop",
        "excessmtl": "excessmtl:ExcessMTL",
        "autol": "autol:AutoLambda",
    },
)
AGGREGATOR_NAMES: tuple[str, ...] = _REGISTRY.names

aggregator_class = _REGISTRY.get  # name -> class; KeyError for an unknown name

__all__ = ["AGGREGATOR_NAMES", "aggregator_class"]
