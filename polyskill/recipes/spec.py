"""Typed recipe sections, validated on load: a wrong key, type or value is one clear ConfigError, never a
traceback. The machinery every kind's sections use: dataclasses checked field by field, constructor options
checked against a class's signature, and `--set key=value` overrides applied to the raw mapping."""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import inspect
import math
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import yaml

from ..checked import AtMost
from ..errors import ConfigError

MAX_INT = 2**62  # no count, size or seed of a recipe is larger; torch's shapes overflow past 2**63


class OutOfRange(ConfigError):
    """A value of the right type beyond its option's bounds (the reason to give, whatever else the type allows)."""


@contextlib.contextmanager
def building(what: str) -> Iterator[None]:
    """Turn a failure to construct something from recipe values (a network, a learner, an aggregator: a
    negative or enormous size, an option its constructor refuses) into one ConfigError naming `what`."""
    try:
        yield
    except ConfigError:
        raise
    except (ValueError, TypeError, RuntimeError, OverflowError, MemoryError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ConfigError(f"{what}: cannot be built from these values ({first})") from None


def at_least(spec: Any, **minimums: int) -> None:
    """Raise ValueError('FIELD must be >= N, got V') for the first field (or list element) below its minimum."""
    for name, low in minimums.items():
        value = getattr(spec, name)
        for item in value if isinstance(value, list) else [value]:
            if item is not None and item < low:
                raise ValueError(f"{name} must be >= {low}, got {item}")


def _type_name(tp: Any) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _type_name(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _type_name(a) for a in typing.get_args(tp))
    if origin is dict:
        return "a mapping"
    if origin in (list, Sequence):
        return f"a list of {_type_name(typing.get_args(tp)[0]).split(' ', 1)[-1]}s"
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against annotation `tp`; ints are accepted for floats, and '1e-3' strings too."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        base, *extras = typing.get_args(tp)
        value = _coerce(value, base, key)
        for bound in extras:
            if isinstance(bound, AtMost) and value is not None and value > bound.limit:
                raise OutOfRange(f"{key} must be at most {bound.limit:,} ({bound.why}), got {_short(value)}")
        return value
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(tp):
            if option is type(None) and value is None:
                return None
            if option is not type(None):
                try:
                    return _coerce(value, option, key)
                except OutOfRange:
                    raise
                except ConfigError:
                    pass
    elif origin in (list, Sequence):  # a sequence option is given as a list
        if isinstance(value, list):
            return [_coerce(v, typing.get_args(tp)[0], f"{key}[{i}]") for i, v in enumerate(value)]
        if not isinstance(value, (dict, bool)) and value is not None:
            return [_coerce(value, typing.get_args(tp)[0], key)]
    elif tp is bool and isinstance(value, bool):
        return value
    elif tp is int and isinstance(value, int) and not isinstance(value, bool):
        if abs(value) >= MAX_INT:
            raise OutOfRange(f"{key} must be an integer below 2**62 in size, got {_short(value)}")
        return value
    elif tp is float and not isinstance(value, bool):
        number = None
        if isinstance(value, (int, float)):
            number = float(value)
        elif isinstance(value, str):
            with contextlib.suppress(ValueError):
                number = float(value)
        if number is not None:
            if not math.isfinite(number):
                raise ConfigError(f"{key} must be a finite number, got {value!r}")
            return number
    elif tp is str and isinstance(value, str):
        return value
    elif origin is dict and isinstance(value, dict):
        return dict(value)
    raise ConfigError(f"{key} must be {_type_name(tp)}, got {_short(value)}")


def _unknown(key: str, known: list[str]) -> ConfigError:
    prefix, _, last = key.rpartition(".")
    close = difflib.get_close_matches(last, known, n=1)
    hint = (
        f" (did you mean '{prefix + '.' if prefix else ''}{close[0]}'?)"
        if close
        else f"; known keys here: {', '.join(known)}"
    )
    return ConfigError(f"unknown key '{key}'{hint}")


def choice(default: Any, choices: tuple[str, ...], doc: str = "") -> Any:
    """A dataclass field whose value must be one of `choices` (checked by `build`)."""
    return dataclasses.field(default=default, metadata={"choices": choices, "doc": doc})


def parsed(factory: Any, parse: Any) -> Any:
    """A dataclass field whose raw value is validated by `parse(value, key)` instead of by its annotation."""
    return dataclasses.field(default_factory=factory, metadata={"parse": parse})


def build(cls: type, values: Any, prefix: str = "") -> Any:
    """Validate the mapping `values` into the dataclass `cls`: every key must be a field (else an error naming
    the key, with the closest field), every value of the field's type (nested dataclasses recursively)."""
    if not isinstance(values, dict):
        raise ConfigError(
            f"{prefix.rstrip('.') or 'the recipe'} must be a mapping of keys to values, got {_short(values)}"
        )
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in values.items():
        full = f"{prefix}{key}"
        if key not in fields:
            raise _unknown(full, list(fields))
        tp, meta = hints[key], fields[key].metadata
        if "parse" in meta:
            kwargs[key] = meta["parse"](value, full)
        elif isinstance(tp, type) and dataclasses.is_dataclass(tp) and value is not None:
            kwargs[key] = build(tp, value, f"{full}.")
        else:
            kwargs[key] = _coerce(value, tp, full)
        if "choices" in meta and kwargs[key] not in meta["choices"]:
            raise ConfigError(f"{full} must be one of {', '.join(meta['choices'])}, got {_short(kwargs[key])}")
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{prefix}{exc}" if prefix and not str(exc).startswith(prefix) else str(exc)) from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{prefix}{exc}" if prefix else f"recipe: {exc}") from None


def _short(value: Any, limit: int = 80) -> str:
    """repr(value), cut to `limit` characters (a message quotes a value, never a whole document)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def options(cls: type, values: Any, prefix: str, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Keyword options for `cls`'s constructor: every key must be one of its parameters (but `skip`), every
    value of its annotated type."""
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix} must be a mapping of option names to values, got {_short(values)}")
    params = inspect.signature(cls).parameters
    options = sorted(k for k, p in params.items() if k not in skip and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))
    hints = typing.get_type_hints(cls.__init__, include_extras=True)  # type: ignore[misc]
    out = {}
    for key, value in values.items():
        if key not in options:
            raise _unknown(f"{prefix}.{key}", options or ["(none: it takes no options)"])
        out[key] = _coerce(value, hints[key], f"{prefix}.{key}") if key in hints else value
    return out


def parse_named(
    values: Any,
    key: str,
    registry: Mapping[str, type],
    refuse: Callable[[Any], str | None] = lambda _: None,
    skip: tuple[str, ...] = (),
) -> dict[str, Any]:
    """A section that names a class of `registry` (one `refuse` does not turn down) and gives its constructor
    options (`algo:`): {"name": ..., **options}, each option checked against the constructor but `skip`."""
    names = ", ".join(n for n, cls in registry.items() if refuse(cls) is None)
    if not isinstance(values, dict) or "name" not in values:
        raise ConfigError(f"{key} must be a mapping with a 'name' ({names}), got {_short(values)}")
    name = values["name"]
    if not isinstance(name, str) or name not in registry:
        raise ConfigError(f"{key}.name must be one of {names}, got {_short(name)}")
    cls = registry[name]
    refusal = refuse(cls)
    if refusal:
        raise ConfigError(f"{key}.name {name}: {refusal}; learners that can: {names}")
    return {"name": name, **options(cls, {k: v for k, v in values.items() if k != "name"}, key, skip=skip)}


def parse_override(text: str) -> tuple[list[str], Any]:
    """'train.steps=500' -> (['train', 'steps'], 500); the value is read as YAML (numbers, lists, null)."""
    if "=" not in text:
        raise ConfigError(f"bad --set {text!r}: expected key=value, for example train.steps=500")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"bad --set {text!r}: the key must be dotted names, for example train.steps")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_overrides(values: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set each key=value override into a copy of the raw recipe mapping (validation happens afterwards)."""
    result = yaml.safe_load(yaml.safe_dump(values)) or {}
    for text in overrides:
        path, value = parse_override(text)
        node = result
        for depth, part in enumerate(path[:-1], start=1):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"bad --set {text!r}: {'.'.join(path[:depth])} is not a section")
            node = child
        node[path[-1]] = value
    return result
