"""`polyskill report RUN ... --out report.html`: the command-line entry to the report writer."""

from __future__ import annotations

import argparse
from pathlib import Path

EPILOG = """examples:
  polyskill report runs/protonet                          # writes report.html
  polyskill report runs/fewshot/protonet-scratch runs/fewshot/matching --out compare.html
  polyskill report runs/synthetic --out report.md         # Markdown, figures in report_files/
  polyskill report runs/a runs/b --format md --out notes/ab.md

--out decides the format: .html or .htm for HTML, .md or .markdown for Markdown.
"""


def _report(args: argparse.Namespace) -> int:
    """Write the report and say where it is."""
    from . import report_format, write_report

    out, fmt = report_format(args.out, args.format)
    path = write_report([Path(r) for r in args.runs], out, fmt)
    where = f"with its figures in {path.parent / (path.stem + '_files')}" if fmt == "md" else "(open it in a browser)"
    print(f"report of {len(args.runs)} run(s) written to {path} {where}")  # noqa: T201 (the command's answer)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `report` subcommand to the CLI's subparsers."""
    parser = sub.add_parser(
        "report",
        help="write an HTML or Markdown report of one or more runs",
        description="Learning curves, test results, task affinity, config and environment of\n"
        "one or more run directories; several runs are overlaid and compared.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run directories (written by polyskill train)")
    parser.add_argument(
        "--out", help="report file: .html/.htm or .md/.markdown (default report.html, or report.md with --format md)"
    )
    parser.add_argument(
        "--format",
        choices=["html", "md"],
        help="html: one self-contained file; md: Markdown with PNG files beside it "
        "(default: from --out's suffix, else html)",
    )
    parser.set_defaults(handler=_report)
