"""A Document as Markdown: a .md file with its figures as PNG files in a folder beside it, linked relatively."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

from .blocks import Block, Code, Document, Heading, Image, Table, Text

SPECIAL = re.compile(r"([\\*_\[\]<>|#])")


def escape(text: str) -> str:
    """Text with Markdown's special characters escaped, `backtick` spans kept as code."""
    parts = re.split(r"(`[^`]*`)", text)
    return "".join(p if i % 2 else SPECIAL.sub(r"\\\1", p) for i, p in enumerate(parts))


def _cell(text: str) -> str:
    """A table cell: escaped, on one line, never empty."""
    return escape(text).replace("\n", " ") or " "


def _table(block: Table) -> str:
    """A pipe table, its caption in italics below it."""
    lines = [
        "| " + " | ".join(_cell(h) for h in block.header) + " |",
        "|" + "|".join("---" for _ in block.header) + "|",
    ]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in block.rows]
    return "\n".join(lines) + (f"\n\n*{escape(block.caption)}*" if block.caption else "")


def _fence(text: str) -> str:
    """A code fence longer than any run of backticks inside `text`."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _block(block: Block, images: dict[int, str]) -> str:
    """One block as Markdown; `images` maps an Image block's id to its relative link."""
    if isinstance(block, Heading):
        return "#" * block.level + " " + escape(block.text)
    if isinstance(block, Text):
        return f"> {escape(block.text)}" if block.note else escape(block.text)
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Image):
        link = f"![{escape(block.alt)}]({images[id(block)]})"
        return link + (f"\n\n*{escape(block.caption)}*" if block.caption else "")
    if isinstance(block, Code):
        fence = _fence(block.text)
        return f"{fence}{block.language}\n{block.text.rstrip()}\n{fence}"
    raise TypeError(f"not a report block: {block!r}")


def write_markdown(document: Document, out: Path) -> Path:
    """Write `document` to `out` (.md) and its figures to `<stem>_files/` beside it; returns `out`."""
    out = Path(out)
    folder = out.parent / f"{out.stem}_files"
    images: dict[int, str] = {}
    figures = [b for b in document.blocks if isinstance(b, Image)]
    if figures:
        folder.mkdir(parents=True, exist_ok=True)
    for number, block in enumerate(figures, 1):
        name = f"{number:02d}-{re.sub(r'[^A-Za-z0-9_.-]+', '-', block.name)}.png"
        (folder / name).write_bytes(block.png)
        images[id(block)] = quote(f"{folder.name}/{name}")
    text = f"# {escape(document.title)}\n\n" + "\n\n".join(_block(b, images) for b in document.blocks) + "\n"
    out.write_text(text, encoding="utf-8")
    return out
