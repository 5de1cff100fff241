"""Reports of run directories: learning curves, test results, task affinity, config and environment, as one
self-contained HTML file or as Markdown with PNG figures beside it."""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError

SUFFIXES = {"html": (".html", ".htm"), "md": (".md", ".markdown")}
FORMATS = tuple(SUFFIXES)


def report_format(out: str | Path | None, fmt: str | None = None) -> tuple[Path, str]:
    """The report's path and format from an output file and an optional format: the format follows the file's
    suffix, the file defaults to report.FORMAT; a suffix of neither format, or a format that disagrees with the
    suffix, is one ConfigError."""
    if fmt is not None and fmt not in SUFFIXES:
        raise ConfigError(f"unknown report format {fmt!r}: choose html or md")
    if out is None:
        return Path(f"report.{fmt or 'html'}"), fmt or "html"
    out = Path(out)
    suffix = out.suffix.lower()
    found = next((name for name, suffixes in SUFFIXES.items() if suffix in suffixes), None)
    if found is None:
        raise ConfigError(
            f"cannot write a report to {out}: a report is HTML (.html, .htm) or Markdown (.md, "
            f".markdown), so name the file with one of these suffixes"
        )
    if fmt is not None and fmt != found:
        raise ConfigError(
            f"--format {fmt} disagrees with --out {out}, a {found} file name: drop --format, or name "
            f"the file {out.with_suffix(SUFFIXES[fmt][0]).name}"
        )
    return out, found


def write_report(runs: list[Path], out: Path, fmt: str | None = None) -> Path:
    """Write a report of `runs` to `out` (HTML for .html/.htm, Markdown for .md, checked against `fmt` when it
    is given); returns the path written."""
    if not runs:
        raise ConfigError("a report needs at least one run directory")
    out, fmt = report_format(out, fmt)
    if out.is_dir():
        raise ConfigError(f"cannot write a report to {out}: it is a folder; name a file such as {out / 'report.html'}")
    from ..rundir import read_runs
    from .content import build_document

    document = build_document(read_runs(list(runs)))
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "html":
        from .html import render_html

        out.write_text(render_html(document), encoding="utf-8")
    else:
        from .markdown import write_markdown

        write_markdown(document, out)
    return out


__all__ = ["FORMATS", "SUFFIXES", "report_format", "write_report"]
