"""Multi-task figures: per-task training losses and task weights, and task-affinity heatmaps drawn with a
diverging colour map (blue: tasks pull apart, red: they help each other), values written in the cells."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..checked import finite
from ..eval.heatmap import display_unit
from ..rundir import RunRecord
from .plots import colour, literal, log_if_wide, new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

AFFINITY_TITLES = {"cosine": "gradient cosine similarity", "lookahead": "lookahead affinity (step on i, loss of j)"}


def weights_vary(run: RunRecord) -> bool:
    """Whether any logged task weight ever differs from the first one logged."""
    values = [v for r in run.train for k in r if k.startswith("weight_") and (v := finite(r[k])) is not None]
    return bool(values) and max(values) - min(values) > 1e-9


def task_curves_figure(run: RunRecord) -> Figure | None:
    """Each task's training loss against step, and its weight when the weighting changed it; None when the run
    logged no per-task losses."""
    tasks = run.tasks
    if not tasks:
        return None
    panels = [("loss_", "training loss", "per-task training loss")]
    panels += [("weight_", "task weight", "task weights")] if weights_vary(run) else []
    figure = new_figure(5.6 * len(panels) + 1.4, 4.4)
    for axes, (prefix, ylabel, title) in zip(figure.subplots(1, len(panels), squeeze=False)[0], panels, strict=True):
        values: list[float] = []
        for index, task in enumerate(tasks):
            key = prefix + task
            points = [(r["step"], v) for r in run.train if (v := finite(r.get(key))) is not None]
            if points:
                xs, ys = zip(*points, strict=True)
                values += ys
                axes.plot(xs, ys, "-", color=colour(index), linewidth=1.4, label=literal(task))
        axes.set_xlabel("step")
        axes.set_ylabel(ylabel)
        axes.set_title(f"{title} against step", fontsize=10)
        axes.grid(alpha=0.3)
        if prefix == "loss_":
            log_if_wide(axes, values)
    figure.legend(
        *figure.axes[0].get_legend_handles_labels(), loc="outside right center", fontsize=9, title="task", frameon=False
    )
    figure.suptitle(f"Per-task training: {literal(run.name)}", fontsize=12)
    return figure


def affinity_figure(run: RunRecord) -> Figure | None:
    """The run's task-affinity matrices side by side as annotated heatmaps; None when it measured none."""
    import matplotlib
    import numpy as np
    from matplotlib.ticker import FuncFormatter

    if run.affinity is None:
        return None
    tasks, n = [literal(t) for t in run.affinity.tasks], len(run.affinity.tasks)
    kinds = [(k, run.affinity.matrices[k]) for k in AFFINITY_TITLES if k in run.affinity.matrices]
    if not kinds:
        return None
    side = min(9.0, max(4.2, 0.55 * n + 2.2))
    figure = new_figure(side * len(kinds) + 1.0, side)
    steps = run.affinity.steps
    for axes, (kind, matrix) in zip(figure.subplots(1, len(kinds), squeeze=False)[0], kinds, strict=True):
        values = np.array(matrix)
        off = values[~np.eye(n, dtype=bool)]
        off = off[np.isfinite(off)]
        scale = float(np.abs(off).max()) if off.size and np.abs(off).max() > 0 else 1.0
        unit = display_unit(matrix)
        cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="#d9d9d9")
        shown = np.ma.masked_where(np.eye(n, dtype=bool) | ~np.isfinite(values), values)
        image = axes.imshow(shown, cmap=cmap, vmin=-scale, vmax=scale)
        bar = figure.colorbar(image, ax=axes, shrink=0.8)
        bar.set_label("affinity" + (f" (in units of {unit:g})" if unit != 1 else ""))
        if unit != 1:
            bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _, u=unit: f"{v / u:g}"))
        if n <= 16:
            for i in range(n):
                for j in range(n):
                    if np.isfinite(values[i, j]):
                        strong = i != j and abs(values[i, j]) > 0.6 * scale
                        axes.text(
                            j,
                            i,
                            f"{values[i, j] / unit:.2f}" if abs(values[i, j] / unit) < 1e4 else f"{values[i, j]:.1e}",
                            ha="center",
                            va="center",
                            fontsize=8 if n <= 10 else 6,
                            color="white" if strong else "black",
                        )
        if n <= 40:
            axes.set_xticks(range(n), tasks, rotation=90 if max(map(len, tasks)) > 3 else 0)
            axes.set_yticks(range(n), tasks)
        axes.set_xlabel("task j")
        axes.set_ylabel("task i (gradient / step)")
        count = steps.get(kind)
        axes.set_title(
            AFFINITY_TITLES[kind]
            + (f"\nmean over {count} steps" if count else "")
            + (f", in units of {unit:g}" if unit != 1 else ""),
            fontsize=10,
        )
    figure.suptitle(
        f"Task affinity: {literal(run.name)}\n(colour scaled to the largest off-diagonal value; diagonal in grey)",
        fontsize=11,
    )
    return figure
