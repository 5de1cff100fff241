"""What a report says, in order: a comparison of the runs, then each run's curves, results, tasks, status,
environment and config; every missing piece becomes a sentence saying why it is missing."""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING

from ..eval import MultiTaskResult
from ..rundir import RunRecord
from .blocks import Code, Document, Heading, Image, Table, Text
from .mtl_plots import affinity_figure, task_curves_figure, weights_vary
from .plots import adaptation_figure, curves_figure, png, protocol_figure
from .results import best_validation, headline_columns, multitask_tables, number, protocol_groups, protocol_table

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MAX_RESULT_COLUMNS = 8
ENVIRONMENT = (
    ("polyskill", "polyskill"),
    ("python", "Python"),
    ("torch", "torch"),
    ("numpy", "NumPy"),
    ("device", "device"),
    ("gpu", "GPU"),
    ("cuda", "CUDA"),
    ("cpu", "CPU"),
    ("cpu_count", "CPU cores"),
    ("threads", "torch threads"),
    ("platform", "platform"),
)


def slug(text: str) -> str:
    """A lower-case, file- and anchor-safe version of `text`."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "run"


def figure_block(figure: Figure | None, name: str, alt: str, caption: str = "") -> Image | None:
    """A figure rendered to PNG as an Image block (None stays None)."""
    return None if figure is None else Image(name=name, png=png(figure), alt=alt, caption=caption)


def status_sentence(run: RunRecord) -> str:
    """One sentence on how the run stands, from run.json or summary.json."""
    state, message = run.status, run.info("message")
    started, ended = run.info("started"), run.info("ended")
    if state == "running":
        text = (
            f"This run is still running (started {started}): the curves and tables show it as far as it has got."
            if started
            else "This run is still running: the report shows it as far as it has got."
        )
    elif state == "interrupted":
        text = (
            "This run was interrupted: its process ended without recording how; continue it with "
            f"`polyskill train --resume {run.path}`."
        )
    elif state in ("incomplete", "not started"):
        text = (
            f"The run's status is unknown: it has neither a readable run.json nor summary.json "
            f"({'it has begun writing' if state == 'incomplete' else 'nothing has been written yet'})."
        )
    else:
        text = f"Status: {state}" + (f" ({message})" if message else "") + "."
        if started and ended:
            text += f" Started {started}, ended {ended}."
    return text


def overview_rows(run: RunRecord) -> list[list[str]]:
    """The run at a glance: recipe, kind, algorithm, data, status, steps, training time, best validation."""
    summary = run.summary
    rows = [
        ["recipe", run.recipe or "n/a"],
        ["kind", run.kind or "n/a"],
        ["algorithm", run.algorithm or "n/a"],
        ["dataset", run.dataset or "n/a"],
        ["status", run.status],
        ["steps", number(summary.steps)],
        ["training time (s)", number(run.wall_seconds, 6)],
        ["best validation", best_validation(run)],
        ["precision", summary.precision or "n/a"],
    ]
    command = run.run_info.get("command")
    if isinstance(command, list) and command:
        rows.append(["command", " ".join(map(str, command))])
    return rows


def comparison(document: Document, runs: list[RunRecord]) -> None:
    """The side-by-side section of a several-run report: one table and overlaid figures."""
    document.add(Heading("Comparison", 2, "comparison"))
    columns: list[str] = list(dict.fromkeys(c for run in runs for c in headline_columns(run)))
    shown = columns[:MAX_RESULT_COLUMNS]
    header = ["run", "recipe", "status", "steps", "training time (s)", "best validation", *shown]
    rows = []
    for run in runs:
        glance = dict(overview_rows(run))
        cells = headline_columns(run)
        rows.append(
            [
                run.name,
                glance["recipe"],
                run.status,
                glance["steps"],
                glance["training time (s)"],
                glance["best validation"],
            ]
            + [cells.get(c, "n/a") for c in shown]
        )
    caption = "Test results per protocol; ± gives the 95% confidence interval where it was measured."
    if len(columns) > len(shown):
        caption += f" {len(columns) - len(shown)} more protocol(s) are in each run's own table."
    document.add(Table(header, rows, caption))
    curves = figure_block(
        curves_figure(runs),
        "comparison-curves",
        "learning curves of " + ", ".join(r.name for r in runs),
        "Training and validation curves of every run, against steps and against training seconds.",
    )
    document.add(curves or Text("No run has logged training records yet, so there are no learning curves.", True))
    protocols = figure_block(
        protocol_figure(runs),
        "comparison-protocols",
        "test metric across protocols",
        "Test results across protocols; error bars, where drawn, are 95% confidence intervals.",
    )
    if protocols:
        document.add(protocols)
    adaptation = figure_block(
        adaptation_figure(runs),
        "comparison-adaptation",
        "return against adaptation steps",
        "Mean test return before adaptation and after each policy-gradient step, for the trained policy and a "
        "freshly initialised one fine-tuned the same way.",
    )
    if adaptation:
        document.add(adaptation)


def results(document: Document, run: RunRecord, split: str) -> None:
    """The run's results on one split ("test", "val", "train") as tables, and a protocol figure for the test split."""
    found = run.summary.results.get(split, [])
    if split == "test" and found:
        figure = figure_block(
            protocol_figure([run]),
            f"{slug(run.name)}-protocols",
            f"test metric of {run.name} across protocols",
            "Error bars, where drawn, are 95% confidence intervals over the test episodes.",
        )
        if figure:
            document.add(figure)
        adaptation = figure_block(
            adaptation_figure([run]) if len(run.test) else None,
            f"{slug(run.name)}-adaptation",
            f"return of {run.name} against adaptation steps",
            "Mean test return before adaptation and after each policy-gradient step.",
        )
        if adaptation:
            document.add(adaptation)
    for group in protocol_groups(found):
        document.add(Table(*protocol_table(group), caption=f"Results on the {split} split."))
    for result in (r for r in found if isinstance(r, MultiTaskResult)):
        (overall_header, overall), (header, rows) = multitask_tables(result)
        document.add(
            Table(overall_header, overall, f"Overall {split} metrics (weights: {result.weights or 'n/a'})."),
            Table(header, rows, f"Per-task {split} metrics."),
        )
    if split == "test" and not found:
        document.add(
            Text(
                "No test results yet: summary.json has none (the run has not finished, or was trained "
                f"with --no-eval). `polyskill eval {run.path}` adds them.",
                True,
            )
        )


def tasks(document: Document, run: RunRecord) -> None:
    """Per-task training curves and the task-affinity heatmap of a multi-task run."""
    document.add(Heading("Tasks", 3, f"{slug(run.name)}-tasks"))
    curves = figure_block(
        task_curves_figure(run),
        f"{slug(run.name)}-tasks",
        f"per-task curves of {run.name}",
        "Each task's training loss" + (" and weight" if weights_vary(run) else "") + " against step.",
    )
    if curves:
        document.add(curves)
        if not weights_vary(run) and any(k.startswith("weight_") for r in run.train for k in r):
            document.add(Text("Task weights were logged but stayed constant, so they are not drawn.", True))
    else:
        document.add(Text("No per-task training losses were logged (they are logged when the tasks are few).", True))
    heatmap = figure_block(
        affinity_figure(run),
        f"{slug(run.name)}-affinity",
        f"task affinity of {run.name}",
        "Red: a step on task i's gradient helps task j; blue: it hurts. From affinity.json.",
    )
    document.add(
        heatmap
        or Text(
            "No task affinity was measured: affinity.json is absent (set mtl.affinity_every, "
            "or use a gradient aggregator).",
            True,
        )
    )


def environment(document: Document, run: RunRecord) -> None:
    """Where and on what the run trained (run.json), or a sentence saying it was not recorded."""
    env = run.run_info.get("environment")
    if isinstance(env, dict) and env:
        rows = [[label, str(env[key])] for key, label in ENVIRONMENT if env.get(key) is not None]
        rows += [[key, str(value)] for key, value in env.items() if key not in dict(ENVIRONMENT)]
        if run.info("host"):
            rows.append(["host", str(run.info("host"))])
        document.add(Table(["", "value"], rows, "Software and hardware the run trained on (run.json)."))
    else:
        document.add(Text("The environment was not recorded: this run has no run.json (it predates it).", True))


def run_section(document: Document, run: RunRecord, alone: bool) -> None:
    """Everything about one run; its learning curves only when it is the report's only run (else overlaid above)."""
    anchor = slug(run.name)
    document.add(Heading(run.name, 2, anchor), Text(f"Run directory: `{run.path}`. {status_sentence(run)}"))
    for problem in run.problems:
        document.add(Text(f"Could not read everything: {problem}", True))
    document.add(Table(["", "value"], overview_rows(run)))
    if alone:
        document.add(Heading("Learning curves", 3, f"{anchor}-curves"))
        curves = figure_block(
            curves_figure([run]),
            f"{anchor}-curves",
            f"learning curves of {run.name}",
            "Training and validation curves against steps and against training seconds.",
        )
        document.add(
            curves
            or Text(
                "No training records yet: metrics.jsonl is missing or empty, so there are no learning curves.", True
            )
        )
    document.add(Heading("Results", 3, f"{anchor}-results"))
    for key in ("test", "val", "train"):
        results(document, run, key)
    if run.has_tasks:
        tasks(document, run)
    document.add(Heading("Environment", 3, f"{anchor}-environment"))
    environment(document, run)
    document.add(Heading("Config", 3, f"{anchor}-config"))
    document.add(
        Code(run.config_text, "yaml") if run.config_text.strip() else Text("No config.yaml in the run directory.", True)
    )


def build_document(runs: list[RunRecord]) -> Document:
    """The whole report of `runs` as format-neutral blocks."""
    from .._version import __version__

    names = ", ".join(r.name for r in runs)
    document = Document(f"polyskill report: {names}")
    when = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    document.add(Text(f"{len(runs)} run(s), reported {when} by polyskill {__version__}."))
    if len(runs) > 1:
        comparison(document, runs)
    for run in runs:
        run_section(document, run, alone=len(runs) == 1)
    return document
