"""A task-affinity heatmap as a PNG, drawn with Pillow: a diverging scale (blue negative, red positive) set by
the largest off-diagonal value (the diagonal, a task with itself, would swamp it), each cell's value written
in it, task names on both axes."""

from __future__ import annotations

import math
import os
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

MAX_LABEL = 40  # characters of a task name drawn on an axis (a longer one is cut, not given a wider image)


def _colour(value: float, scale: float) -> tuple[int, int, int]:
    """White at 0, red towards +scale, blue towards -scale."""
    t = max(-1.0, min(1.0, value / scale)) if scale > 0 else 0.0
    fade = round(255 * (1 - abs(t)))
    return (255, fade, fade) if t >= 0 else (fade, fade, 255)


def display_unit(matrix: list[list[float]]) -> float:
    """A power of ten to print small matrices in (1 unless every |value| is below 0.1)."""
    largest = max((abs(v) for row in matrix for v in row if v == v), default=0.0)
    return 10.0 ** math.floor(math.log10(largest)) if 0 < largest < 0.1 else 1.0


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def heatmap_png(
    matrix: list[list[float]],
    tasks: list[str],
    path: str | os.PathLike,
    title: str,
    row_label: str = "task i",
    col_label: str = "task j",
) -> Path:
    """Write `matrix` [T, T] as a labelled heatmap to `path` (PNG, whatever its suffix); returns the path. NaN
    cells (pairs never measured) are drawn blank."""
    tasks = [t if len(t) <= MAX_LABEL else t[: MAX_LABEL - 3] + "..." for t in tasks]
    n = len(tasks)
    cell = max(18, min(64, 640 // max(n, 1)))
    font, small = _font(14), _font(max(8, min(12, cell // 4)))
    label_w = 12 + max(int(font.getlength(t)) for t in tasks) if tasks else 40
    top, legend = 76, 90
    unit = display_unit(matrix)
    width = max(label_w + n * cell + legend + 20, 560)
    height = top + n * cell + label_w + 30
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    off = [abs(v) for i, row in enumerate(matrix) for j, v in enumerate(row) if i != j and v == v]
    scale = max(off, default=0.0) or max((abs(v) for row in matrix for v in row if v == v), default=1.0) or 1.0
    draw.text((10, 10), title, fill="black", font=_font(16))
    draw.text((10, 34), f"rows: {row_label}; columns: {col_label}", fill="#444", font=small)
    draw.text(
        (10, 50),
        "values" + (f" in units of {unit:g}" if unit != 1 else "") + "; colours scaled to the "
        "largest off-diagonal value; diagonal in grey",
        fill="#444",
        font=small,
    )
    for i, row in enumerate(matrix):
        y = top + i * cell
        draw.text((label_w - 6, y + cell / 2), tasks[i], fill="black", font=font, anchor="rm")
        for j, value in enumerate(row):
            x = label_w + j * cell
            fill = "#d9d9d9" if i == j else "#f4f4f4" if value != value else _colour(value, scale)
            draw.rectangle([x, y, x + cell - 1, y + cell - 1], fill=fill, outline="#ddd")
            if cell >= 30 and value == value:
                draw.text((x + cell / 2, y + cell / 2), f"{value / unit:.2f}", fill="black", font=small, anchor="mm")
    for j, task in enumerate(tasks):
        label = Image.new("RGBA", (label_w, cell), (255, 255, 255, 0))
        ImageDraw.Draw(label).text((label_w - 6, cell / 2), task, fill="black", font=font, anchor="rm")
        rotated = label.rotate(90, expand=True)
        image.paste(rotated, (label_w + j * cell, top + n * cell + 4), rotated)
    bar_x = label_w + n * cell + 20
    for k in range(n * cell):
        value = scale * (1 - 2 * k / max(n * cell - 1, 1))
        draw.line([bar_x, top + k, bar_x + 14, top + k], fill=_colour(value, scale))
    draw.text((bar_x + 18, top), f"+{scale / unit:.2g}", fill="black", font=small)
    draw.text((bar_x + 18, top + n * cell - 10), f"-{scale / unit:.2g}", fill="black", font=small)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")
    return path
