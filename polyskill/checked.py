"""Checks on values read from files anyone may have edited or damaged (a run's files, a recipe): plain data of
bounded size (no cycles, no alias bombs, no nesting that would exhaust the stack) and values that match a
declared type."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import types
import typing
from typing import Any

MAX_DEPTH, MAX_NODES = 64, 200_000


@dataclasses.dataclass(frozen=True)
class AtMost:
    """A bound a number option declares in its annotation, `Annotated[int, AtMost(limit, why)]`, that the recipe
    reader enforces with the option's name in the message (`why` says what a larger value would do)."""

    limit: float
    why: str


class TooComplex(ValueError):
    """A value nested too deeply, too large, or referring to itself."""


def plain(value: Any, max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES) -> Any:
    """A copy of `value` (as YAML or JSON loads it) made of dicts with string keys, lists and scalars; dates become
    ISO strings. Raises TooComplex past `max_depth` levels or `max_nodes` values, which also stops a structure
    that contains itself and YAML aliases that multiply a small file into a huge one."""
    count = 0

    def copy(item: Any, depth: int) -> Any:
        nonlocal count
        count += 1
        if count > max_nodes:
            raise TooComplex(f"it holds more than {max_nodes} values")
        if depth > max_depth:
            raise TooComplex(f"it is nested more than {max_depth} levels deep")
        if isinstance(item, dict):
            return {str(k): copy(v, depth + 1) for k, v in item.items()}
        if isinstance(item, (list, tuple)):
            return [copy(v, depth + 1) for v in item]
        if isinstance(item, (dt.date, dt.datetime)):
            return item.isoformat()
        if item is None or isinstance(item, (bool, int, float, str)):
            return item
        return str(item)

    return copy(value, 0)


def number(value: Any) -> float | None:
    """`value` as a float when it is a real number (not a bool, not an int too large for a float), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return float(value)
    except OverflowError:
        return None


def finite(value: Any) -> float | None:
    """`value` as a finite float, else None."""
    result = number(value)
    return result if result is not None and math.isfinite(result) else None


def conforms(value: Any, hint: Any) -> bool:
    """Whether `value` (read from JSON) matches the type `hint`: int, float (an int is a float), str, bool, None,
    unions, dict[K, V], list[T], tuple[T, ...] and Any; a bool is never an int or a float."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if hint is None or hint is type(None):
        return value is None
    if origin in (typing.Union, types.UnionType):
        return any(conforms(value, h) for h in typing.get_args(hint))
    if hint is float:
        return number(value) is not None
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint in (str, bool):
        return isinstance(value, hint)
    if origin is dict or hint is dict:
        key, item = typing.get_args(hint) or (Any, Any)
        return isinstance(value, dict) and all(conforms(k, key) and conforms(v, item) for k, v in value.items())
    if origin in (list, tuple) or hint in (list, tuple):
        args = typing.get_args(hint)
        item = args[0] if args else Any
        return isinstance(value, (list, tuple)) and all(conforms(v, item) for v in value)
    return False


def well_typed(instance: Any) -> bool:
    """Whether every field of the dataclass `instance` holds a value of its declared type."""
    hints = typing.get_type_hints(type(instance))
    return all(conforms(getattr(instance, f.name), hints.get(f.name, Any)) for f in dataclasses.fields(instance))


__all__ = ["MAX_DEPTH", "MAX_NODES", "TooComplex", "conforms", "finite", "number", "plain", "well_typed"]
