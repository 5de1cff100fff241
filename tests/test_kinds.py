"""Problem kinds: the registry, regression runs that validate and keep their best weights, and run directories
written before recipes had `kind:`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import tiny_recipe

from polyskill.cli import main
from polyskill.errors import ConfigError
from polyskill.recipes import KINDS, kind_of, load_config, recipe_from_dict, recipe_to_dict
from polyskill.train import load_checkpoint, read_metrics


@pytest.mark.parametrize("name", sorted(KINDS))
def test_every_kind_loads_its_defaults_and_writes_kind_first(name):
    recipe = recipe_from_dict({"kind": name})
    assert kind_of(recipe) is KINDS[name]
    values = recipe_to_dict(recipe)
    assert next(iter(values)) == "kind" and values["kind"] == name
    assert recipe_from_dict(values) == recipe  # what config.yaml holds reads back as the same recipe
    for other in KINDS.values():  # a section only another kind has is named as such
        foreign = {f for f in vars(recipe_from_dict({"kind": other.name})) if f not in vars(recipe)}
        for section in foreign:
            with pytest.raises(ConfigError, match=f"section '{section}' is not used by {name} recipes"):
                recipe_from_dict({"kind": name, section: {}})


def test_a_regression_run_validates_by_mse_and_keeps_the_lowest(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "sinusoid-maml", "--out", str(run), "--quiet"]
    for setting in (
        "data.val=true",
        "train.steps=40",
        "train.val_every=5",
        "train.val_episodes=20",
        "train.meta_batch=4",
        "train.log_every=5",
        "eval.episodes=20",
        "eval.steps=[1]",
    ):
        args += ["--set", setting]
    assert main(args) == 0, capsys.readouterr().err
    summary = json.loads((run / "summary.json").read_text())
    validation = summary["validation"]
    assert (validation["metric"], validation["higher_is_better"]) == ("mse", False)
    values = {r["step"]: r["val_mse"] for r in read_metrics(run / "metrics.jsonl") if "val_mse" in r}
    assert sorted(values) == [5, 10, 15, 20, 25, 30, 35, 40]
    assert validation["best"] == min(values.values()) and values[validation["best_step"]] == validation["best"]
    assert min(values.values()) < max(values.values())  # the choice was not trivial (observed 8 distinct values)
    assert load_checkpoint(run / "best.pt")["step"] == validation["best_step"]
    [test] = summary["test"]
    assert (
        test["protocol"] == "regression"
        and test["weights"] == f"best.pt (step {validation['best_step']})"
        and test["steps"] == 1
    )


def _old_format(run: Path) -> None:
    """Rewrite a run directory as the version before `kind:` wrote it: every section of every kind in
    config.yaml, the test results as a bare list and best_val_acc in summary.json, val_acc records."""
    config = yaml.safe_load((run / "config.yaml").read_text())
    del config["kind"]
    config["data"].update({"split_seed": 0, "tasks": None, "modes": 5, "as_tasks": False})
    config["mtl"] = {"architecture": "hps", "weighting": "ew", "options": {}, "batch_size": 256}
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    summary = json.loads((run / "summary.json").read_text())
    old = {
        "status": summary["status"],
        "steps": summary["steps"],
        "best_val_acc": summary["validation"]["best"],
        "best_step": summary["validation"]["best_step"],
        "test": [{k: v for k, v in r.items() if k != "protocol"} for r in summary["test"]],
    }
    (run / "summary.json").write_text(json.dumps(old))
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    renamed = [{("val_acc" if k == "val_accuracy" else k): v for k, v in r.items()} for r in lines]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in renamed))


def test_a_run_of_the_version_before_kinds_is_read_evaluated_and_resumed(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", str(tiny_recipe(tmp_path)), "--out", str(run), "--quiet"]) == 0
    _old_format(run)
    recipe = load_config(yaml.safe_load((run / "config.yaml").read_text()))
    assert recipe.kind == "fewshot" and recipe.data.dataset == "omniglot"
    assert main(["eval", str(run), "--way", "3", "--episodes", "4", "--quiet"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert [(r["way"], r.get("protocol")) for r in summary["test"]] == [(5, "few_shot"), (3, "few_shot")]
    assert summary["validation"]["metric"] == "accuracy"  # read from best_val_acc
    assert main(["train", "--resume", str(run), "--set", "train.steps=8", "--quiet", "--no-eval"]) == 0
    assert load_checkpoint(run / "last.pt")["step"] == 8
    assert main(["runs", str(tmp_path)]) == 0
    assert "omniglot" in capsys.readouterr().out
