"""A sweep's search space: `--param KEY=SPEC` strings parsed into Optuna distributions, checked on the recipe."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

import yaml

from ..errors import ConfigError

FORMS = (
    "KEY=loguniform(LOW,HIGH), KEY=uniform(LOW,HIGH), KEY=int(LOW,HIGH), KEY=int(LOW,HIGH,log), "
    "KEY=intlog(LOW,HIGH), KEY=choice(A,B,...), KEY=VALUE (fixed)"
)
KINDS = ("loguniform", "uniform", "int", "intlog", "choice")
SCALARS = (type(None), bool, int, float, str)

_SPEC = re.compile(r"^\s*(?P<key>[^=\s]+)\s*=(?P<value>.*)$", re.DOTALL)
_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")  # 1e-3: PyYAML reads it as a string
_CALL = re.compile(r"^\s*(?P<kind>[A-Za-z_]\w*)\s*\((?P<args>.*)\)\s*$", re.DOTALL)


def yaml_value(value: Any) -> str:
    """`value` written so that the recipe's YAML reading gives it back (floats keep a dot: PyYAML reads '1e-05'
    as a string)."""
    if isinstance(value, float) and math.isfinite(value):
        text = repr(value)
        mantissa, e, exponent = text.partition("e")
        return f"{mantissa}.0e{exponent}" if e and "." not in mantissa else text
    return json.dumps(value)


@dataclass(frozen=True)
class Param:
    """One searched recipe key: its distribution kind, bounds (numbers) or choices (any YAML values)."""

    key: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()
    spec: str = ""

    def labels(self) -> list[Any]:
        """The choices as Optuna stores them: scalars as they are, lists and mappings as YAML text."""
        return [c if isinstance(c, SCALARS) else yaml_value(c) for c in self.choices]

    def distribution(self) -> Any:
        """The Optuna distribution of this parameter."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.kind == "choice":
            return CategoricalDistribution(self.labels())
        low, high = self.bounds()
        if self.kind == "int":
            return IntDistribution(int(low), int(high), log=self.log)
        return FloatDistribution(float(low), float(high), log=self.log)

    def suggest(self, trial: Any) -> Any:
        """Ask `trial` for a value of this parameter and return it as the recipe should read it."""
        if self.kind == "choice":
            label = trial.suggest_categorical(self.key, self.labels())
            return self.choices[self.labels().index(label)]
        low, high = self.bounds()
        if self.kind == "int":
            return trial.suggest_int(self.key, int(low), int(high), log=self.log)
        return trial.suggest_float(self.key, float(low), float(high), log=self.log)

    def bounds(self) -> tuple[float | int, float | int]:
        """(LOW, HIGH) of a range parameter."""
        if self.low is None or self.high is None:
            raise ConfigError(f"--param {self.spec!r} is a choice of values, not a range")
        return self.low, self.high

    def override(self, value: Any) -> str:
        """The `key=value` recipe override that sets this parameter to `value`."""
        return f"{self.key}={yaml_value(value)}"

    def extremes(self) -> list[Any]:
        """Values that must all make a valid recipe: both bounds, or every choice."""
        return list(self.choices) if self.kind == "choice" else [self.low, self.high]


def _bad(spec: str, why: str) -> ConfigError:
    return ConfigError(f"bad --param {spec!r}: {why}; accepted forms: {FORMS}")


def _arguments(spec: str, kind: str, text: str) -> list[Any]:
    """The comma-separated arguments of `kind(...)`, read as a YAML flow list (so lists may be choices)."""
    try:
        values = yaml.safe_load(f"[{text}]")
    except yaml.YAMLError:
        raise _bad(spec, f"cannot read the arguments of {kind}(...) as YAML values") from None
    return [float(v) if isinstance(v, str) and _FLOAT.match(v) else v for v in values]


def _number(spec: str, kind: str, value: Any, integer: bool) -> float | int:
    if isinstance(value, bool) or value is None:
        raise _bad(spec, f"{kind} bounds must be numbers, got {value!r}")
    if integer:
        if isinstance(value, int):
            return value
        raise _bad(spec, f"{kind} bounds must be integers, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _bad(spec, f"{kind} bounds must be numbers, got {value!r}") from None
    if not math.isfinite(number):
        raise _bad(spec, f"{kind} bounds must be finite, got {value!r}")
    return number


def _range(spec: str, key: str, kind: str, args: list[Any]) -> Param:
    integer = kind in ("int", "intlog")
    log = kind in ("loguniform", "intlog")
    if kind == "int" and len(args) == 3:
        if args[2] != "log":
            raise _bad(spec, f"the third argument of int(...) can only be log, got {args[2]!r}")
        args, log = args[:2], True
    if len(args) != 2:
        raise _bad(spec, f"{kind}(...) takes two bounds, LOW and HIGH, got {len(args)} argument(s)")
    low, high = (_number(spec, kind, a, integer) for a in args)
    if not low < high:
        raise _bad(spec, f"LOW must be below HIGH, got {low} and {high}")
    if log and low <= 0:
        raise _bad(spec, f"a log scale needs LOW > 0, got {low}")
    return Param(key, "int" if integer else "float", low, high, log, spec=spec)


def parse_param(spec: str) -> Param | tuple[str, str]:
    """A searched `Param`, or (key, override) for a fixed `KEY=VALUE`; any malformed spec is one ConfigError."""
    match = _SPEC.match(spec)
    if not match or any(not part for part in match["key"].split(".")):
        raise _bad(spec, "expected KEY=SPEC with a dotted recipe key, for example train.lr=loguniform(1e-4,1e-2)")
    key, value = match["key"], match["value"].strip()
    call = _CALL.match(value)
    if not call:
        if not value:
            raise _bad(spec, "no value after '='")
        return key, f"{key}={value}"
    kind = call["kind"]
    if kind not in KINDS:
        raise _bad(spec, f"unknown distribution {kind!r}")
    args = _arguments(spec, kind, call["args"])
    if kind == "choice":
        if not args:
            raise _bad(spec, "choice(...) needs at least one value")
        if len({yaml_value(a) for a in args}) != len(args):
            raise _bad(spec, "choice(...) lists a value twice")
        return Param(key, "choice", choices=tuple(args), spec=spec)
    return _range(spec, key, kind, args)


@dataclass(frozen=True)
class Space:
    """What a sweep searches (`params`) and the fixed overrides from `--param KEY=VALUE`."""

    params: tuple[Param, ...]
    fixed: tuple[str, ...]

    def overrides(self, values: dict[str, Any]) -> list[str]:
        """Recipe overrides for one trial: the fixed ones, then the sampled `values` (key -> value)."""
        return list(self.fixed) + [p.override(values[p.key]) for p in self.params]


def parse_space(specs: list[str]) -> Space:
    """Parse every `--param`; a key may be given once, and at least one must be searched."""
    params: list[Param] = []
    fixed: list[str] = []
    seen: set[str] = set()
    for spec in specs:
        parsed = parse_param(spec)
        key = parsed.key if isinstance(parsed, Param) else parsed[0]
        if key in seen:
            raise ConfigError(f"bad --param {spec!r}: {key} is given twice")
        seen.add(key)
        if isinstance(parsed, Param):
            params.append(parsed)
        else:
            fixed.append(parsed[1])
    if not params:
        raise ConfigError(f"a sweep needs at least one searched --param; accepted forms: {FORMS}")
    return Space(tuple(params), tuple(fixed))


def check_space(space: Space, recipe: str, overrides: list[str]) -> None:
    """Load the recipe with every fixed value and every parameter's bounds (or choices), so that a wrong key
    or an impossible value is one ConfigError naming its --param before any trial starts."""
    from ..recipes import load

    load(recipe, overrides)
    for text in space.fixed:
        try:
            load(recipe, [*overrides, text])
        except ConfigError as exc:
            raise ConfigError(f"bad --param {text!r}: {exc}") from None
    base = list(overrides) + list(space.fixed)
    for param in space.params:
        for value in param.extremes():
            try:
                load(recipe, [*base, param.override(value)])
            except ConfigError as exc:
                raise ConfigError(f"bad --param {param.spec!r}: {exc}") from None
