"""The problem kinds, one module each; a recipe's first key `kind:` picks one. Adding a kind is one module
(a `Kind` subclass with its recipe dataclass) and one line here."""

from __future__ import annotations

from typing import Any

from ...errors import ConfigError
from .base import EvalRequest, Kind, Recipe, Setup
from .fewshot import FewShotKind
from .multitask import MultiTaskKind
from .regression import RegressionKind
from .rl import RLKind

KINDS: dict[str, Kind] = {kind.name: kind for kind in (FewShotKind(), RegressionKind(), MultiTaskKind(), RLKind())}


def kind_named(name: Any) -> Kind:
    """The kind called `name`, or one ConfigError listing the kinds."""
    if not isinstance(name, str) or name not in KINDS:
        raise ConfigError(f"kind must be one of {', '.join(KINDS)}, got {str(name)[:80]!r}")
    return KINDS[name]


def kind_of(recipe: Recipe) -> Kind:
    """The kind a loaded recipe belongs to."""
    return kind_named(recipe.kind)


__all__ = ["KINDS", "EvalRequest", "Kind", "Recipe", "Setup", "kind_named", "kind_of"]
