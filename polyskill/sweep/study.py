"""`run_sweep`: a hyperparameter search over a recipe with Optuna, each trial a normal run directory."""

from __future__ import annotations

import importlib
import multiprocessing
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ConfigError, RunError
from ..eval import ValidationRecord
from .pruning import PRUNERS, SAMPLERS, quiet_optuna
from .space import check_space, parse_space
from .storage import open_storage, sqlite_path
from .table import sweep_table
from .worker import SweepConfig, format_params, spawned, trial_dir, work

Echo = Callable[[str], None]
MISSING = "polyskill sweep needs optuna: pip install 'polyskill[sweep]'"


def _require_optuna() -> None:
    """Say in one line how to install optuna when it is missing, instead of an import traceback."""
    try:
        importlib.import_module("optuna")
    except ImportError:
        raise ConfigError(MISSING) from None


def _validation(recipe: Any) -> ValidationRecord:
    """The validation metric trials are selected on and its direction, as the recipe's kind declares them; a
    ConfigError if the recipe never validates."""
    from ..recipes import kind_of

    kind = kind_of(recipe)
    validation = kind.validation(recipe)
    if validation is None:
        raise ConfigError(
            f"a sweep selects trials on validation, and recipe {recipe.name} does not validate; turn it on with "
            f"{kind.validation_setting}"
        )
    return validation


def _open_study(config: SweepConfig, echo: Echo) -> Any:
    """Create the study, or load it and check that it is the same search (recipe, space, overrides)."""
    import optuna

    storage = open_storage(config.storage)
    wanted = optuna.study.StudyDirection.MAXIMIZE if config.higher_is_better else optuna.study.StudyDirection.MINIMIZE
    study = optuna.create_study(storage=storage, study_name=config.study, direction=wanted, load_if_exists=True)
    if study.direction != wanted:
        held = "maximises" if study.direction == optuna.study.StudyDirection.MAXIMIZE else "minimises"
        raise ConfigError(
            f"study {config.study} in {config.storage} {held} its objective, and this sweep must "
            f"{config.direction} validation {config.metric}: name another --study"
        )
    search = {"recipe": config.recipe, "params": list(config.params), "overrides": list(config.overrides)}
    known = study.user_attrs
    if not known:
        for key, value in search.items():
            study.set_user_attr(key, value)
        return study
    for key, value in search.items():
        if key in known and known[key] != value:
            raise ConfigError(
                f"study {config.study} in {config.storage} was started with {key} {known[key]!r}, "
                f"not {value!r}: continue it with the same command, or name another --study"
            )
    echo(f"continuing study {config.study}: {len(study.trials)} trial(s) so far")
    return study


def _check_out(out: Path, study: Any) -> None:
    """Refuse to start when the sweep folder holds trial runs the study does not know (a deleted database)."""
    known = {t.number for t in study.get_trials(deepcopy=False)}
    strays = sorted(
        p.name for p in out.glob("trial-*") if re.fullmatch(r"trial-\d+", p.name) and int(p.name[6:]) not in known
    )
    if strays:
        raise ConfigError(
            f"{out} holds {strays[0]} (and {len(strays) - 1} more), which study {study.study_name} "
            f"does not know: continue with the --storage that made them, or choose another --out"
        )


def _run_workers(config: SweepConfig, workers: int, echo: Echo) -> None:
    """Train with `workers` processes (spawned, one torch thread each), or in this process for one."""
    if workers == 1:
        work(config, echo=echo)
        return
    context = multiprocessing.get_context("spawn")
    lock = context.Lock()
    processes = [
        context.Process(target=spawned, args=(config, lock, i), name=f"sweep-worker-{i}") for i in range(workers)
    ]
    for process in processes:
        process.start()
    try:
        for process in processes:
            process.join()
    finally:
        for process in processes:
            if process.is_alive():
                process.join(timeout=30)
    failed = [f"worker {i}: exit code {p.exitcode}" for i, p in enumerate(processes) if p.exitcode != 0]
    if failed:
        raise RunError(
            f"{len(failed)} of {workers} sweep workers stopped early ({'; '.join(failed)}); the study "
            f"keeps every finished trial: run the same command again to continue"
        )


def _trial_rows(study: Any) -> list[dict[str, Any]]:
    return [
        {
            "number": t.number,
            "state": t.state.name,
            "value": t.value,
            "params": dict(t.params),
            "run": t.user_attrs.get("run"),
            "error": t.user_attrs.get("error"),
        }
        for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    ]


def run_sweep(
    recipe: str,
    params: list[str],
    trials: int,
    storage: str | None = None,
    *,
    study: str | None = None,
    workers: int = 1,
    out: str | Path | None = None,
    overrides: list[str] | None = None,
    root: str | None = None,
    sampler: str = "tpe",
    pruner: str = "median",
    seed: int | None = None,
    evaluate_best: bool = False,
    verbose: bool = False,
    echo: Echo = print,
) -> dict[str, Any]:
    """Search `params` (KEY=SPEC strings) of `recipe` for `trials` trials in total, shared by `workers`
    processes through the study in `storage` (default sqlite:///OUT/sweeps.db); every trial trains into
    OUT/trial-NNNN (default OUT: sweeps/STUDY). Running it again continues the same study up to `trials`.
    Returns the study's trials, the best one, and (with `evaluate_best`) its test results."""
    _require_optuna()
    from ..recipes import load
    from ..recipes.runner import evaluate_run

    if trials < 1 or workers < 1:
        raise ConfigError(f"--trials and --workers must be >= 1, got {trials} and {workers}")
    if sampler not in SAMPLERS or pruner not in PRUNERS:
        raise ConfigError(
            f"--sampler must be one of {', '.join(SAMPLERS)} and --pruner one of "
            f"{', '.join(PRUNERS)}; got {sampler!r} and {pruner!r}"
        )
    overrides = list(overrides or [])
    space = parse_space(params)
    check_space(space, recipe, overrides)
    base = load(recipe, overrides + list(space.fixed))
    validation = _validation(base)
    metric = validation.metric
    name = study or base.name
    out = Path(out) if out is not None else Path("sweeps") / name
    storage = storage or f"sqlite:///{out / 'sweeps.db'}"
    config = SweepConfig(
        recipe=str(recipe),
        params=tuple(params),
        overrides=tuple(overrides),
        trials=trials,
        storage=storage,
        study=name,
        out=str(out),
        root=root,
        sampler=sampler,
        pruner=pruner,
        seed=seed,
        metric=metric,
        higher_is_better=validation.higher_is_better,
        val_every=base.train.val_every,
        steps=base.train.steps,
        verbose=verbose,
    )
    quiet_optuna(verbose)
    opened = _open_study(config, echo)
    _check_out(out, opened)
    out.mkdir(parents=True, exist_ok=True)
    where = sqlite_path(storage) or f"a {storage.split('://')[0]} database"
    remaining = trials - len(opened.get_trials(deepcopy=False))
    workers = max(0, min(workers, remaining))
    best_of = "highest" if validation.higher_is_better else "lowest"
    echo(
        f"sweep {name}: {trials} trial(s) of {base.name} with {workers} worker(s), selected on the {best_of} "
        f"validation {metric}; "
        f"runs in {out}, study in {where}"
    )
    if workers:
        _run_workers(config, workers, echo)
    rows = _trial_rows(opened)
    for line in sweep_table(rows, metric, validation.higher_is_better):
        echo(line)
    result: dict[str, Any] = {
        "study": name,
        "storage": storage,
        "out": str(out),
        "metric": metric,
        "direction": config.direction,
        "trials": rows,
        "best": None,
    }
    done = [r for r in rows if r["state"] == "COMPLETE"]
    if not done:
        echo("no trial completed: nothing to select")
        return result
    best = (max if validation.higher_is_better else min)(done, key=lambda r: r["value"])
    result["best"] = best
    echo(
        f"best: trial {best['number']} {metric} {best['value']:.4f} "
        + format_params(best["params"])
        + f" -> {best['run']}"
    )
    if evaluate_best:
        result["test"] = evaluate_run(best["run"] or trial_dir(out, best["number"]), root=root, echo=echo).get("test")
    return result
