"""Gradient aggregators and loss weightings, one module each; `AGGREGATORS[name]` builds one by name."""

from __future__ import annotations

import importlib

from ..base import Aggregator

_WHERE = {
    "ew": "ew:EqualWeighting",
    "uw": "uw:UncertaintyWeighting",
    "gradnorm": "gradnorm:GradNorm",
    "dwa": "dwa:DynamicWeightAverage",
    "rlw": "rlw:RandomLossWeighting",
    "mgda": "mgda:MGDA",
    "pcgrad": "pcgrad:PCGrad",
    "cagrad": "cagrad:CAGrad",
    "imtl": "imtl:IMTLG",
    "nash": "nash:NashMTL",
    "aligned": "aligned:AlignedMTL",
}


def aggregator_class(name: str) -> type[Aggregator]:
    """The aggregator class registered as `name` (see `AGGREGATOR_NAMES`)."""
    if name not in _WHERE:
        raise KeyError(name)
    module, cls = _WHERE[name].split(":")
    return getattr(importlib.import_module(f".{module}", __name__), cls)


AGGREGATOR_NAMES: tuple[str, ...] = tuple(_WHERE)

__all__ = ["AGGREGATOR_NAMES", "aggregator_class"]
