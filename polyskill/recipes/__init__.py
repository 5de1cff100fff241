"""Recipes: YAML files, one per published configuration, validated into typed sections."""

from __future__ import annotations

from pathlib import Path

import yaml

from ..errors import ConfigError
from .schema import Recipe, apply_overrides, parse_override, recipe_from_dict, recipe_to_dict

RECIPE_DIR = Path(__file__).parent


def available() -> dict[str, str]:
    """Recipe name -> one-line description, for every recipe shipped with polyskill."""
    out = {}
    for path in sorted(RECIPE_DIR.glob("*.yaml")):
        out[path.stem] = (yaml.safe_load(path.read_text()) or {}).get("description", "").strip().split("\n")[0]
    return out


def read_yaml(path: Path) -> dict:
    """A YAML mapping from `path`, or one clear ConfigError naming the file (and the line, if known)."""
    try:
        values = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read recipe {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark else ""
        raise ConfigError(f"recipe {path}{where} is not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"recipe {path} must be a mapping of sections, got {type(values).__name__}")
    return values


def load(name_or_path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """A shipped recipe by name (see `available()`) or a YAML file by path, with key=value overrides applied."""
    path = Path(name_or_path)
    if not path.suffix and (RECIPE_DIR / f"{name_or_path}.yaml").is_file():
        path = RECIPE_DIR / f"{name_or_path}.yaml"
    elif not path.is_file():
        raise ConfigError(f"no recipe named {str(name_or_path)!r}: not a file, and the shipped recipes are "
                          f"{', '.join(available())}")
    values = read_yaml(path)
    values.setdefault("name", path.stem)
    try:
        return recipe_from_dict(apply_overrides(values, overrides or []))
    except ConfigError as exc:
        raise ConfigError(f"recipe {values['name']}: {exc}") from None


__all__ = ["Recipe", "apply_overrides", "available", "load", "parse_override", "read_yaml", "recipe_from_dict",
           "recipe_to_dict"]
