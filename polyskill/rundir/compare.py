"""Side by side: the config values that differ between runs, and their results, as text tables."""

from __future__ import annotations

from typing import Any

from .catalog import RunRecord, format_best, format_result, format_seconds, format_test, protocol_label

_MISSING = object()


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'train': {'lr': 0.1}} -> {'train.lr': 0.1}; lists and scalars are leaves."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def differing(configs: list[dict[str, Any]]) -> list[str]:
    """The dotted keys whose values are not the same in every config (a key missing somewhere differs)."""
    flats = [flatten(c) for c in configs]
    keys = sorted({k for f in flats for k in f})
    return [k for k in keys if len({repr(f.get(k, _MISSING)) for f in flats}) > 1]


def table(header: list[str], rows: list[list[str]]) -> str:
    """A plain text table, columns padded to their widest cell."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(cell).ljust(w) for cell, w in zip(header, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)


def runs_table(records: list[RunRecord]) -> str:
    """`polyskill runs`: one line per run."""
    header = ["run", "recipe", "algorithm", "data", "status", "best val", "test (95% CI)", "wall time"]
    rows = [[r.name, r.recipe, r.algorithm, r.dataset, r.status, format_best(r), format_test(r),
             format_seconds(r.wall_seconds)] for r in records]
    return table(header, rows)


def _value(value: Any, width: int = 40) -> str:
    """A config value in a cell, cut to `width` characters."""
    if value is _MISSING:
        return "(absent)"
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def _results(record: RunRecord) -> dict[str, str]:
    """Each test figure of a run under a label that lines up with the same protocol in other runs."""
    out: dict[str, str] = {}
    if isinstance(record.test, list):
        for result in record.test:
            if isinstance(result, dict):
                out[f"test {protocol_label(result)}"] = format_result(result)
    elif isinstance(record.test, dict):
        for key, value in (record.test.get("overall") or {}).items():
            if isinstance(value, (int, float)):
                out[f"test {key}"] = f"{value:.4f}"
        delta = record.summary.get("test_delta_m")
        if isinstance(delta, dict):
            out["test delta-m"] = f"{delta['value']:+.2f}%"
    return out


def compare_table(records: list[RunRecord]) -> str:
    """`polyskill compare`: the configs that differ, then status, validation, test results and wall time."""
    flats = [flatten(r.config) for r in records]
    keys = [k for k in differing([r.config for r in records]) if k != "description"]
    rows = [[key, *(_value(f.get(key, _MISSING)) for f in flats)] for key in keys]
    if not keys:
        rows.append(["(configs)", *["identical"] * len(records)])
    rows.append(["status", *(r.status for r in records)])
    rows.append(["best val", *(format_best(r) for r in records)])
    results = [_results(r) for r in records]
    labels = list(dict.fromkeys(label for res in results for label in res))
    rows += [[label, *(res.get(label, "-") for res in results)] for label in labels]
    rows.append(["wall time", *(format_seconds(r.wall_seconds) for r in records)])
    if not labels and not any(r.test for r in records):
        rows.append(["test", *["-"] * len(records)])
    return table(["", *(r.name for r in records)], rows)
