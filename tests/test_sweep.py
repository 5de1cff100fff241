"""polyskill sweep: workers share one study and one total, every trial is a run, pruning stops runs, and every
bad spec is one clear ConfigError."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest
import yaml

optuna = pytest.importorskip("optuna")

from conftest import tiny_recipe  # noqa: E402

from polyskill.errors import ConfigError  # noqa: E402
from polyskill.recipes import load  # noqa: E402
from polyskill.recipes.runner import train_run  # noqa: E402
from polyskill.sweep import parse_param, parse_space, run_sweep  # noqa: E402
from polyskill.sweep.command import register  # noqa: E402
from polyskill.sweep.pruning import PruningSink  # noqa: E402
from polyskill.sweep.space import yaml_value  # noqa: E402
from polyskill.sweep.worker import SweepConfig, objective  # noqa: E402

LR = "train.lr=loguniform(1e-4,1e-1)"


@pytest.fixture
def tiny(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tiny_recipe(tmp_path)


def _read(run: Path, name: str) -> dict:
    return json.loads((run / name).read_text())


def test_two_workers_run_the_total_once_each_into_run_directories(tiny, capfd):
    out = tiny.parent / "sweep"
    result = run_sweep(str(tiny), [LR, "model.hidden=choice(4,8)", "train.val_every=2"], 6, workers=2, out=out, seed=0)
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'sweeps.db'}")
    trials = study.get_trials()
    assert sorted(t.number for t in trials) == list(range(6))
    assert {t.state for t in trials} <= {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
    best_of_runs, pids = [], set()
    for trial in trials:
        run = Path(trial.user_attrs["run"])
        assert run == out / f"trial-{trial.number:04d}"
        config = yaml.safe_load((run / "config.yaml").read_text())
        assert 1e-4 <= config["train"]["lr"] <= 1e-1
        assert config["train"]["lr"] == pytest.approx(trial.params["train.lr"])
        assert config["model"]["hidden"] == trial.params["model.hidden"] and config["train"]["val_every"] == 2
        status = _read(run, "run.json")["status"]
        pids.add(_read(run, "run.json")["pid"])
        if trial.state == optuna.trial.TrialState.COMPLETE:
            assert status == "finished"
            best_of_runs.append(_read(run, "summary.json")["validation"]["best"])
        else:
            assert status == "pruned"
    assert study.best_value == pytest.approx(max(best_of_runs))
    assert len(pids) == 2  # both worker processes trained trials
    assert result["best"]["number"] == study.best_trial.number and len(result["trials"]) == 6
    printed = capfd.readouterr().out
    assert all(f"trial {n} " in printed for n in range(6)) and "best: trial" in printed

    more = run_sweep(str(tiny), [LR, "model.hidden=choice(4,8)", "train.val_every=2"], 7, out=out, seed=0)
    assert [r["number"] for r in more["trials"]] == list(range(7))
    with pytest.raises(ConfigError, match="was started with params"):
        run_sweep(str(tiny), [LR], 8, out=out)


class FakeTrial:
    """Reports go into a list; the pruner always says stop."""

    def __init__(self) -> None:
        self.reports: list[tuple[float, int]] = []

    def report(self, value: float, step: int) -> None:
        self.reports.append((value, step))

    def should_prune(self) -> bool:
        return True


def test_pruning_sink_stops_the_run_and_marks_it_pruned(tiny):
    trial = FakeTrial()
    with pytest.raises(optuna.TrialPruned, match="pruned at step 3"):
        train_run(
            load(tiny),
            tiny.parent / "run",
            progress=False,
            evaluate=False,
            sinks=[PruningSink(trial, "accuracy", last_step=6)],
        )
    assert [step for _, step in trial.reports] == [3]
    assert _read(tiny.parent / "run", "run.json")["status"] == "pruned"

    last = FakeTrial()
    sink = PruningSink(last, "mse", last_step=6)
    sink.write({"step": 6, "val_mse": 0.5, "time": 1.0})
    sink.write({"step": 5, "val_accuracy": 0.9, "time": 1.0})  # another metric: not this sweep's
    sink.write({"step": 4, "loss": 1.0})
    assert last.reports == [(0.5, 6)]


class AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study, trial) -> bool:
        return True


def test_objective_in_a_study_records_pruned_and_failed_trials(tiny):
    config = SweepConfig(
        recipe=str(tiny),
        params=(LR,),
        overrides=(),
        trials=2,
        storage="",
        study="s",
        out=str(tiny.parent / "sw"),
        root=None,
        sampler="tpe",
        pruner="median",
        seed=0,
        metric="accuracy",
        higher_is_better=True,
        val_every=3,
        steps=6,
    )
    study = optuna.create_study(direction="maximize", pruner=AlwaysPrune())
    study.optimize(objective(config, config.space()), n_trials=1)
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert _read(Path(trial.user_attrs["run"]), "run.json")["status"] == "pruned"

    result = run_sweep(str(tiny), [LR, "model.init=no/such/run"], 2, out=tiny.parent / "failing")
    assert [r["state"] for r in result["trials"]] == ["FAIL", "FAIL"] and result["best"] is None
    assert "no/such/run" in result["trials"][0]["error"]


REGRESSION = [
    "data.val=true",
    "train.steps=4",
    "train.val_every=2",
    "train.val_episodes=4",
    "train.meta_batch=2",
    "train.log_every=2",
    "eval.episodes=4",
    "eval.steps=[1]",
]


def test_a_regression_sweep_selects_the_lowest_validation_mse(tiny):
    """MSE is lower-is-better: the study minimises, the pruner is told MSE, the best trial has the lowest."""
    out = tiny.parent / "regression"
    result = run_sweep("sinusoid-maml", [LR], 3, out=out, overrides=REGRESSION, pruner="none", seed=0)
    study = optuna.load_study(study_name="sinusoid-maml", storage=f"sqlite:///{out / 'sweeps.db'}")
    assert study.direction == optuna.study.StudyDirection.MINIMIZE and result["metric"] == "mse"
    values = {}
    for trial in study.get_trials():
        run = Path(trial.user_attrs["run"])
        curve = [
            r["val_mse"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "val_mse" in r
        ]
        assert trial.value == min(curve) == _read(run, "summary.json")["validation"]["best"]
        assert list(trial.intermediate_values.values()) == curve
        values[trial.number] = trial.value
    assert result["best"]["number"] == min(values, key=values.get)

    with pytest.raises(ConfigError, match="minimises its objective, and this sweep must maximize validation accuracy"):
        run_sweep(str(tiny), [LR], 4, out=out, study="sinusoid-maml")


FORMS = "accepted forms: KEY=loguniform(LOW,HIGH)"


@pytest.mark.parametrize(
    "spec, why",
    [
        ("train.lr", "expected KEY=SPEC"),
        ("=loguniform(1,2)", "expected KEY=SPEC"),
        ("train.lr=", "no value"),
        ("train.lr=logunif(1e-4,1e-2)", "unknown distribution 'logunif'"),
        ("train.lr=loguniform(1e-4)", "takes two bounds"),
        ("train.lr=loguniform(1e-4,1e-2,1)", "takes two bounds"),
        ("train.lr=loguniform(0,1)", "log scale needs LOW > 0"),
        ("train.lr=uniform(2,1)", "LOW must be below HIGH"),
        ("train.lr=uniform(a,1)", "bounds must be numbers"),
        ("train.lr=uniform(1,.inf)", "bounds must be finite"),
        ("model.hidden=int(1.5,8)", "bounds must be integers"),
        ("model.hidden=int(1,8,linear)", "can only be log"),
        ("model.hidden=intlog(0,8)", "log scale needs LOW > 0"),
        ("train.optimizer=choice()", "at least one value"),
        ("train.optimizer=choice(adam,adam)", "lists a value twice"),
        ("model.widths=choice([40,40],[80,)", "cannot read the arguments"),
    ],
)
def test_malformed_specs_are_one_clear_error(spec, why):
    with pytest.raises(ConfigError) as caught:
        parse_param(spec)
    message = str(caught.value)
    assert message.startswith(f"bad --param {spec!r}: ") and why in message and FORMS in message
    assert "\n" not in message


def test_specs_parse_into_distributions_and_overrides_the_recipe_reads_back():
    lr = parse_param("train.lr=loguniform(1e-4, 1e-2)")
    assert lr.distribution() == optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)
    assert parse_param("model.hidden=int(4,64,log)").distribution() == parse_param("x=intlog(4,64)").distribution()
    assert parse_param("x=int(1,3)").distribution() == optuna.distributions.IntDistribution(1, 3)
    widths = parse_param("model.widths=choice([40,40],[80,80])")
    assert widths.choices == ([40, 40], [80, 80]) and widths.labels() == ["[40, 40]", "[80, 80]"]
    assert parse_param("x=choice(1e-3, adam, null, true)").choices == (0.001, "adam", None, True)
    assert parse_param("train.steps=100") == ("train.steps", "train.steps=100")
    recipe = load(
        "sinusoid-maml", [lr.override(1e-05), widths.override([80, 80]), f"train.optimizer={yaml_value('sgd')}"]
    )
    assert recipe.train.lr == 1e-05 and recipe.model.widths == [80, 80] and recipe.train.optimizer == "sgd"
    with pytest.raises(ConfigError, match="given twice"):
        parse_space([LR, "train.lr=uniform(0.1,1)"])
    with pytest.raises(ConfigError, match="at least one searched"):
        parse_space(["train.steps=100"])


@pytest.mark.parametrize(
    "params, needle",
    [
        (
            ["train.lrr=loguniform(1e-4,1e-2)"],
            (
                "bad --param 'train.lrr=loguniform(1e-4,1e-2)': recipe tiny: unknown key "
                "'train.lrr' (did you mean 'train.lr'?)"
            ),
        ),
        (["train.steps=int(0,4)"], "train.steps must be >= 1, got 0"),
        (["train.optimizer=choice(adam,rmsprop)"], "train.optimizer must be one of adam, sgd"),
        ([LR, "train.stepz=3"], "bad --param 'train.stepz=3'"),
    ],
)
def test_bad_recipe_keys_and_values_fail_before_any_trial(tiny, params, needle):
    with pytest.raises(ConfigError) as caught:
        run_sweep(str(tiny), params, 2, out=tiny.parent / "never")
    assert needle in str(caught.value)
    assert not (tiny.parent / "never").exists()


def test_refusals(tiny, monkeypatch):
    with pytest.raises(ConfigError, match="selects trials on validation"):
        run_sweep("sinusoid-maml", [LR], 2, out=tiny.parent / "s")
    with pytest.raises(ConfigError, match="--storage must be a database URL"):
        run_sweep(str(tiny), [LR], 2, storage="sweeps.db", out=tiny.parent / "s")
    (tiny.parent / "stray" / "trial-0000").mkdir(parents=True)
    with pytest.raises(ConfigError, match="holds trial-0000"):
        run_sweep(str(tiny), [LR], 2, out=tiny.parent / "stray")
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(ConfigError, match=r"pip install 'polyskill\[sweep\]'"):
        run_sweep(str(tiny), [LR], 2)


def test_command_line(tiny, capsys):
    parser = argparse.ArgumentParser(prog="polyskill")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        [
            "sweep",
            str(tiny),
            "--param",
            LR,
            "--trials",
            "2",
            "--set",
            "train.steps=3",
            "--pruner",
            "none",
            "--sampler",
            "random",
            "--seed",
            "1",
            "--evaluate-best",
        ]
    )
    assert args.handler(args) == 0
    printed = capsys.readouterr().out
    assert "sweep tiny: 2 trial(s)" in printed and "trial 1 complete" in printed and "test 5-way 1-shot" in printed
    assert (Path("sweeps/tiny/sweeps.db")).is_file() and (Path("sweeps/tiny/trial-0001/config.yaml")).is_file()
    best = printed.split("best: trial ")[1].split()[0]
    assert _read(Path(f"sweeps/tiny/trial-{int(best):04d}"), "summary.json")["test"][0]["episodes"] == 10
    with pytest.raises(SystemExit):
        parser.parse_args(["sweep", str(tiny), "--param", LR, "--pruner", "sometimes"])
