"""Name -> class tables whose modules are imported on first use (one module per method stays cheap to add)."""

from __future__ import annotations

import importlib


class LazyRegistry:
    """Classes of a package by name, each given as "module:Class" relative to `package`."""

    def __init__(self, package: str, where: dict[str, str]) -> None:
        self.package, self.where = package, dict(where)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.where)

    def get(self, name: str) -> type:
        """The class registered as `name`; KeyError for an unknown name."""
        if name not in self.where:
            raise KeyError(name)
        module, cls = self.where[name].split(":")
        return getattr(importlib.import_module(f".{module}", self.package), cls)
