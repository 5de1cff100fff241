"""`polyskill report`: HTML and Markdown reports of real tiny runs (few-shot and multi-task with affinity)."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import socket
from pathlib import Path

import pytest
from conftest import polyskill_cli as polyskill
from conftest import tiny_recipe
from PIL import Image

from polyskill.cli import main
from polyskill.errors import RunError
from polyskill.report import report_format, write_report
from polyskill.report.mtl_plots import affinity_figure
from polyskill.report.plots import curves_figure, legend_labels, protocol_figure
from polyskill.rundir import read_runs

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MTL_TASKS = ["a1", "a2", "a3", "b1", "b2", "b3", "c1", "c2"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny few-shot run evaluated on four protocols, and a tiny multi-task run that measured task affinity."""
    folder = tmp_path_factory.mktemp("report")
    recipe = tiny_recipe(folder)
    for args in (
        ["train", recipe, "--out", folder / "fewshot", "--quiet"],
        ["eval", folder / "fewshot", "--way", "3", "--way", "5", "--shot", "1", "--shot", "2", "--episodes", "5"],
        [
            "train",
            "mtl-synthetic-affinity",
            "--set",
            "train.steps=40",
            "--set",
            "train.log_every=10",
            "--set",
            "train.val_every=20",
            "--set",
            "mtl.affinity_every=4",
            "--out",
            folder / "mtl",
            "--quiet",
        ],
    ):
        assert main([str(a) for a in args]) == 0, args  # in this process: three interpreters' start-up saved
    return folder / "fewshot", folder / "mtl"


def embedded_pngs(page: str) -> list[Image.Image]:
    """Every data-URI image of an HTML page, checked to be a PNG and opened with Pillow."""
    images = []
    for data in re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page):
        raw = base64.b64decode(data, validate=True)
        assert raw.startswith(PNG_SIGNATURE)
        image = Image.open(io.BytesIO(raw))
        image.load()
        images.append(image)
    return images


def test_html_report_of_a_few_shot_run(runs, tmp_path):
    """One file: valid embedded PNGs, the real test accuracies, the config and the torch version."""
    fewshot, _ = runs
    out = write_report([fewshot], tmp_path / "report.html")
    page = out.read_text()
    images = embedded_pngs(page)
    assert len(images) == 2  # learning curves, accuracy against shots and ways
    assert all(i.format == "PNG" and i.width >= 500 and 300 <= i.height <= 1200 for i in images)
    summary = json.loads((fewshot / "summary.json").read_text())
    assert len(summary["test"]) == 5  # the recipe's protocol, then 3- and 5-way 1- and 2-shot
    for protocol in summary["test"]:
        assert f"<td>{100 * protocol['accuracy']:.2f}±{100 * protocol['ci95']:.2f}%</td>" in page
        assert f"<tr><td>{protocol['way']}w{protocol['shot']}s</td><td>{protocol['way']}</td>" in page
    assert "<th>accuracy ± 95% CI</th>" in page
    assert "train: vinyals/val" in page and "hidden: 8" in page  # the resolved config
    environment = json.loads((fewshot / "run.json").read_text())["environment"]
    assert f"<tr><td>torch</td><td>{environment['torch']}</td></tr>" in page
    assert f"<td>torch threads</td><td>{environment['threads']}</td>" in page
    assert "http://" not in page and "https://" not in page and 'src="data:image/png' in page  # self-contained


def test_accuracy_against_shots_and_ways(runs):
    """Accuracy against shots and against ways, one error-bar line per way / shot."""
    run = read_runs([runs[0]])
    figure = protocol_figure(run)
    assert [a.get_xlabel().split(" ")[0] for a in figure.axes] == ["shots", "ways"]
    assert legend_labels(figure) == ["fewshot, 3-way", "fewshot, 5-way", "fewshot, 1-shot", "fewshot, 2-shot"]
    bars = list(figure.axes[0].containers)
    assert len(bars) == 2 and all(len(b.lines[0].get_xdata()) == 2 for b in bars)
    assert protocol_figure(read_runs([runs[1]])) is None  # a multi-task run has no protocols


def test_markdown_report_of_a_multitask_run(runs, tmp_path):
    """Markdown links PNGs that exist beside it; per-task metrics and the config are in the text."""
    _, mtl = runs
    out = write_report([mtl], tmp_path / "notes" / "mtl.md", "md")
    text = out.read_text()
    links = re.findall(r"!\[([^\]]*)\]\(([^)]+)\)", text)
    assert [alt.split(" of ")[0] for alt, _ in links] == ["learning curves", "per-task curves", "task affinity"]
    for _, link in links:
        assert link.startswith("mtl_files/")
        path = out.parent / link
        assert path.read_bytes().startswith(PNG_SIGNATURE)
        assert Image.open(path).width >= 500
    summary = json.loads((mtl / "summary.json").read_text())
    for task in MTL_TASKS:
        rmse = summary["test"][0]["per_task"][task]["rmse"]
        assert f"| {task} | RMSE (lower is better) | {rmse:.4g} |" in text
    assert "```yaml\nkind: multitask\nname: mtl-synthetic-affinity" in text and "affinity\\_every: 4" not in text
    assert "  affinity_every: 4" in text
    assert "Task weights were logged but stayed constant" in text


def test_affinity_heatmap_shows_the_measured_matrix(runs):
    """The heatmap names the tasks and writes the measured values in its cells."""
    run = read_runs([runs[1]])[0]
    figure = affinity_figure(run)
    cosine, lookahead = [axes for axes in figure.axes if axes.images]  # the others are colour bars
    assert [t.get_text() for t in cosine.get_yticklabels()] == MTL_TASKS
    written = {t.get_text() for t in cosine.texts}
    assert f"{run.affinity.matrices['cosine'][0][1]:.2f}" in written and len(cosine.texts) == 64
    assert "lookahead" in lookahead.get_title() and cosine.images[0].get_cmap().name.startswith("RdBu")


def test_two_runs_are_overlaid_and_compared(runs, tmp_path):
    """Several runs share the curves' axes (both in the legend) and a comparison table."""
    both = read_runs(list(runs))
    figure = curves_figure(both)
    assert legend_labels(figure) == ["fewshot", "mtl"]
    loss = figure.axes[0]
    assert loss.get_xlabel() == "step" and [line.get_label() for line in loss.get_lines()] == ["fewshot", "mtl"]
    assert figure.axes[len(figure.axes) // 2].get_xlabel() == "wall time (s)"
    page = write_report(list(runs), tmp_path / "both.html").read_text()
    assert '<h2 id="comparison">Comparison</h2>' in page
    assert "<td>fewshot</td>" in page and "<td>mtl</td>" in page
    assert len(embedded_pngs(page)) == 5  # overlay curves and protocols, then the multi-task run's own figures


def test_same_named_runs_get_distinct_labels(runs, tmp_path):
    """Runs with the same directory name are told apart by their parent folder."""
    for parent in ("a", "b"):
        shutil.copytree(runs[0], tmp_path / parent / "run")
    labels = [r.name for r in read_runs([tmp_path / "a" / "run", tmp_path / "b" / "run"])]
    assert labels == ["a/run", "b/run"]


def test_not_a_run_directory(tmp_path):
    """A folder that is not a run is one clear RunError line, exit code 2 from the CLI."""
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunError, match="is not a run directory"):
        write_report([tmp_path / "empty"], tmp_path / "r.html")
    with pytest.raises(RunError, match="no run directory at"):
        write_report([tmp_path / "missing"], tmp_path / "r.html")
    result = polyskill("report", tmp_path / "empty", "--out", tmp_path / "r.html")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        (
            f"polyskill: error: {tmp_path / 'empty'} is not a run directory "
            "(it has none of config.yaml, run.json, metrics.jsonl, summary.json)"
        )
    ]
    assert not (tmp_path / "r.html").exists()


def test_a_run_just_started_reads_as_sentences(runs, tmp_path):
    """No metrics, summary or environment yet: sentences instead of figures; names are escaped."""
    fresh = tmp_path / "fresh<run>&"
    fresh.mkdir()
    shutil.copy(runs[0] / "config.yaml", fresh)
    (fresh / "metrics.jsonl").write_text('{"step": 2, "lo')  # a torn first line
    (fresh / "run.json").write_text(
        json.dumps(
            {
                "recipe": "tiny",
                "status": "running",
                "started": "2026-01-01",
                "pid": os.getpid(),
                "host": socket.gethostname(),
            }
        )
    )
    page = write_report([fresh], tmp_path / "fresh.html").read_text()
    assert "<img" not in page
    for sentence in (
        "This run is still running (started 2026-01-01)",
        "No training records yet",
        "No test results yet",
        "The environment was not recorded",
    ):
        assert sentence in page
    assert "fresh&lt;run&gt;&amp;" in page and "fresh<run>" not in page
    text = write_report([fresh], tmp_path / "fresh.md", "md").read_text()
    assert "No training records yet" in text and "fresh\\<run\\>&" in text
    assert not (tmp_path / "fresh_files").exists()


def test_cli_writes_markdown_by_suffix(runs, tmp_path):
    """`--out x.md` picks Markdown; the default output names follow the format."""
    result = polyskill("report", runs[0], "--out", tmp_path / "r.md")
    assert result.returncode == 0, result.stderr
    assert f"written to {tmp_path / 'r.md'}" in result.stdout
    assert sorted(p.name for p in (tmp_path / "r_files").iterdir()) == [
        "01-fewshot-curves.png",
        "02-fewshot-protocols.png",
    ]
    assert report_format(None, None) == (Path("report.html"), "html")
    assert report_format(None, "md") == (Path("report.md"), "md")
    assert report_format("x/notes.markdown", None) == (Path("x/notes.markdown"), "md")
    assert report_format("x/page.HTM", "html") == (Path("x/page.HTM"), "html")
