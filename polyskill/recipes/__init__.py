"""Recipes: YAML files, one per published configuration. A recipe is a tagged union on its first key, `kind:`
(`fewshot`, `regression`, `multitask`): the kind decides which sections exist and validates them."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from ..checked import TooComplex, plain
from ..errors import ConfigError
from .kinds import KINDS, EvalRequest, Kind, Recipe, kind_named, kind_of
from .legacy import guess_kind, upgrade
from .spec import apply_overrides, parse_override

RECIPE_DIR = Path(__file__).parent


def available() -> dict[str, str]:
    """Recipe name -> one-line description, for every recipe shipped with polyskill."""
    out = {}
    for path in sorted(RECIPE_DIR.glob("*.yaml")):
        out[path.stem] = (yaml.safe_load(path.read_text()) or {}).get("description", "").strip().split("\n")[0]
    return out


def read_yaml(path: Path, what: str = "recipe") -> dict[str, Any]:
    """A YAML mapping from `path`, or one clear ConfigError naming the file (and the line, if known)."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {path} is not UTF-8 text (byte {exc.start} is not valid UTF-8)") from None
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{what} {path}{where} is not valid YAML: {getattr(exc, 'problem', exc)}") from None
    except RecursionError:
        raise ConfigError(f"{what} {path} is nested too deeply to be a recipe") from None
    try:
        values = plain(values)
    except TooComplex as exc:
        raise ConfigError(f"{what} {path} cannot be a recipe: {exc}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{what} {path} must be a mapping of sections, got {type(values).__name__}")
    return values


def recipe_from_dict(values: dict[str, Any]) -> Recipe:
    """Validate a recipe mapping into its kind's recipe; the kind must be its first key."""
    if not isinstance(values, dict):
        raise ConfigError(f"a recipe must be a mapping of sections, got {type(values).__name__}")
    if "kind" not in values:
        raise ConfigError(
            f"the recipe has no 'kind:'; add `kind: {guess_kind(values)}` as its first line (kinds: {', '.join(KINDS)})"
        )
    try:
        return kind_named(values["kind"]).load(values)
    except RecursionError:
        raise ConfigError("the recipe is nested too deeply") from None


def recipe_to_dict(recipe: Recipe) -> dict[str, Any]:
    """The recipe as a plain mapping, `kind` first, with only the keys its kind reads (what config.yaml holds)."""
    values = dataclasses.asdict(recipe)
    unused = kind_of(recipe).unused_train_keys
    values["train"] = {k: v for k, v in values["train"].items() if k not in unused}
    return values


def load(name_or_path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """A shipped recipe by name (see `available()`) or a YAML file by path, with key=value overrides applied."""
    path = Path(name_or_path)
    if not path.suffix and (RECIPE_DIR / f"{name_or_path}.yaml").is_file():
        path = RECIPE_DIR / f"{name_or_path}.yaml"
    elif not path.is_file():
        raise ConfigError(
            f"no recipe named {str(name_or_path)!r}: not a file, and the shipped recipes are {', '.join(available())}"
        )
    values = read_yaml(path)
    values.setdefault("name", path.stem)
    name = values["name"] if isinstance(values["name"], str) else path.stem
    try:
        return recipe_from_dict(apply_overrides(values, overrides or []))
    except ConfigError as exc:
        raise ConfigError(f"recipe {name}: {exc}") from None


def load_config(values: dict[str, Any]) -> Recipe:
    """A run's recorded config.yaml mapping as its recipe (runs written before `kind:` existed included)."""
    return recipe_from_dict(values if "kind" in values else upgrade(values))


__all__ = [
    "KINDS",
    "EvalRequest",
    "Kind",
    "Recipe",
    "apply_overrides",
    "available",
    "kind_named",
    "kind_of",
    "load",
    "load_config",
    "parse_override",
    "read_yaml",
    "recipe_from_dict",
    "recipe_to_dict",
]
