"""Learning curves and accuracy-against-shots/ways figures, drawn on `matplotlib.figure.Figure` (Agg, no pyplot
state), several runs overlaid on shared axes with one colour per run."""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING, Any

from .collect import RunData

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

CURVES = (("loss", "training loss", False), ("acc", "training accuracy (%)", True),
          ("val_acc", "validation accuracy (%)", True), ("val_score", "validation score", False))
XAXES = (("step", "step"), ("time", "wall time (s)"))
PROTOCOL_AXES = {"shot": ("shots", "shots (support examples per class or task)"),
                 "way": ("ways", "ways (classes per episode)"), "steps": ("adaptation steps", "adaptation steps")}
GROUPED_BY = {"shot": ("way",), "way": ("shot",), "steps": ("way", "shot")}
PROTOCOL_METRICS = {"accuracy": ("test accuracy (%)", 100.0), "mse": ("test MSE", 1.0),
                    "explained_variance": ("test explained variance", 1.0)}


def new_figure(width: float, height: float) -> Figure:
    """A figure that is not registered with pyplot, so nothing global is left behind."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def png(figure: Figure) -> bytes:
    """The figure as PNG bytes (rendered by Agg); the figure is cleared afterwards to free its memory."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, facecolor="white")
    figure.clear()
    return buffer.getvalue()


def colour(index: int) -> Any:
    """The colour of the index-th run (tab10, then tab20 for more runs)."""
    import matplotlib

    return matplotlib.colormaps["tab10" if index < 10 else "tab20"](index % 20)


def legend_labels(figure: Figure) -> list[str]:
    """Every label in the figure's legends (figure-level and per axes), in order."""
    legends = list(figure.legends) + [a.get_legend() for a in figure.axes if a.get_legend() is not None]
    return [t.get_text() for legend in legends for t in legend.get_texts()]


def log_if_wide(axes: Axes, values: list[float]) -> None:
    """Use a log y axis when positive values span more than 1.5 decades (losses falling fast)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    finite = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if finite and min(finite) > 0 and max(finite) / min(finite) > 30:
        axes.set_yscale("log")
        axes.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        axes.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axes.yaxis.set_minor_formatter(NullFormatter())


def curves_figure(runs: list[RunData]) -> Figure | None:
    """Training loss/accuracy and the validation metric against step (top row) and wall time (bottom row),
    every run overlaid; None when no run has logged a record."""
    present = [(key, title, pct) for key, title, pct in CURVES if any(key in r for run in runs for r in run.records)]
    if not present:
        return None
    figure = new_figure(max(6.0, 4.2 * len(present)), 7.2)
    grid = figure.subplots(len(XAXES), len(present), squeeze=False)
    handles: dict[str, Any] = {}
    for row, (xkey, xlabel) in enumerate(XAXES):
        for col, (key, title, pct) in enumerate(present):
            axes = grid[row][col]
            values = []
            for index, run in enumerate(runs):
                points = [(r[xkey], r[key]) for r in run.records
                          if isinstance(r.get(xkey), (int, float)) and isinstance(r.get(key), (int, float))]
                if not points:
                    continue
                xs, ys = zip(*points)
                ys = [100 * y for y in ys] if pct else list(ys)
                values += ys
                marked = key.startswith("val") or len(xs) <= 12
                (line,) = axes.plot(xs, ys, "o-" if marked else "-", color=colour(index),
                                    markersize=4 if key.startswith("val") else 3, linewidth=1.5, label=run.label)
                handles.setdefault(run.label, line)
            axes.set_xlabel(xlabel)
            axes.set_ylabel(title)
            axes.set_title(f"{title} against {xlabel.split(' (')[0]}", fontsize=10)
            axes.grid(alpha=0.3)
            if key == "loss":
                log_if_wide(axes, values)
    figure.suptitle("Learning curves" + (f": {runs[0].label}" if len(runs) == 1 else ""), fontsize=12)
    figure.legend(list(handles.values()), list(handles), loc="outside lower center",
                  ncols=min(len(handles), 4), fontsize=9, frameon=False)
    return figure


def _protocol_lines(run: RunData, axis: str, metric: str) -> dict[str, list[tuple[float, float, float]]]:
    """The run's protocols as lines along `axis`: {group name: [(x, y, ci)]}, only groups with 2+ x values."""
    lines: dict[tuple, dict[float, tuple[float, float, float]]] = {}
    for p in run.protocols:
        if not isinstance(p.get(axis), (int, float)) or not isinstance(p.get(metric), (int, float)):
            continue
        group = tuple((k, p[k]) for k in GROUPED_BY[axis] if isinstance(p.get(k), (int, float)))
        ci = p.get("ci95") if metric in ("accuracy", "mse") and isinstance(p.get("ci95"), (int, float)) else 0.0
        lines.setdefault(group, {})[p[axis]] = (p[axis], p[metric], ci)  # a later evaluation replaces an earlier
    return {" ".join(f"{v}-{k}" for k, v in group): sorted(points.values())
            for group, points in sorted(lines.items(), key=lambda item: [v for _, v in item[0]])
            if len(points) > 1}


def protocol_figure(runs: list[RunData]) -> Figure | None:
    """The test metric against shots, ways and adaptation steps with 95% CI error bars, one line per run and
    protocol group; None when no run varies any of them."""
    metric = next((m for m in PROTOCOL_METRICS if any(m in p for run in runs for p in run.protocols)), None)
    if metric is None:
        return None
    ylabel, scale = PROTOCOL_METRICS[metric]
    panels = [(axis, [(i, run, _protocol_lines(run, axis, metric)) for i, run in enumerate(runs)])
              for axis in PROTOCOL_AXES]
    panels = [(axis, lines) for axis, lines in panels if any(found for _, _, found in lines)]
    if not panels:
        return None
    entries = max(sum(len(groups) for _, _, groups in lines) for _, lines in panels)
    figure = new_figure(max(6.0, 5.2 * len(panels)), 4.4 + 0.2 * math.ceil(entries / 2))
    styles = ("o-", "s--", "^:", "d-.")
    for axes, (axis, lines) in zip(figure.subplots(1, len(panels), squeeze=False)[0], panels):
        for index, run, groups in lines:
            for g, (group, points) in enumerate(groups.items()):
                xs, ys, cis = zip(*points)
                axes.errorbar(xs, [scale * y for y in ys], yerr=[scale * c for c in cis], fmt=styles[g % len(styles)],
                              color=colour(index), capsize=4, markersize=5, linewidth=1.5,
                              label=f"{run.label}, {group}" if group else run.label)
        plural, xlabel = PROTOCOL_AXES[axis]
        axes.set_xlabel(xlabel)
        axes.set_ylabel(ylabel)
        axes.set_xticks(sorted({x for _, _, groups in lines for points in groups.values() for x, _, _ in points}))
        axes.set_title(f"{ylabel} against {plural}" + (" (error bars: 95% CI)" if metric != "explained_variance"
                                                       else ""), fontsize=10)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=2, frameon=False)
    figure.suptitle("Test results across protocols" + (f": {runs[0].label}" if len(runs) == 1 else ""), fontsize=12)
    return figure
