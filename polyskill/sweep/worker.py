"""One sweep worker: trains trials of a study into run directories until the study holds its total."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import PolyskillError
from .pruning import PruningSink, make_pruner, make_sampler, quiet_optuna
from .space import Space, parse_space
from .storage import open_storage
from .table import cell

Echo = Callable[[str], None]


@dataclass(frozen=True)
class SweepConfig:
    """Everything a worker process needs to join a sweep (picklable, for spawned processes)."""

    recipe: str
    params: tuple[str, ...]
    overrides: tuple[str, ...]
    trials: int
    storage: str
    study: str
    out: str
    root: str | None
    sampler: str
    pruner: str
    seed: int | None
    metric: str
    higher_is_better: bool
    val_every: int
    steps: int
    verbose: bool = False

    def space(self) -> Space:
        """The searched parameters and fixed overrides, parsed from `params`."""
        return parse_space(list(self.params))

    @property
    def direction(self) -> str:
        """The study's direction: "maximize" or "minimize" the validation metric."""
        return "maximize" if self.higher_is_better else "minimize"


def trial_dir(out: str | Path, number: int) -> Path:
    """Where trial `number` trains: a normal run directory inside the sweep's folder."""
    return Path(out) / f"trial-{number:04d}"


def objective(config: SweepConfig, space: Space) -> Callable[[Any], float]:
    """The function Optuna optimises: train one trial's recipe, report validation to the pruner, and return the
    best validation figure as the run directory records it (never a test figure: trials are selected on
    validation only)."""
    from ..recipes import load
    from ..recipes.runner import train_run
    from ..rundir import read_run

    def train_trial(trial: Any) -> float:
        values = {param.key: param.suggest(trial) for param in space.params}
        run = trial_dir(config.out, trial.number)
        trial.set_user_attr("run", str(run))
        try:
            recipe = load(config.recipe, list(config.overrides) + space.overrides(values))
            train_run(
                recipe,
                run,
                root=config.root,
                progress=False,
                evaluate=False,
                echo=lambda _: None,
                sinks=[PruningSink(trial, config.metric, recipe.train.steps)],
            )
        except PolyskillError as exc:
            trial.set_user_attr("error", str(exc))
            raise
        validation = read_run(run).validation
        if validation is None or validation.best is None or validation.metric != config.metric:
            trial.set_user_attr("error", f"{run} recorded no validation {config.metric}")
            raise PolyskillError(f"{run} recorded no validation {config.metric}")
        return validation.best

    return train_trial


def worker_seed(seed: int | None, index: int, start: int) -> int | None:
    """The sampler seed of worker `index` joining a study that holds `start` trials: distinct per worker and
    per continuation, so that workers (and a continued sweep) do not replay the same random draws."""
    return None if seed is None else (seed * 1_000_003 + index * 10_007 + start) % 2**32


class Gate:
    """Lets one worker at a time create a trial, so that workers sharing the lock never start more than the
    study's total between them: a worker counts the study's trials and creates its next one while holding
    the lock, and lets go once that trial exists."""

    def __init__(self, lock: Any) -> None:
        self.lock, self.held = lock, False

    def enter(self) -> None:
        self.lock.acquire()
        self.held = True

    def leave(self) -> None:
        if self.held:
            self.held = False
            self.lock.release()


def format_params(params: dict[str, Any]) -> str:
    """`key=value` pairs, numbers to 4 significant digits."""
    return " ".join(f"{k}={cell(v)}" for k, v in params.items())


def trial_line(trial: Any, metric: str) -> str:
    """One line about a finished trial: number, state, value, parameters, run directory (and why it failed)."""
    value = "-" if trial.value is None else f"{trial.value:.4f}"
    params = format_params(trial.params)
    seconds = f" {trial.duration.total_seconds():.1f} s" if trial.duration else ""
    line = (
        f"trial {trial.number} {trial.state.name.lower()} {metric} {value} {params}{seconds} "
        f"-> {trial.user_attrs.get('run', '-')}"
    )
    error = trial.user_attrs.get("error")
    return f"{line} ({error})" if error and trial.state.name == "FAIL" else line


def work(config: SweepConfig, lock: Any = None, index: int = 0, echo: Echo | None = None) -> None:
    """Train trials until the study holds `config.trials` of them (any state), sharing `lock` with the other
    workers of this machine; a trial that fails with a polyskill error is recorded as FAIL and the sweep goes
    on."""
    import optuna

    echo = echo or (lambda line: print(line, flush=True))  # noqa: T201 (a worker's one line per trial)
    storage = open_storage(config.storage)
    study = optuna.load_study(study_name=config.study, storage=storage)
    study.sampler = make_sampler(config.sampler, worker_seed(config.seed, index, len(study.trials)))
    study.pruner = make_pruner(config.pruner, config.val_every, config.steps)
    gate = Gate(lock if lock is not None else threading.Lock())
    train_trial = objective(config, config.space())

    def gated(trial: Any) -> float:
        gate.leave()
        return train_trial(trial)

    def report(_: Any, trial: Any) -> None:
        echo(trial_line(trial, config.metric))

    while True:
        gate.enter()
        try:
            if len(study.get_trials(deepcopy=False)) >= config.trials:
                return
            study.optimize(gated, n_trials=1, catch=(PolyskillError,), callbacks=[report])
        finally:
            gate.leave()


def spawned(config: SweepConfig, lock: Any, index: int) -> None:
    """The entry point of a worker process: one torch thread (the workers share the cores), Optuna quiet,
    a polyskill error as one line on stderr with exit code 2, and Ctrl-C without a traceback (the main
    process reports it; the running trial is recorded as FAIL, its run as interrupted)."""
    import torch

    torch.set_num_threads(1)
    quiet_optuna(config.verbose)
    try:
        work(config, lock, index)
    except PolyskillError as exc:
        print(f"polyskill sweep: worker {index}: {exc}", file=sys.stderr, flush=True)  # noqa: T201
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
