"""summary.json as one typed record for every kind of run: how training ended, what validation selected, and the
results of every protocol on every split. The runner writes it; `runs`, `compare`, `report`, `sweep` and `eval`
read it through `RunSummary.from_dict`, which also reads the files of earlier versions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..checked import number
from ..train.validation import is_better, validation_key
from .result import Result, result_from_dict

SPLITS = ("test", "val", "train")
LEGACY_VALIDATION_KEYS = {"accuracy": "val_acc", "score": "val_score"}  # metrics.jsonl keys of earlier versions


def validation_series(
    records: list[dict[str, Any]], metric: str | None = None
) -> tuple[str | None, list[tuple[int, float]]]:
    """(metric, [(step, value)]) of the validation records in `records`: of `metric` when it is known, else of
    whichever validation metric the records hold (runs of earlier versions included)."""
    candidates = [metric] if metric else []
    candidates += [m for r in records for m in _metrics_in(r) if m not in candidates]
    for name in candidates:
        keys = dict.fromkeys((validation_key(name), LEGACY_VALIDATION_KEYS.get(name)))  # once, when they are equal
        series = [
            (r["step"], float(r[k]))
            for r in records
            for k in keys
            if k
            and isinstance(r.get(k), (int, float))
            and not isinstance(r.get(k), bool)
            and isinstance(r.get("step"), int)
        ]
        if series:
            return name, series
    return metric, []


def _metrics_in(record: dict[str, Any]) -> list[str]:
    legacy = {v: k for k, v in LEGACY_VALIDATION_KEYS.items()}
    return [legacy.get(k, k[len("val_") :]) for k in record if isinstance(k, str) and k.startswith("val_")]


@dataclass
class ValidationRecord:
    """What validation measured and selected: the metric, its direction, the best value and its step."""

    metric: str
    higher_is_better: bool = True
    best: float | None = None
    best_step: int | None = None

    def better(self, value: float) -> bool:
        """Whether `value` beats the best so far (the first value always does; NaN never does)."""
        return is_better(value, self.best, self.higher_is_better)

    @classmethod
    def from_dict(cls, values: Any) -> ValidationRecord | None:
        if not isinstance(values, dict) or not isinstance(values.get("metric"), str):
            return None
        step = values.get("best_step")
        return cls(
            values["metric"],
            bool(values.get("higher_is_better", True)),
            number(values.get("best")),
            step if isinstance(step, int) and not isinstance(step, bool) else None,
        )


@dataclass
class RunSummary:
    """A run's summary.json. `results` maps a split to its protocol results (a list for every kind of run)."""

    kind: str | None = None
    recipe: str | None = None
    status: str | None = None
    steps: int | None = None
    train_seconds: float | None = None
    precision: str | None = None
    validation: ValidationRecord | None = None
    results: dict[str, list[Result]] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    #: what `from_dict` could not read, in sentences (not written back)
    problems: list[str] = field(default_factory=list, compare=False, repr=False)

    @property
    def test(self) -> list[Result]:
        return self.results.get("test", [])

    def merge(self, split: str, fresh: list[Result]) -> None:
        """Record `fresh` results of `split`, replacing earlier results of the same protocols."""
        keys = {r.key() for r in fresh}
        self.results[split] = [r for r in self.results.get(split, []) if r.key() not in keys] + list(fresh)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "recipe": self.recipe,
            "status": self.status,
            "steps": self.steps,
            "train_seconds": self.train_seconds,
            "precision": self.precision,
            "validation": None if self.validation is None else vars(self.validation),
        }
        for split in SPLITS:
            if split in self.results:
                out[split] = [r.to_dict() for r in self.results[split]]
        out["config"] = self.config
        return out

    @classmethod
    def from_dict(cls, values: Any) -> RunSummary:
        """Read a summary.json mapping (of this version or an earlier one); damaged parts become unknown."""
        if not isinstance(values, dict):
            return cls()

        def typed(key: str, kind: type | tuple[type, ...]) -> Any:
            value = values.get(key)
            return value if isinstance(value, kind) and not isinstance(value, bool) else None

        summary = cls(
            kind=typed("kind", str),
            recipe=typed("recipe", str),
            status=typed("status", str),
            steps=typed("steps", int),
            train_seconds=typed("train_seconds", (int, float)),
            precision=typed("precision", str),
            config=typed("config", dict) or {},
        )
        summary.validation = ValidationRecord.from_dict(values.get("validation")) or _legacy_validation(values)
        recorded = values["validation"] if isinstance(values.get("validation"), dict) else {}
        best = recorded.get("best", next((values[k] for k in ("best_val_acc", "best_val_score") if k in values), None))
        if best is not None and summary.validation is not None and summary.validation.best is None:
            summary.problems.append(
                f"summary.json is damaged: its best validation {summary.validation.metric} is not a number"
            )
            summary.validation.best_step = None
        for split in SPLITS:
            entries = values.get(split)
            if isinstance(entries, dict):  # earlier multi-task runs stored one result, with delta-m beside it
                delta = values.get(f"{split}_delta_m")
                entries = [
                    {
                        **entries,
                        **(
                            {"delta_m": delta.get("value"), "baseline": delta.get("baseline")}
                            if isinstance(delta, dict)
                            else {}
                        ),
                    }
                ]
            if isinstance(entries, list):
                results = [result_from_dict(e) for e in entries]
                summary.results[split] = [r for r in results if r is not None]
                dropped = len(results) - len(summary.results[split])
                if dropped:
                    summary.problems.append(
                        f"summary.json: {dropped} {split} result(s) hold values of the wrong "
                        f"type or of an unknown protocol"
                    )
        return summary


def _legacy_validation(values: dict[str, Any]) -> ValidationRecord | None:
    """The validation of a summary written before it had its own record (best_val_acc / best_val_score)."""
    for key, metric in (("best_val_acc", "accuracy"), ("best_val_score", "score")):
        if key in values:
            step = values.get("best_step")
            return ValidationRecord(
                metric,
                True,
                number(values.get(key)),
                step if isinstance(step, int) and not isinstance(step, bool) else None,
            )
    return None


__all__ = ["SPLITS", "RunSummary", "ValidationRecord", "validation_key", "validation_series"]
