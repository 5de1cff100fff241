"""The pieces a report is made of, independent of its format: the HTML and Markdown writers render these."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Heading:
    """A section title; `anchor` is a stable id to link to."""

    text: str
    level: int = 2
    anchor: str = ""


@dataclass
class Text:
    """A paragraph of plain text; spans in `backticks` are shown as code."""

    text: str
    note: bool = False


@dataclass
class Table:
    """A table of strings with a header row."""

    header: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Image:
    """A PNG figure: `name` becomes its file name in Markdown reports, `alt` its text alternative."""

    name: str
    png: bytes
    alt: str
    caption: str = ""


@dataclass
class Code:
    """A verbatim block, e.g. the resolved config in YAML."""

    text: str
    language: str = ""


Block = Heading | Text | Table | Image | Code


@dataclass
class Document:
    """A titled sequence of blocks."""

    title: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block) -> None:
        """Append blocks in order."""
        self.blocks.extend(blocks)
