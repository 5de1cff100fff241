"""Learning curves and test-metric-against-shots/ways figures, drawn on `matplotlib.figure.Figure` (Agg, no pyplot
state), several runs overlaid on shared axes with one colour per run."""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..checked import finite
from ..eval import Result
from ..rundir import RunRecord, higher_is_better
from ..rundir.format import PERCENT_METRICS

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

Points = list[tuple[float, float]]
TRAIN_CURVES = (
    ("loss", "training loss"),
    ("acc", "training accuracy (%)"),
    ("return_before", "return before adaptation"),
    ("return_after", "return after adaptation"),
    ("return", "training return"),
)
XAXES = (("step", "step"), ("time", "wall time (s)"))
PROTOCOL_AXES = {
    "shot": ("shots", "shots (support examples per class or task)"),
    "way": ("ways", "ways (classes per episode)"),
    "steps": ("adaptation steps", "adaptation steps"),
}
GROUPED_BY = {"shot": ("way",), "way": ("shot",), "steps": ("way", "shot")}
MAX_DRAWN = 1e300  # an axis spanning more than this overflows matplotlib's tick locator


def new_figure(width: float, height: float) -> Figure:
    """A figure that is not registered with pyplot, so nothing global is left behind."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def png(figure: Figure) -> bytes:
    """The figure as PNG bytes (rendered by Agg); the figure is cleared afterwards to free its memory."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # a layout that cannot fit long labels is still drawn; the warning helps no one
        warnings.simplefilter("ignore", UserWarning)
        figure.savefig(buffer, format="png", dpi=100, facecolor="white")
    figure.clear()
    return buffer.getvalue()


def colour(index: int) -> Any:
    """The colour of the index-th run (tab10, then tab20 for more runs)."""
    import matplotlib

    return matplotlib.colormaps["tab10" if index < 10 else "tab20"](index % 20)


def legend_labels(figure: Figure) -> list[str]:
    """Every label in the figure's legends (figure-level and per axes), in order."""
    legends = [*figure.legends, *(a.get_legend() for a in figure.axes)]
    return [t.get_text() for legend in legends if legend is not None for t in legend.get_texts()]


def literal(text: str) -> str:
    """`text` as a figure shows it verbatim: a `$` in a run or task name would start matplotlib's math mode."""
    return text.replace("$", r"\$")


def drawable(points: Points, scale: float = 1.0) -> Points:
    """`points` with y scaled by `scale`, less those a figure cannot show (NaN, infinite, beyond MAX_DRAWN)."""
    scaled = [(x, scale * y) for x, y in points]
    return [(x, y) for x, y in scaled if abs(x) <= MAX_DRAWN and abs(y) <= MAX_DRAWN]


def log_if_wide(axes: Axes, values: list[float]) -> None:
    """Use a log y axis when positive values span more than 1.5 decades (losses falling fast)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    finite = [v for v in values if math.isfinite(v)]
    if finite and min(finite) > 0 and max(finite) / min(finite) > 30:
        axes.set_yscale("log")
        axes.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        axes.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axes.yaxis.set_minor_formatter(NullFormatter())


def metric_title(metric: str) -> str:
    """A metric's axis title with its unit and direction: 'validation mse (lower is better)'."""
    unit = " (%)" if metric in PERCENT_METRICS else ""
    return (
        f"validation {metric.replace('_', ' ')}{unit} ({'higher' if higher_is_better(metric) else 'lower'} is better)"
    )


@dataclass(frozen=True)
class Curve:
    """One panel of the learning curves: its title, whether values are shown in percent, and how to get a run's
    (x, y) points along an x axis ("step" or "time")."""

    title: str
    percent: bool
    points: Callable[[RunRecord, str], Points]
    validation: bool = False


def _train_points(key: str) -> Callable[[RunRecord, str], Points]:
    def points(run: RunRecord, xkey: str) -> Points:
        found = [(finite(r.get(xkey)), finite(r.get(key))) for r in run.records]
        return [(x, y) for x, y in found if x is not None and y is not None]

    return points


def _validation_points(metric: str) -> Callable[[RunRecord, str], Points]:
    def points(run: RunRecord, xkey: str) -> Points:
        found, series = run.validation_curve()
        if found != metric:
            return []
        series = [(step, value) for step, value in series if math.isfinite(value)]
        if xkey == "step":
            return [(float(step), value) for step, value in series]
        times = {
            r["step"]: t
            for r in run.records
            if (t := finite(r.get("time"))) is not None and isinstance(r.get("step"), int)
        }
        return [(times[step], value) for step, value in series if step in times]

    return points


def curves(runs: list[RunRecord]) -> list[Curve]:
    """The panels the runs have data for: training loss and accuracy, then one per validation metric."""
    panels = [
        Curve(title, key == "acc", _train_points(key))
        for key, title in TRAIN_CURVES
        if any(finite(r.get(key)) is not None for run in runs for r in run.records)
    ]
    metrics = dict.fromkeys(m for run in runs for m, series in [run.validation_curve()] if m and series)
    panels += [Curve(metric_title(m), m in PERCENT_METRICS, _validation_points(m), True) for m in metrics]
    return panels


def curves_figure(runs: list[RunRecord]) -> Figure | None:
    """Training loss/accuracy and the validation metric against step (top row) and wall time (bottom row),
    every run overlaid; None when no run has logged a record."""
    panels = curves(runs)
    if not panels:
        return None
    figure = new_figure(max(6.0, 4.2 * len(panels)), 7.2)
    grid = figure.subplots(len(XAXES), len(panels), squeeze=False)
    handles: dict[str, Any] = {}
    for row, (xkey, xlabel) in enumerate(XAXES):
        for col, panel in enumerate(panels):
            axes = grid[row][col]
            values: list[float] = []
            for index, run in enumerate(runs):
                points = drawable(panel.points(run, xkey), 100.0 if panel.percent else 1.0)
                if not points:
                    continue
                xs, ys = zip(*points, strict=True)
                values += ys
                marked = panel.validation or len(xs) <= 12
                (line,) = axes.plot(
                    xs,
                    ys,
                    "o-" if marked else "-",
                    color=colour(index),
                    markersize=4 if panel.validation else 3,
                    linewidth=1.5,
                    label=literal(run.name),
                )
                handles.setdefault(literal(run.name), line)
            axes.set_xlabel(xlabel)
            axes.set_ylabel(panel.title)
            axes.set_title(f"{panel.title.split(' (')[0]} against {xlabel.split(' (')[0]}", fontsize=10)
            axes.grid(alpha=0.3)
            if panel.title == "training loss":
                log_if_wide(axes, values)
    figure.suptitle("Learning curves" + (f": {literal(runs[0].name)}" if len(runs) == 1 else ""), fontsize=12)
    figure.legend(
        list(handles.values()),
        list(handles),
        loc="outside lower center",
        ncols=min(len(handles), 4),
        fontsize=9,
        frameon=False,
    )
    return figure


def _field(result: Result, name: str) -> float | None:
    return finite(getattr(result, name, None))


def _protocol_lines(results: list[Result], axis: str, scale: float) -> dict[str, list[tuple[float, float, float]]]:
    """Results as lines along `axis`: {group name: [(x, value, ci)]} with values and intervals scaled by `scale`,
    only groups with 2+ x values; results a figure cannot show (NaN, infinite) are left out."""
    lines: dict[tuple, dict[float, tuple[float, float, float]]] = {}
    for r in results:
        x = _field(r, axis)
        ci = finite(r.interval) or 0.0
        shown = drawable([(0.0, r.value), (0.0, ci)], scale)
        if x is None or len(shown) < 2:
            continue
        group = tuple((k, v) for k in GROUPED_BY[axis] if (v := _field(r, k)) is not None)
        lines.setdefault(group, {})[x] = (x, shown[0][1], shown[1][1])  # a later evaluation replaces an earlier
    return {
        " ".join(f"{v:g}-{k}" for k, v in group): sorted(points.values())
        for group, points in sorted(lines.items(), key=lambda item: [v for _, v in item[0]])
        if len(points) > 1
    }


def protocol_figure(runs: list[RunRecord]) -> Figure | None:
    """The test metric against shots, ways and adaptation steps with 95% CI error bars, one line per run and
    protocol group; None when no run varies any of them."""
    metric = next((r.metric for run in runs for r in run.test), None)
    if metric is None:
        return None
    chosen = [[r for r in run.test if r.metric == metric] for run in runs]
    scale = 100.0 if metric in PERCENT_METRICS else 1.0
    panels = [
        (
            axis,
            [
                (i, run, _protocol_lines(results, axis, scale))
                for i, (run, results) in enumerate(zip(runs, chosen, strict=True))
            ],
        )
        for axis in PROTOCOL_AXES
    ]
    panels = [(axis, lines) for axis, lines in panels if any(found for _, _, found in lines)]
    if not panels:
        return None
    ylabel = f"test {metric.replace('_', ' ')}" + (" (%)" if scale != 1 else "")
    with_ci = any(r.interval is not None for results in chosen for r in results)
    entries = max(sum(len(groups) for _, _, groups in lines) for _, lines in panels)
    figure = new_figure(max(6.0, 5.2 * len(panels)), 4.4 + 0.2 * math.ceil(entries / 2))
    styles = ("o-", "s--", "^:", "d-.")
    for axes, (axis, lines) in zip(figure.subplots(1, len(panels), squeeze=False)[0], panels, strict=True):
        for index, run, groups in lines:
            for g, (group, points) in enumerate(groups.items()):
                xs, ys, cis = zip(*points, strict=True)
                axes.errorbar(
                    xs,
                    ys,
                    yerr=cis,
                    fmt=styles[g % len(styles)],
                    color=colour(index),
                    capsize=4,
                    markersize=5,
                    linewidth=1.5,
                    label=literal(f"{run.name}, {group}" if group else run.name),
                )
        plural, xlabel = PROTOCOL_AXES[axis]
        axes.set_xlabel(xlabel)
        axes.set_ylabel(ylabel)
        axes.set_xticks(sorted({x for _, _, groups in lines for points in groups.values() for x, _, _ in points}))
        axes.set_title(f"{ylabel} against {plural}" + (" (error bars: 95% CI)" if with_ci else ""), fontsize=10)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=2, frameon=False)
    title = "Test results across protocols" + (f": {literal(runs[0].name)}" if len(runs) == 1 else "")
    figure.suptitle(title, fontsize=12)
    return figure


def adaptation_figure(runs: list[RunRecord]) -> Figure | None:
    """The mean return against adaptation steps of every test result that holds such a curve (reinforcement
    learning: the trained and the freshly initialised policy, each fine-tuned the same way), one colour per run;
    None when no run has one."""
    lines = [
        (index, run, result)
        for index, run in enumerate(runs)
        for result in run.test
        if isinstance(getattr(result, "curve", None), list) and len(result.curve) > 1  # type: ignore[attr-defined]
    ]
    if not lines:
        return None
    figure = new_figure(6.4, 4.6)
    axes = figure.subplots()
    styles = ("o-", "s--", "^:", "d-.")
    for g, (index, run, result) in enumerate(lines):
        values = drawable([(float(k), v) for k, v in enumerate(result.curve)])  # type: ignore[attr-defined]
        if not values:
            continue
        xs, ys = zip(*values, strict=True)
        label = literal(f"{run.name}, {getattr(result, 'init', result.label)}")
        axes.plot(xs, ys, styles[g % len(styles)], color=colour(index), markersize=5, linewidth=1.5, label=label)
    axes.set_xlabel("adaptation steps")
    axes.set_ylabel("mean return")
    axes.set_xticks(sorted({float(k) for _, _, r in lines for k in range(len(r.curve))}))  # type: ignore[attr-defined]
    axes.set_title("Return before and after each adaptation step", fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, frameon=False)
    return figure
