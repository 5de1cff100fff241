"""A Document as one self-contained HTML page: inline CSS, figures embedded as base64 PNG, everything escaped."""

from __future__ import annotations

import base64
import html
import re

from .blocks import Block, Code, Document, Heading, Image, Table, Text

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1280px; margin: 2em auto;
       padding: 0 1.5em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; border-bottom: 2px solid #333; padding-bottom: .2em; }
h2 { font-size: 1.3em; margin-top: 2.2em; border-bottom: 1px solid #ccc; padding-bottom: .15em; }
h3 { font-size: 1.05em; margin-top: 1.6em; color: #333; }
nav { background: #f6f6f6; padding: .6em 1em; border-radius: 6px; }
nav a { margin-right: 1.2em; }
table { border-collapse: collapse; margin: .8em 0; font-size: .92em; }
th, td { border: 1px solid #ddd; padding: .3em .7em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
tr:nth-child(even) td { background: #fafafa; }
caption { caption-side: bottom; text-align: left; color: #666; font-size: .88em; padding-top: .3em; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #666; font-size: .88em; }
pre { background: #f6f8fa; padding: .8em 1em; overflow-x: auto; border-radius: 6px; font-size: .85em; }
code { font-family: ui-monospace, Menlo, Consolas, monospace; }
p code { background: #f0f0f0; padding: 0 .25em; border-radius: 3px; }
.note { color: #7a5b00; background: #fff8e1; border-left: 4px solid #f0c000; padding: .4em .8em; }
"""


def inline(text: str) -> str:
    """Escaped text with `backtick` spans as <code>."""
    parts = re.split(r"`([^`]*)`", text)
    return "".join(f"<code>{html.escape(p)}</code>" if i % 2 else html.escape(p) for i, p in enumerate(parts))


def _table(block: Table) -> str:
    """An HTML table with its caption."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in block.header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>\n" for row in block.rows)
    caption = f"<caption>{inline(block.caption)}</caption>" if block.caption else ""
    return f"<table>{caption}<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody></table>"


def _block(block: Block, anchors: dict[str, int]) -> str:
    """One block as HTML; `anchors` counts heading ids so that each stays unique."""
    if isinstance(block, Heading):
        anchor = block.anchor or "section"
        anchors[anchor] = anchors.get(anchor, 0) + 1
        unique = anchor if anchors[anchor] == 1 else f"{anchor}-{anchors[anchor]}"
        return f'<h{block.level} id="{html.escape(unique)}">{html.escape(block.text)}</h{block.level}>'
    if isinstance(block, Text):
        return f'<p class="note">{inline(block.text)}</p>' if block.note else f"<p>{inline(block.text)}</p>"
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Image):
        data = base64.b64encode(block.png).decode("ascii")
        caption = f"<figcaption>{inline(block.caption)}</figcaption>" if block.caption else ""
        return f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(block.alt)}">{caption}</figure>'
    if isinstance(block, Code):
        language = f' class="language-{html.escape(block.language)}"' if block.language else ""
        return f"<pre><code{language}>{html.escape(block.text)}</code></pre>"
    raise TypeError(f"not a report block: {block!r}")


def _nav(document: Document) -> str:
    """Links to the level-2 sections, when there are several."""
    links = [
        f'<a href="#{html.escape(b.anchor)}">{html.escape(b.text)}</a>'
        for b in document.blocks
        if isinstance(b, Heading) and b.level == 2 and b.anchor
    ]
    return f"<nav>{''.join(links)}</nav>" if len(links) > 1 else ""


def render_html(document: Document) -> str:
    """The document as a complete HTML page (one file, no external resources)."""
    anchors: dict[str, int] = {}
    body = "\n".join(_block(b, anchors) for b in document.blocks)
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(document.title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{html.escape(document.title)}</h1>\n{_nav(document)}\n{body}\n</body>\n</html>\n"
    )
