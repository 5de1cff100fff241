"""Range checks for configuration values: one ConfigError naming the key, with NaN, infinity, booleans and
numbers too large for a tensor refused (they pass a plain `value > 0` and fail later inside torch)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..errors import ConfigError

LARGEST_INT = 2**62  # int64 with room to add to it: steps, seeds and counts become tensors and sums


def whole_number(key: str, value: object, low: int = 0, high: int = LARGEST_INT) -> None:
    """`value` must be an int (not a bool) in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(
            f"{key} must be >= {low}, got {value}" if value < low else f"{key} must be <= {high}, got {value}"
        )


def real_number(
    key: str,
    value: object,
    *,
    above: float | None = None,
    at_least: float | None = None,
    below: float | None = None,
    at_most: float | None = None,
    note: str = "",
) -> None:
    """`value` must be a finite int or float within the bounds given (`note` is added to the message, e.g. how to
    turn the setting off)."""
    bounds = [
        f"> {above:g}" if above is not None else "",
        f">= {at_least:g}" if at_least is not None else "",
        f"< {below:g}" if below is not None else "",
        f"<= {at_most:g}" if at_most is not None else "",
    ]
    wanted = f"{key} must be a finite number {' and '.join(b for b in bounds if b)}".rstrip() + note
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{wanted}, got {value!r}")
    number = float(value)
    if (
        not math.isfinite(number)
        or (above is not None and not number > above)
        or (at_least is not None and not number >= at_least)
        or (below is not None and not number < below)
        or (at_most is not None and not number <= at_most)
    ):
        raise ConfigError(f"{wanted}, got {value!r}")


def one_of(key: str, value: object, options: Sequence[str]) -> None:
    """`value` must be one of the strings `options`."""
    if not isinstance(value, str) or value not in options:
        raise ConfigError(f"{key} must be one of {', '.join(options)}, got {value!r}")
