"""What a report says, in order: a comparison of the runs, then each run's curves, results, tasks, status,
environment and config; every missing piece becomes a sentence saying why it is missing."""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING

from .blocks import Code, Document, Heading, Image, Table, Text
from .collect import RunData
from .mtl_plots import affinity_figure, task_curves_figure, weights_vary
from .plots import curves_figure, png, protocol_figure
from .results import best_validation, headline_columns, multitask_tables, number, protocol_table

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MAX_RESULT_COLUMNS = 8
ENVIRONMENT = (("polyskill", "polyskill"), ("python", "Python"), ("torch", "torch"), ("numpy", "NumPy"),
               ("device", "device"), ("gpu", "GPU"), ("cuda", "CUDA"), ("cpu", "CPU"), ("cpu_count", "CPU cores"),
               ("threads", "torch threads"), ("platform", "platform"))


def slug(text: str) -> str:
    """A lower-case, file- and anchor-safe version of `text`."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "run"


def figure_block(figure: Figure | None, name: str, alt: str, caption: str = "") -> Image | None:
    """A figure rendered to PNG as an Image block (None stays None)."""
    return None if figure is None else Image(name=name, png=png(figure), alt=alt, caption=caption)


def status_sentence(run: RunData) -> str:
    """One sentence on how the run stands, from run.json or summary.json."""
    state, message = run.state, run.status.get("message")
    started, ended = run.status.get("started"), run.status.get("ended")
    if state == "running":
        text = (f"This run is still running (started {started}): the curves and tables show it as far as it has "
                f"got." if started else "This run is still running: the report shows it as far as it has got.")
    elif state == "interrupted":
        text = ("This run was interrupted: its process ended without recording how; continue it with "
                f"`polyskill train --resume {run.path}`.")
    elif state == "unknown":
        text = "The run's status is unknown: it has neither run.json nor summary.json yet."
    else:
        text = f"Status: {state}" + (f" ({message})" if message else "") + "."
        if started and ended:
            text += f" Started {started}, ended {ended}."
    return text


def overview_rows(run: RunData) -> list[list[str]]:
    """The run at a glance: recipe, algorithm, data, status, steps, training time, best validation."""
    status, summary = run.status, run.summary
    seconds = summary.get("train_seconds")
    rows = [["recipe", str(status.get("recipe") or summary.get("recipe") or run.config.get("name") or "n/a")],
            ["algorithm", str(status.get("algorithm") or (run.config.get("algo") or {}).get("name") or "n/a")],
            ["dataset", str(status.get("dataset") or (run.config.get("data") or {}).get("dataset") or "n/a")],
            ["status", run.state], ["steps", number(summary.get("steps"))],
            ["training time (s)", number(seconds, 6) if seconds is not None else "n/a"],
            ["best validation", best_validation(run)], ["precision", str(summary.get("precision", "n/a"))]]
    if status.get("command"):
        rows.append(["command", " ".join(map(str, status["command"]))])
    return rows


def comparison(document: Document, runs: list[RunData]) -> None:
    """The side-by-side section of a several-run report: one table and overlaid figures."""
    document.add(Heading("Comparison", 2, "comparison"))
    columns: list[str] = list(dict.fromkeys(c for run in runs for c in headline_columns(run)))
    shown = columns[:MAX_RESULT_COLUMNS]
    header = ["run", "recipe", "status", "steps", "training time (s)", "best validation"] + shown
    rows = []
    for run in runs:
        glance = dict(overview_rows(run))
        cells = headline_columns(run)
        rows.append([run.label, glance["recipe"], run.state, glance["steps"], glance["training time (s)"],
                     glance["best validation"]] + [cells.get(c, "n/a") for c in shown])
    caption = "Test results per protocol (accuracy in %); ± gives the 95% confidence interval where it was measured."
    if len(columns) > len(shown):
        caption += f" {len(columns) - len(shown)} more protocol(s) are in each run's own table."
    document.add(Table(header, rows, caption))
    curves = figure_block(curves_figure(runs), "comparison-curves",
                          "learning curves of " + ", ".join(r.label for r in runs),
                          "Training and validation curves of every run, against steps and against training seconds.")
    document.add(curves or Text("No run has logged training records yet, so there are no learning curves.", True))
    protocols = figure_block(protocol_figure(runs), "comparison-protocols", "test metric across protocols",
                             "Test results across protocols; error bars, where drawn, are 95% confidence intervals.")
    if protocols:
        document.add(protocols)


def results(document: Document, run: RunData, key: str) -> None:
    """The run's results on one split ("test", "val", "train") as tables, and a protocol figure for the test split."""
    value = run.summary.get(key)
    if isinstance(value, list) and value:
        if key == "test":
            figure = figure_block(protocol_figure([run]), f"{slug(run.label)}-protocols",
                                  f"test metric of {run.label} across protocols",
                                  "Error bars, where drawn, are 95% confidence intervals over the test episodes.")
            if figure:
                document.add(figure)
        document.add(Table(*protocol_table([r for r in value if isinstance(r, dict)]),
                           caption=f"Results on the {key} split."))
    elif isinstance(value, dict) and value.get("per_task"):
        (overall_header, overall), (header, rows) = multitask_tables(value)
        document.add(Table(overall_header, overall, f"Overall {key} metrics (weights: {value.get('weights', 'n/a')})."),
                     Table(header, rows, f"Per-task {key} metrics."))
        delta = run.summary.get(f"{key}_delta_m")
        if isinstance(delta, dict) and isinstance(delta.get("value"), (int, float)):
            document.add(Text(f"delta-m against the single-task baseline {delta.get('baseline')}: "
                              f"{delta['value']:+.2f} % (positive: better than single-task)."))
    elif key == "test":
        document.add(Text("No test results yet: summary.json has none (the run has not finished, or was trained "
                          f"with --no-eval). `polyskill eval {run.path}` adds them.", True))


def tasks(document: Document, run: RunData) -> None:
    """Per-task training curves and the task-affinity heatmap of a multi-task run."""
    document.add(Heading("Tasks", 3, f"{slug(run.label)}-tasks"))
    curves = figure_block(task_curves_figure(run), f"{slug(run.label)}-tasks", f"per-task curves of {run.label}",
                          "Each task's training loss" + (" and weight" if weights_vary(run) else "") + " against step.")
    if curves:
        document.add(curves)
        if not weights_vary(run) and any(k.startswith("weight_") for r in run.train for k in r):
            document.add(Text("Task weights were logged but stayed constant, so they are not drawn.", True))
    else:
        document.add(Text("No per-task training losses were logged (they are logged when the tasks are few).", True))
    heatmap = figure_block(affinity_figure(run), f"{slug(run.label)}-affinity", f"task affinity of {run.label}",
                           "Red: a step on task i's gradient helps task j; blue: it hurts. From affinity.json.")
    document.add(heatmap or Text("No task affinity was measured: affinity.json is absent (set mtl.affinity_every, "
                                 "or use a gradient aggregator).", True))


def environment(document: Document, run: RunData) -> None:
    """Where and on what the run trained (run.json), or a sentence saying it was not recorded."""
    env = run.status.get("environment")
    if isinstance(env, dict) and env:
        rows = [[label, str(env[key])] for key, label in ENVIRONMENT if env.get(key) is not None]
        rows += [[key, str(value)] for key, value in env.items() if key not in dict(ENVIRONMENT)]
        if run.status.get("host"):
            rows.append(["host", str(run.status["host"])])
        document.add(Table(["", "value"], rows, "Software and hardware the run trained on (run.json)."))
    else:
        document.add(Text("The environment was not recorded: this run has no run.json (it predates it).", True))


def run_section(document: Document, run: RunData, alone: bool) -> None:
    """Everything about one run; its learning curves only when it is the report's only run (else overlaid above)."""
    anchor = slug(run.label)
    document.add(Heading(run.label, 2, anchor), Text(f"Run directory: `{run.path}`. {status_sentence(run)}"))
    for problem in run.problems:
        document.add(Text(f"Could not read everything: {problem}", True))
    document.add(Table(["", "value"], overview_rows(run)))
    if alone:
        document.add(Heading("Learning curves", 3, f"{anchor}-curves"))
        curves = figure_block(curves_figure([run]), f"{anchor}-curves", f"learning curves of {run.label}",
                              "Training and validation curves against steps and against training seconds.")
        document.add(curves or Text("No training records yet: metrics.jsonl is missing or empty, so there are no "
                                    "learning curves.", True))
    document.add(Heading("Results", 3, f"{anchor}-results"))
    for key in ("test", "val", "train"):
        results(document, run, key)
    if run.is_multitask:
        tasks(document, run)
    document.add(Heading("Environment", 3, f"{anchor}-environment"))
    environment(document, run)
    document.add(Heading("Config", 3, f"{anchor}-config"))
    document.add(Code(run.config_text, "yaml") if run.config_text.strip()
                 else Text("No config.yaml in the run directory.", True))


def build_document(runs: list[RunData]) -> Document:
    """The whole report of `runs` as format-neutral blocks."""
    from .. import __version__

    names = ", ".join(r.label for r in runs)
    document = Document(f"polyskill report: {names}")
    when = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    document.add(Text(f"{len(runs)} run(s), reported {when} by polyskill {__version__}."))
    if len(runs) > 1:
        comparison(document, runs)
    for run in runs:
        run_section(document, run, alone=len(runs) == 1)
    return document
