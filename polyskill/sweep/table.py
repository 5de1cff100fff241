"""The table a sweep prints at the end: one row per trial, best validation first."""

from __future__ import annotations

from typing import Any


def cell(value: Any) -> str:
    """A parameter value for people: numbers to 4 significant digits, None as YAML's null."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return "null" if value is None else str(value)


def sweep_table(rows: list[dict[str, Any]], metric: str, higher_is_better: bool = True) -> list[str]:
    """Lines of a table of `rows` (number, state, value, params, run): completed trials by value, best first in
    the metric's direction, then the pruned, failed and unfinished ones by number."""
    keys = sorted({k for row in rows for k in row["params"]})
    sign = -1 if higher_is_better else 1
    order = sorted(
        rows,
        key=lambda r: (
            r["state"] != "COMPLETE",
            sign * (r["value"] or 0) if r["state"] == "COMPLETE" else 0,
            r["number"],
        ),
    )
    header = ["trial", "state", metric, *keys, "run"]
    body = [
        [
            str(r["number"]),
            r["state"].lower(),
            "-" if r["value"] is None else f"{r['value']:.4f}",
            *(cell(r["params"][k]) if k in r["params"] else "-" for k in keys),
            r["run"] or "-",
        ]
        for r in order
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in [header, *body]
    ]
