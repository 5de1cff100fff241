"""The one run-directory reader behind `runs`, `compare`, `report` and `sweep`: typed records of every kind of run,
runs of earlier versions, and damaged files that never end in a traceback. Run directories are written here file by
file (the summary through `RunSummary.to_dict`), so each case is exactly the files it names."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import TINY_RECIPE

from polyskill.checked import TooComplex, conforms, plain
from polyskill.cli import main
from polyskill.eval import FewShotResult, MultiTaskResult, RegressionResult, RunSummary, ValidationRecord
from polyskill.recipes import load, recipe_to_dict
from polyskill.report.plots import curves_figure, protocol_figure
from polyskill.rundir import differing, find_runs, flatten, read_run, read_runs

FEWSHOT_TEST = FewShotResult(
    way=5, shot=1, query=2, episodes=10, seed=0, accuracy=0.625, ci95=0.0875, weights="best.pt"
)


def write_run(
    run: Path,
    config: dict[str, Any] | bytes | None = None,
    summary: RunSummary | dict | bytes | None = None,
    records: list[dict[str, Any]] | bytes | None = None,
    status: dict[str, Any] | bytes | None = None,
    affinity: dict[str, Any] | bytes | None = None,
) -> Path:
    """A run directory holding exactly the files given (dicts written as YAML / JSON, bytes as they are)."""
    run.mkdir(parents=True, exist_ok=True)

    def put(name: str, value: Any, text: Any) -> None:
        if value is not None:
            (run / name).write_bytes(value if isinstance(value, bytes) else text(value).encode())

    put("config.yaml", config, lambda v: yaml.safe_dump(v, sort_keys=False))
    put("summary.json", summary, lambda v: json.dumps(v.to_dict() if isinstance(v, RunSummary) else v))
    put("metrics.jsonl", records, lambda v: "".join(json.dumps(r) + "\n" for r in v))
    put("run.json", status, json.dumps)
    put("affinity.json", affinity, json.dumps)
    return run


def finished(recipe: str, algorithm: str, dataset: str) -> dict[str, Any]:
    """run.json of a run that finished on another machine (so no live-process check applies)."""
    return {
        "recipe": recipe,
        "algorithm": algorithm,
        "dataset": dataset,
        "status": "finished",
        "started": "2026-01-01T10:00:00+00:00",
        "ended": "2026-01-01T10:01:00+00:00",
        "pid": 1,
        "host": "elsewhere",
        "environment": {"torch": "2.13.0", "threads": 1},
    }


def fewshot_run(run: Path) -> Path:
    """A finished few-shot run of the tiny recipe, validated by accuracy, with one test result."""
    config = recipe_to_dict(load_tiny())
    summary = RunSummary(
        kind="fewshot",
        recipe="tiny",
        status="finished",
        steps=6,
        train_seconds=4.0,
        precision="fp32",
        validation=ValidationRecord("accuracy", True, 0.75, 3),
        results={"test": [FEWSHOT_TEST]},
        config={},
    )
    records = [
        {"step": 2, "loss": 1.5, "acc": 0.3, "lr": 0.001, "time": 1.0},
        {"step": 3, "val_accuracy": 0.75, "time": 1.5},
        {"step": 6, "loss": 1.2, "acc": 0.5, "lr": 0.001, "time": 4.0},
        {"step": 6, "val_accuracy": 0.5, "time": 4.0},
    ]
    return write_run(run, config, summary, records, finished("tiny", "protonet", "omniglot"))


def load_tiny() -> Any:
    from polyskill.recipes import recipe_from_dict

    return recipe_from_dict({"name": "tiny", **copy.deepcopy(TINY_RECIPE)})


def regression_run(run: Path, best: float, curve: list[float], summary: bool = True) -> Path:
    """A sinusoid MAML run validated by MSE (lower is better): validation records `curve` at steps 10, 20, ...;
    with `summary`, a finished one whose summary records `best`, else one stopped before writing its summary."""
    config = recipe_to_dict(load("sinusoid-maml", ["data.val=true", "train.steps=40"]))
    records = [{"step": 10 * (i + 1), "loss": 2.0 / (i + 1), "time": float(i + 1)} for i in range(len(curve))]
    records += [{"step": 10 * (i + 1), "val_mse": v, "time": float(i + 1)} for i, v in enumerate(curve)]
    written = None
    if summary:
        step = 10 * (curve.index(best) + 1)
        written = RunSummary(
            kind="regression",
            recipe="sinusoid-maml",
            status="finished",
            steps=40,
            train_seconds=8.0,
            precision="fp32",
            validation=ValidationRecord("mse", False, best, step),
            results={
                "test": [
                    RegressionResult(10, 100, 600, 0, 1, 0.5, 0.04),
                    RegressionResult(10, 100, 600, 0, 10, 0.25, 0.02),
                ]
            },
        )
    return write_run(run, config, written, records, finished("sinusoid-maml", "maml", "sinusoid") if summary else None)


def _cli(capsys, *args: Any) -> tuple[int, str, list[str]]:
    """`polyskill ARGS` in this process: exit code, stdout, stderr lines."""
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and "internal error" not in err, err
    return code, out, err.strip().splitlines()


def test_find_runs_and_flatten(tmp_path):
    for name in ("a/r1", "a/b/r2", "c"):
        (tmp_path / name).mkdir(parents=True)
        (tmp_path / name / "config.yaml").write_text("name: x\n")
    (tmp_path / "c" / "inner").mkdir()
    (tmp_path / "c" / "inner" / "config.yaml").write_text("name: y\n")  # inside a run: not a run of its own
    assert [p.relative_to(tmp_path).as_posix() for p in find_runs(tmp_path)] == ["a/b/r2", "a/r1", "c"]
    assert find_runs(tmp_path / "c") == [tmp_path / "c"]
    assert flatten({"a": {"b": 1, "c": {"d": [2]}}, "e": {}}) == {"a.b": 1, "a.c.d": [2], "e": {}}
    assert differing([{"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3}}, {"a": {"b": 1}}]) == ["a.c"]
    record = read_run(tmp_path / "c")
    assert record.status == "not started" and record.kind == "fewshot" and record.problems == []
    assert record.validation == ValidationRecord("accuracy", True, None, None)  # what it will validate on, no value


def test_a_few_shot_run_reads_into_one_typed_record(tmp_path):
    record = read_run(fewshot_run(tmp_path / "fs"))
    assert (record.kind, record.recipe, record.algorithm, record.dataset, record.status) == (
        "fewshot",
        "tiny",
        "protonet",
        "omniglot",
        "finished",
    )
    assert record.validation == ValidationRecord("accuracy", True, 0.75, 3)
    assert record.test == [FEWSHOT_TEST] and record.wall_seconds == 4.0 and record.problems == []
    assert record.validation_curve() == ("accuracy", [(3, 0.75), (6, 0.5)])
    assert record.config["kind"] == "fewshot" and record.config["model"]["hidden"] == 8


def test_a_regression_run_is_validated_lower_is_better_in_runs_compare_and_report(tmp_path, capsys):
    good = regression_run(tmp_path / "runs" / "good", 0.12, [0.3, 0.12, 0.2])
    bad = regression_run(tmp_path / "runs" / "bad", 0.3, [0.9, 0.3, 0.5])
    code, out, _ = _cli(capsys, "runs", tmp_path / "runs", "--sort", "best")
    rows = out.splitlines()[2:]
    assert code == 0 and [r.split()[0] for r in rows] == ["good", "bad"]  # the lowest MSE first
    assert "mse 0.12 " in rows[0] and "10-shot@1 MSE 0.5000±0.0400, 10-shot@10 MSE 0.2500±0.0200" in rows[0]
    code, out, _ = _cli(capsys, "runs", tmp_path / "runs", "--json")
    listed = [json.loads(line) for line in out.splitlines()]
    assert listed[1]["validation"] == {"metric": "mse", "higher_is_better": False, "best": 0.12, "best_step": 20}
    assert listed[1]["kind"] == "regression" and listed[1]["test"][1]["mse"] == 0.25

    code, out, _ = _cli(capsys, "compare", good, bad)
    by_key = {line.split()[0]: line.split()[1:] for line in out.splitlines()[2:]}
    assert code == 0 and by_key["best"] == ["val", "mse", "0.12", "mse", "0.3"]

    page = tmp_path / "r.html"
    assert _cli(capsys, "report", good, "--out", page)[0] == 0
    assert "mse 0.12 at step 20 (MSE, lower is better)" in page.read_text()
    assert "<th>MSE ± 95% CI</th>" in page.read_text() and "<td>10-shot@10</td>" in page.read_text()
    figure = curves_figure(read_runs([good, bad]))
    assert [a.get_ylabel() for a in figure.axes[:2]] == ["training loss", "validation mse (lower is better)"]
    assert list(figure.axes[1].get_lines()[0].get_ydata()) == [0.3, 0.12, 0.2]


def test_a_run_stopped_before_its_summary_is_judged_in_its_metrics_direction(tmp_path):
    """No summary.json yet: the best validation so far is the lowest MSE (the recipe's kind says MSE, lower)."""
    record = read_run(regression_run(tmp_path / "r", 0.0, [0.5, 0.2, 0.4], summary=False))
    assert record.validation == ValidationRecord("mse", False, 0.2, 20)
    assert record.status == "incomplete" and record.test == []


def test_runs_of_earlier_versions_read_into_the_same_record(tmp_path, capsys):
    """Configs without kind:, best_val_acc / best_val_score, val_acc / val_score records, a multi-task test
    stored as a dict with test_delta_m beside it, results without a protocol name."""
    old_fewshot = {"name": "tiny", **{k: v for k, v in TINY_RECIPE.items() if k != "kind"}}
    fewshot = write_run(
        tmp_path / "old" / "fewshot",
        old_fewshot,
        {
            "status": "finished",
            "best_val_acc": 0.7,
            "best_step": 3,
            "steps": 6,
            "train_seconds": 2.0,
            "test": [{"way": 5, "shot": 1, "query": 2, "episodes": 10, "seed": 0, "accuracy": 0.6, "ci95": 0.1}],
        },
        [{"step": 3, "val_acc": 0.7, "time": 1.0}, {"step": 6, "val_acc": 0.65, "time": 2.0}],
    )
    per_task = {
        "a": {"rmse": 0.5, "mae": 0.4, "explained_variance": 0.6, "n": 10},
        "b": {"rmse": 0.7, "mae": 0.6, "explained_variance": 0.4, "n": 10},
    }
    old_multitask = {
        "name": "mtl-old",
        "data": {"dataset": "mtl_synthetic", "val": "val", "split_seed": 0},
        "model": {"backbone": "mlp", "widths": [32]},
        "algo": {"name": "protonet"},
        "mtl": {"architecture": "hps", "weighting": "ew"},
        "train": {"steps": 10, "meta_batch": 4, "precision": "fp32", "val_every": 5},
    }
    multitask = write_run(
        tmp_path / "old" / "mtl",
        old_multitask,
        {
            "status": "finished",
            "best_val_score": 0.55,
            "best_step": 5,
            "steps": 10,
            "test": {
                "split": "test",
                "per_task": per_task,
                "overall": {"explained_variance": 0.5, "rmse": 0.6},
                "primary": {"a": "rmse", "b": "rmse"},
                "weights": "best.pt",
            },
            "test_delta_m": {"value": 3.25, "baseline": "runs/single"},
        },
        [{"step": 5, "val_score": 0.55, "time": 1.0}, {"step": 10, "val_score": 0.5, "time": 2.0}],
    )

    first, second = read_run(fewshot), read_run(multitask)
    assert (first.kind, first.algorithm, first.validation) == (
        "fewshot",
        "protonet",
        ValidationRecord("accuracy", True, 0.7, 3),
    )
    assert first.test[0].label == "5w1s" and first.test[0].formatted() == "60.00±10.00%" and first.problems == []
    assert (second.kind, second.algorithm, second.dataset) == ("multitask", "hps+ew", "mtl_synthetic")
    assert second.validation == ValidationRecord("score", True, 0.55, 5)
    result = second.test[0]
    assert isinstance(result, MultiTaskResult) and result.delta_m == 3.25 and result.baseline == "runs/single"
    assert second.validation_curve() == ("score", [(5, 0.55), (10, 0.5)])

    code, out, _ = _cli(capsys, "runs", tmp_path / "old")
    assert code == 0 and "70.00%" in out and "2 tasks explained_variance 0.5000, rmse 0.6000, delta-m +3.25%" in out
    page = tmp_path / "old.md"
    assert _cli(capsys, "report", fewshot, multitask, "--out", page)[0] == 0
    text = page.read_text()
    assert "| a | RMSE (lower is better) | 0.5 | 0.4 | 0.6 | 10 |" in text
    assert "delta-m against runs/single | +3.25 % (positive: better than single-task)" in text


DEEP = b"a: " + b"[" * 10000 + b"]" * 10000 + b"\n"
BOMB = b"a: &a [x, x, x, x, x, x, x, x, x, x]\n" + b"".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n".encode() for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)

DAMAGED = {  # file -> (content, what the run's problems must say)
    "config not UTF-8": ("config.yaml", None, "config.yaml holds bytes that are not UTF-8"),
    "config nested 10000 deep": ("config.yaml", DEEP, "config.yaml"),
    "config referring to itself": ("config.yaml", b"a: &x [*x]\n", "config.yaml is too complex to read"),
    "config alias bomb": ("config.yaml", BOMB, "config.yaml is too complex to read"),
    "config not YAML": ("config.yaml", b"a: [1\n", "config.yaml is not valid YAML"),
    "config a list": ("config.yaml", b"- 1\n- 2\n", "config.yaml holds a list"),
    "summary a list": ("summary.json", b"[1, 2]", "holds a JSON list"),
    "summary a string": ("summary.json", b'"finished"', "holds a JSON str"),
    "summary nested 10000 deep": (
        "summary.json",
        b'{"test": ' + b"[" * 10000 + b"]" * 10000 + b"}",
        "nested too deeply",
    ),
    "summary not JSON": ("summary.json", b"{'test': nan", "is not valid JSON"),
    "summary not UTF-8": ("summary.json", b'{"status": "fini\xffshed"}', "not UTF-8"),
    "summary results of the wrong type": (
        "summary.json",
        json.dumps({"test": [{**FEWSHOT_TEST.to_dict(), "accuracy": "high"}]}).encode(),
        "1 test result(s) hold values of the wrong type",
    ),
    "affinity of the wrong shape": (
        "affinity.json",
        json.dumps({"tasks": ["a", "b"], "cosine": [[1, 2]]}).encode(),
        "its cosine matrix is not 2 x 2 numbers",
    ),
    "affinity without tasks": (
        "affinity.json",
        json.dumps({"tasks": "ab", "cosine": [[1]]}).encode(),
        "its tasks are not a list",
    ),
    "affinity a list": ("affinity.json", b"[[1, 0], [0, 1]]", "holds a JSON list"),
    "run.json not JSON": ("run.json", b'{"status": "runn', "is not valid JSON"),
    "run.json a number": ("run.json", b"12", "holds a JSON int"),
}


@pytest.mark.parametrize("case", list(DAMAGED))
def test_a_damaged_file_leaves_its_fields_unknown_and_every_command_says_what(case, tmp_path, capsys):
    """`runs` lists the run, `compare` shows what it can and notes the problem, `report` writes the page with
    the problem in a sentence; exit 0, and never a traceback."""
    name, content, needle = DAMAGED[case]
    run = fewshot_run(tmp_path / "runs" / "damaged")
    if content is None:  # a description with one Latin-1 byte in an otherwise valid config
        content = (run / name).read_bytes().replace(b"name: tiny", b"name: tiny\ndescription: caf\xe9")
    (run / name).write_bytes(content)
    record = read_run(run)
    assert any(needle in problem for problem in record.problems), record.problems

    code, out, err = _cli(capsys, "runs", tmp_path / "runs")
    assert code == 0 and out.splitlines()[2].split()[0] == "damaged"
    assert err == ["1 run(s) could not be read in full ('?' is unknown): `polyskill compare RUN` says what"]
    code, out, err = _cli(capsys, "compare", run, fewshot_run(tmp_path / "good"))
    assert code == 0 and "status" in out and any(needle in line for line in err)
    assert all(line.startswith("note: damaged: ") for line in err)
    page = tmp_path / "report.html"
    assert _cli(capsys, "report", run, "--out", page)[0] == 0
    assert "Could not read everything" in page.read_text()


def test_what_a_damaged_file_still_tells(tmp_path, capsys):
    """The other files still count: a run.json that cannot be read leaves the summary's status, a summary that
    cannot be read leaves the metrics' validation, a metrics line that is not UTF-8 costs that line only, and a
    number too large for a float that value only."""
    run = fewshot_run(tmp_path / "a")
    (run / "run.json").write_bytes(b"\x00\xff")
    record = read_run(run)
    assert record.status == "finished" and record.algorithm == "protonet" and record.recipe == "tiny"
    (run / "summary.json").write_bytes(b"[]")
    record = read_run(run)
    assert record.validation == ValidationRecord("accuracy", True, 0.75, 3) and record.test == []
    damaged = b'{"step": 9, "val_accuracy": 0.\xff9}\n{"step": 8, "val_accuracy": 1' + b"0" * 400 + b"}\n"
    (run / "metrics.jsonl").write_bytes(damaged + (run / "metrics.jsonl").read_bytes())
    assert read_run(run).validation_curve() == ("accuracy", [(3, 0.75), (6, 0.5)])
    code, out, _ = _cli(capsys, "runs", tmp_path)
    assert code == 0 and "75.00%" in out.splitlines()[2]
    (run / "config.yaml").write_bytes(b"kind: fewshot\nalgo: {name: nosuch}\n")
    record = read_run(run)
    assert record.kind == "fewshot" and record.algorithm is None  # as written; neither run.json nor a recipe says
    assert any("algo.name must be one of" in p for p in record.problems)


def test_an_affinity_of_the_right_shape_is_typed(tmp_path):
    run = fewshot_run(tmp_path / "a")
    (run / "affinity.json").write_text(
        json.dumps(
            {
                "tasks": ["a", "b"],
                "cosine": [[1, -0.5], [-0.5, 1]],
                "lookahead": [[0, float("nan")], [0.25, 0]],
                "steps": {"cosine": 4},
            }
        )
    )
    affinity = read_run(run).affinity
    assert affinity is not None and affinity.tasks == ["a", "b"] and affinity.steps == {"cosine": 4}
    assert affinity.matrices["cosine"] == [[1.0, -0.5], [-0.5, 1.0]]
    assert affinity.matrices["lookahead"][0][1] != affinity.matrices["lookahead"][0][1]  # NaN kept as unknown


@pytest.mark.parametrize(
    "args, needle",
    [
        (
            ["--out", "x.pdf"],
            "cannot write a report to x.pdf: a report is HTML (.html, .htm) or Markdown (.md, .markdown)",
        ),
        (["--out", "x"], "cannot write a report to x: a report is HTML"),
        (["--out", "x.html", "--format", "md"], "--format md disagrees with --out x.html, a html file name"),
        (["--out", "x.md", "--format", "html"], "--format html disagrees with --out x.md"),
        (["--out", "folder.html"], "it is a folder"),
    ],
)
def test_a_report_file_of_another_format_is_refused_before_anything_is_written(
    args, needle, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    run = fewshot_run(tmp_path / "run")
    (tmp_path / "folder.html").mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    code, _, err = _cli(capsys, "report", run, *args)
    assert code == 2 and len(err) == 1 and err[0].startswith("polyskill: error: ") and needle in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_compare_of_a_folder_that_is_no_run_is_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = _cli(capsys, "compare", tmp_path / "empty")
    expected = (
        f"polyskill: error: {tmp_path / 'empty'} is not a run directory (it has none of "
        "config.yaml, run.json, metrics.jsonl, summary.json)"
    )
    assert code == 2 and err == [expected]


def test_checked_values():
    """plain() copies what YAML loads and stops cycles, depth and size; conforms() checks JSON against types."""
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(TooComplex, match="nested more than"):
        plain({"a": loop})
    with pytest.raises(TooComplex, match="more than 5 values"):
        plain(list(range(10)), max_nodes=5)
    assert plain({1: [True, None, 2.5]}) == {"1": [True, None, 2.5]}
    assert conforms({"a": {"rmse": 1, "n": 2.5}}, dict[str, dict[str, float]])
    assert not conforms({"a": {"rmse": True}}, dict[str, dict[str, float]])
    assert conforms(None, int | None) and not conforms(1.5, int | None) and not conforms(True, int)
    assert not conforms(10**400, float)


def test_links_that_loop_and_a_huge_config_end_quickly(tmp_path, capsys):
    """Two links back to the folder would make 2^depth paths to walk; a 3 MiB config.yaml is not parsed."""
    fewshot_run(tmp_path / "runs" / "a")
    for name in ("up", "again"):
        (tmp_path / "runs" / name).symlink_to(tmp_path / "runs", target_is_directory=True)
    (tmp_path / "runs" / "self").symlink_to(tmp_path / "runs" / "self")
    assert find_runs(tmp_path / "runs") == [tmp_path / "runs" / "a"]
    (tmp_path / "runs" / "a" / "config.yaml").write_bytes(b"name: x\n" + b"#" * 3 * 2**20)
    assert read_run(tmp_path / "runs" / "a").problems == ["config.yaml is not read: it holds more than 1 MiB."]


def test_values_no_figure_can_show_leave_the_report_whole(tmp_path, capsys):
    """NaN, infinite and near-overflow metrics, a `$` in run and task names (matplotlib's math mode), an
    infinite affinity: the report is written, the figures drawn without them."""
    run = fewshot_run(tmp_path / "r$\\frac{a$")
    records = [
        {"step": 1, "loss": float("nan"), "acc": float("inf"), "time": 1.0},
        {"step": 2, "loss": 1e308, "acc": -1e308, "time": float("nan")},
        {"step": 3, "loss": 0.5, "acc": 0.5, "time": 3.0},
        {"step": [3], "val_accuracy": 0.5},
        {"step": 3, "val_accuracy": float("nan"), "time": 3.0},
        {"step": 4, "val_accuracy": float("inf")},
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    summary = json.loads((run / "summary.json").read_text())
    summary["test"] += [
        {**summary["test"][0], "way": 3, "accuracy": float("inf"), "ci95": float("nan")},
        {**summary["test"][0], "way": 10, "accuracy": 1e308},
        {**summary["test"][0], "way": 20, "accuracy": 0.4},
    ]
    summary["validation"]["best"] = float("nan")
    (run / "summary.json").write_text(json.dumps(summary))
    (run / "affinity.json").write_text(json.dumps({"tasks": ["$\\x$", "b"], "cosine": [[1, float("inf")], [1e300, 1]]}))
    page = tmp_path / "r.html"
    code, _, err = _cli(capsys, "report", run, "--out", page)
    assert code == 0 and err == [] and page.read_text().count("<img") == 3  # curves, protocols, affinity
    records = read_runs([run])
    assert [list(line.get_ydata()) for line in curves_figure(records).axes[0].get_lines()] == [[0.5]]
    ways = protocol_figure(records).axes[0]
    assert [list(bar.lines[0].get_xdata()) for bar in ways.containers] == [[5, 20]]  # 3, 10 ways: not finite
    assert _cli(capsys, "runs", tmp_path)[1].splitlines()[2].split()[5] == "nan%"


@pytest.mark.parametrize(
    "summary, needle",
    [
        ({"validation": {"metric": "accuracy", "best": 10**400}}, "its best validation accuracy is not a number"),
        ({"best_val_acc": 10**400, "best_step": 3}, "its best validation accuracy is not a number"),
    ],
)
def test_numbers_too_large_for_a_float_are_damage_not_a_crash(summary, needle, tmp_path, capsys):
    run = fewshot_run(tmp_path / "a")
    (run / "summary.json").write_text(json.dumps(summary))
    record = read_run(run)
    assert any(needle in problem for problem in record.problems), record.problems
    assert record.validation == ValidationRecord("accuracy", True, 0.75, 3)  # from the metrics, as if absent
    assert _cli(capsys, "runs", tmp_path)[0] == 0
