"""What every evaluation returns: a result with one headline value, its direction and its 95% interval.

Each kind of result (few-shot accuracy, regression MSE, a meta-learner's per-task fit, multi-task metrics) is one
frozen dataclass that subclasses `Result` and names itself with `protocol`; subclassing registers it, so a
summary.json entry is read back into its type by `result_from_dict` without anyone testing field names.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

from torch import Tensor

from ..checked import well_typed

RESULT_TYPES: dict[str, type[Result]] = {}


class Result:
    """A measured protocol: `value` of `metric` (higher or lower is better), with `ci95` when it has one.

    Subclasses are frozen dataclasses; the fields that are not measured values identify the protocol (`key`),
    so that evaluating the same protocol again replaces its old entry in summary.json.
    """

    protocol: ClassVar[str] = ""
    metric: ClassVar[str] = ""
    higher_is_better: ClassVar[bool] = True
    measured: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.protocol:
            RESULT_TYPES[cls.protocol] = cls

    @property
    def value(self) -> float:
        """The headline figure (what validation selects on and tables show first)."""
        return float(getattr(self, self.metric))

    @property
    def interval(self) -> float | None:
        """The 95% confidence half-width of `value`, when the protocol has one."""
        ci = getattr(self, "ci95", None)
        return None if ci is None or (isinstance(ci, float) and math.isnan(ci)) else float(ci)

    @property
    def label(self) -> str:
        """The protocol in a few characters, for tables (5w1s, 10-shot@1, ...)."""
        return self.protocol

    def formatted(self) -> str:
        """The value with its interval, in the unit a reader expects."""
        ci = self.interval
        return f"{self.metric} {self.value:.4f}" + (f"±{ci:.4f}" if ci is not None else "")

    def key(self) -> tuple:
        """What identifies the protocol: every field but the measured ones and the checkpoint's name."""
        fields = dataclasses.asdict(self)  # type: ignore[call-overload]
        return (
            self.protocol,
            *sorted((k, repr(v)) for k, v in fields.items() if k not in self.measured and k != "weights"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"protocol": self.protocol, **dataclasses.asdict(self)}  # type: ignore[call-overload]

    def with_weights(self, weights: str) -> Result:
        """The same result, recorded as measured with the checkpoint `weights` (best.pt or last.pt)."""
        return dataclasses.replace(self, weights=weights)  # type: ignore[type-var]


def _legacy_protocol(values: dict[str, Any]) -> str | None:
    """The protocol of an entry written before results named theirs (runs of earlier versions)."""
    if "per_task" in values:
        return "multitask"
    if "accuracy" in values:
        return "few_shot"
    if "mse" in values:
        return "regression"
    if "explained_variance" in values:
        return "task_data"
    return None


def result_from_dict(values: Any) -> Result | None:
    """The typed result a summary.json entry holds, or None when it is not one (damaged, of wrong types, or of a
    protocol this version does not know)."""
    if not isinstance(values, dict):
        return None
    name = values.get("protocol") or _legacy_protocol(values)
    cls = RESULT_TYPES.get(name) if isinstance(name, str) else None
    if cls is None:
        return None
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    try:
        result = cls(**{k: v for k, v in values.items() if k in names})
    except TypeError:
        return None
    return result if well_typed(result) else None


def confidence_interval(values: Tensor) -> tuple[float, float]:
    """(mean, 1.96 * s / sqrt(n)) with s the sample standard deviation (n - 1 denominator); nan CI for n < 2."""
    values = values.double()
    n = values.numel()
    mean = float(values.mean()) if n else math.nan
    if n < 2:
        return mean, math.nan
    return mean, 1.96 * float(values.std(unbiased=True)) / math.sqrt(n)


__all__ = ["RESULT_TYPES", "Result", "confidence_interval", "result_from_dict"]
