"""Reports of run directories: learning curves, test results, task affinity, config and environment, as one
self-contained HTML file or as Markdown with PNG figures beside it."""

from __future__ import annotations

from pathlib import Path

from ..errors import PolyskillError

FORMATS = ("html", "md")


def write_report(runs: list[Path], out: Path, fmt: str = "html") -> Path:
    """Write a report of `runs` to `out` in `fmt` ("html" or "md"); returns the path written."""
    if fmt not in FORMATS:
        raise PolyskillError(f"unknown report format {fmt!r} (choose html or md)")
    if not runs:
        raise PolyskillError("a report needs at least one run directory")
    from .collect import collect_runs
    from .content import build_document

    document = build_document(collect_runs(list(runs)))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "html":
        from .html import render_html

        out.write_text(render_html(document), encoding="utf-8")
    else:
        from .markdown import write_markdown

        write_markdown(document, out)
    return out


__all__ = ["write_report"]
