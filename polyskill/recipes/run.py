"""A run from a recipe: train into a run directory, evaluate it, and evaluate it again later."""

from __future__ import annotations

import inspect
import os
import socket
from pathlib import Path
from typing import Any, Callable

import torch
import yaml

from ..distributed import SINGLE, DistContext, from_environment
from ..distributed.collectives import barrier
from ..errors import ConfigError, RunError
from ..eval.few_shot import FewShotResult, few_shot
from ..eval.regression import RegressionResult, regression
from ..eval.task_data import TaskDataResult, adapt_each_task
from ..meta.base import FewShotAlgorithm
from ..train.checkpoint import load_checkpoint, read_json, write_json, write_text
from ..train.episodic import DivergedError, RecordSink, Trainer
from ..train.run_status import end_run, read_status, start_run
from ..train.transfer import load_backbone
from . import apply_overrides, read_yaml, recipe_from_dict, recipe_to_dict
from .build import algorithm, dataset, is_regression, tasks, training_tasks
from .mtl_build import is_multitask, mtl_data
from .schema import Recipe

Echo = Callable[[str], None]


def _protocols(recipe: Recipe, ways: list[int] | None = None,
               shots: list[int] | None = None) -> list[tuple[int, int, int | None]]:
    """(way, shot, adaptation steps) to test: the given ones, else the recipe's eval section (shots default
    to training's, steps to the algorithm's own)."""
    ways = [1] if is_regression(recipe) else ways or recipe.eval.ways
    shots = shots or recipe.eval.shots or [recipe.episodes.shot]
    steps: list[int | None] = list(recipe.eval.steps or [None])
    return [(way, shot, step) for step in steps for shot in shots for way in ways]


def _protocol_key(result: dict[str, Any]) -> tuple:
    """What identifies a protocol in summary.json (everything but the measured values)."""
    measured = ("accuracy", "mse", "ci95", "weights", "explained_variance", "rmse", "mae", "tasks", "examples")
    return tuple(sorted((k, v) for k, v in result.items() if k not in measured))


def run_protocol(algo: FewShotAlgorithm, recipe: Recipe, split: str, way: int, shot: int, steps: int | None,
                 query: int, episodes: int, seed: int,
                 root: str | None, dist: DistContext = SINGLE) -> FewShotResult | RegressionResult | TaskDataResult:
    """One test protocol on fixed tasks of `split`, with `steps` adaptation steps for gradient-based learners;
    a meta-learner over a multi-task data set's tasks learns each task from its training examples instead."""
    if getattr(type(algo), "needs_head", False) and not is_regression(recipe) and way != recipe.episodes.way:
        raise ConfigError(f"{recipe.algo['name']} was trained with a {recipe.episodes.way}-way output layer and "
                          f"cannot be tested on {way}-way tasks; train it with --set episodes.way={way}")
    if steps is not None and not hasattr(algo, "eval_steps"):
        raise ConfigError(f"eval.steps applies to gradient-based learners, not to {recipe.algo['name']}")
    default_steps = getattr(algo, "eval_steps", None)
    if steps is not None:
        algo.eval_steps = steps
    try:
        if recipe.data.as_tasks:
            train = tasks(recipe, "train", 1, 1, 0, seed, root)
            return adapt_each_task(algo, train, mtl_data(recipe, split, root), split, steps)
        if is_regression(recipe):
            sampler = tasks(recipe, split, 1, shot, query, seed, root)
            return regression(algo, sampler, episodes, seed, steps, dist=dist)
        result = few_shot(algo, dataset(recipe, split, root), way, shot, query, episodes, seed=seed, dist=dist,
                          precision=recipe.train.precision, device=recipe.train.device)
        return FewShotResult(**{**result.to_dict(), "steps": steps})
    finally:
        if default_steps is not None:
            algo.eval_steps = default_steps


def train_run(recipe: Recipe, out: str | os.PathLike, *, resume: bool = False, root: str | None = None,
              progress: bool = True, evaluate: bool = True, echo: Echo = print,
              sinks: list[RecordSink] | None = None) -> dict[str, Any]:
    """Train `recipe` into `out` (or continue the run there) and, unless told not to, run its test protocols;
    `sinks` receive every metrics record besides the recipe's loggers (a sweep's pruner, say)."""
    out = Path(out)
    config_path = out / "config.yaml"
    ctx = from_environment(recipe.train.device)
    try:
        return _train_run(recipe, out, config_path, ctx, resume=resume, root=root, progress=progress,
                          evaluate=evaluate, echo=echo, sinks=sinks)
    except RuntimeError as exc:  # a peer died, hung past the timeout, or cannot be reached
        if not (ctx.active and _peer_failure(exc)):
            raise
        raise RunError(f"rank {ctx.rank}: another process of this {ctx.world}-process run failed or stopped "
                       f"responding ({str(exc).splitlines()[0][:160]}); the last checkpoint in {out} is whole: "
                       f"continue with polyskill train --resume {out} --nproc {ctx.world}") from None
    finally:
        if ctx.active and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


#: what the collectives say when another rank is gone (gloo and NCCL, a closed connection, a timeout)
_PEER_FAILURE = ("gloo", "nccl", "connection closed", "connection reset", "timed out", "timeout")


def _peer_failure(exc: RuntimeError) -> bool:
    """Whether an error raised during a distributed run means another rank failed or hangs."""
    return isinstance(exc, torch.distributed.DistError) or any(m in str(exc).lower() for m in _PEER_FAILURE)


def _train_run(recipe: Recipe, out: Path, config_path: Path, ctx: DistContext, *, resume: bool, root: str | None,
               progress: bool, evaluate: bool, echo: Echo, sinks: list[RecordSink] | None) -> dict[str, Any]:
    """train_run's work, as rank `ctx.rank`: rank 0 checks and writes the run directory, every rank trains."""
    if not ctx.main:
        echo = _silent
    if resume and ctx.main:
        live = read_status(out)
        if live.get("status") == "running" and live.get("host") == socket.gethostname():
            raise RunError(f"{out} is being trained right now by process {live.get('pid')}; stop it first "
                           f"(two processes would write over each other's checkpoints)")
        if not (out / "last.pt").is_file():
            raise RunError(f"cannot resume {out}: it has no last.pt checkpoint yet (it stopped before its first); "
                           f"delete it or train into another --out")
    elif not resume and ctx.main and (config_path.exists() or (out / "last.pt").exists()):
        raise RunError(f"{out} already holds a run; pass --resume to continue it, or choose another --out")
    if is_multitask(recipe):
        from .mtl_run import train_mtl_run
        return train_mtl_run(recipe, out, resume=resume, root=root, progress=progress, evaluate=evaluate, echo=echo,
                             sinks=sinks, dist=ctx)
    algo = algorithm(recipe, root)
    if "num_classes" in inspect.signature(type(algo)).parameters:
        recipe.algo["num_classes"] = algo.num_classes  # recorded, so evaluation rebuilds the same classifier
    if recipe.model.init and not resume:
        loaded = load_backbone(algo.backbone, recipe.model.init)
        echo(f"backbone started from {recipe.model.init} ({len(loaded)} tensors)")
    spec, val = recipe.episodes, recipe.validation
    train_sampler = training_tasks(recipe, algo, root, rank=ctx.rank)
    val_sampler = None
    if recipe.data.val is not None:
        if is_regression(recipe):
            raise ConfigError("regression runs are not validated by accuracy: set data.val to null")
        val_sampler = tasks(recipe, "val", val.way, val.shot or spec.shot, val.query, recipe.eval.seed, root)
    _, summary = fit_into(out, recipe, lambda sinks: Trainer(algo, train_sampler, recipe.train, out=out,
                                                             val=val_sampler, progress=progress, sinks=sinks,
                                                             dist=ctx),
                          resume, echo, sinks, dist=ctx)
    if ctx.main:
        write_json(out / "summary.json", summary)
    if evaluate:
        barrier(ctx)  # rank 0 has written the weights and summary the others read next
        summary = evaluate_run(out, root=root, echo=echo, dist=ctx)
    return summary


def _algorithm_label(recipe: Recipe) -> str:
    """What `polyskill runs` shows as the algorithm: the meta-learner, or architecture+aggregator."""
    return f"{recipe.mtl.architecture}+{recipe.mtl.weighting}" if is_multitask(recipe) else recipe.algo["name"]


def _silent(_: str) -> None:
    """Ranks other than 0 say nothing."""


def fit_into(out: Path, recipe: Recipe, make_trainer: Callable[[list[RecordSink]], Trainer], resume: bool,
             echo: Echo, sinks: list[RecordSink] | None = None,
             dist: DistContext = SINGLE) -> tuple[Trainer, dict[str, Any]]:
    """Write the recipe into `out` (only now that data and model are known to be good), train (continuing
    from the last checkpoint with `resume`) and return the trainer and its summary; run.json records how
    training ended, whatever ended it."""
    from ..track import open_trackers

    if not dist.main:  # the other ranks train beside rank 0 and write nothing
        trainer = make_trainer([])
        if resume:
            trainer.resume()
        return trainer, trainer.fit()
    config = recipe_to_dict(recipe)
    trackers = open_trackers(recipe.train.loggers, out, config)  # a missing package stops before the run exists
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    trainer = make_trainer(trackers + list(sinks or []))
    start_run(out, recipe.name, _algorithm_label(recipe), recipe.data.dataset, recipe.train.device)
    try:
        if resume:
            try:
                trainer.resume()
            except BaseException:
                trainer.close_sinks()
                raise
            echo(f"resuming {out} at step {trainer.step}")
        summary = trainer.fit()  # closes the sinks, however it ends
    except KeyboardInterrupt:
        end_run(out, "interrupted", "stopped by the user; continue with polyskill train --resume")
        raise
    except DivergedError as exc:
        end_run(out, "diverged", str(exc))
        raise
    except BaseException as exc:
        end_run(out, "pruned" if type(exc).__name__ == "TrialPruned" else "failed", str(exc) or type(exc).__name__)
        raise
    end_run(out, summary["status"])
    summary["recipe"] = recipe.name
    return trainer, summary


def load_weights(module: torch.nn.Module, weights: Path, run: Path) -> None:
    """Load a run's checkpoint into `module`, or say clearly that it does not fit the run's config."""
    state = load_checkpoint(weights)
    try:
        module.load_state_dict(state["model"])
    except (KeyError, TypeError, RuntimeError) as exc:
        raise RunError(f"{weights} does not fit the model that {run / 'config.yaml'} describes "
                       f"({str(exc).splitlines()[0]})") from None


def load_run(run: str | os.PathLike) -> tuple[Recipe, Path]:
    """The recipe a run was trained with and the path of its best (else last) weights."""
    run = Path(run)
    if not run.is_dir():
        raise RunError(f"no run directory at {run}")
    if not (run / "config.yaml").is_file():
        raise RunError(f"{run} is not a run directory: it has no config.yaml")
    recipe = recipe_from_dict(read_yaml(run / "config.yaml"))
    for name in ("best.pt", "last.pt"):
        if (run / name).is_file():
            return recipe, run / name
    raise RunError(f"run {run} has no checkpoint yet (best.pt or last.pt)")


def trained_algorithm(run: str | os.PathLike, root: str | None = None) -> tuple[Recipe, FewShotAlgorithm]:
    """The recipe of a trained few-shot run and its algorithm with the run's best (else last) weights."""
    recipe, weights = load_run(run)
    algo = algorithm(recipe, root)
    load_weights(algo, weights, Path(run))
    return recipe, algo


def evaluate_run(run: str | os.PathLike, ways: list[int] | None = None, shots: list[int] | None = None,
                 episodes: int | None = None, query: int | None = None, split: str = "test",
                 seed: int | None = None, root: str | None = None, overrides: list[str] | None = None,
                 baseline: str | None = None, echo: Echo = print, dist: DistContext = SINGLE) -> dict[str, Any]:
    """Evaluate a trained run on fixed episodes of `split` (a multi-task run: on the split's examples, with
    delta-m against `baseline`); results are printed and stored in summary.json. On several processes the
    episodes are split over the ranks (a multi-task run is evaluated by rank 0) and rank 0 writes."""
    run = Path(run)
    recipe, weights = load_run(run)
    if overrides:
        recipe = recipe_from_dict(apply_overrides(recipe_to_dict(recipe), overrides))
    if is_multitask(recipe):
        if ways or shots or episodes or query or seed is not None:
            raise ConfigError("--way, --shot, --episodes, --query and --seed are for few-shot runs; a multi-task "
                              "run is evaluated on every example of the split")
        from .mtl_run import evaluate_mtl_run
        if not dist.main:
            return {}
        return evaluate_mtl_run(run, recipe, weights, split=split, root=root, baseline=baseline, echo=echo)
    if baseline:
        raise ConfigError("--baseline (delta-m) is for multi-task runs")
    algo = algorithm(recipe, root)
    load_weights(algo, weights, run)
    results = [run_protocol(algo, recipe, split, way, shot, steps, query or recipe.eval.query,
                            episodes or recipe.eval.episodes, recipe.eval.seed if seed is None else seed, root,
                            dist)
               for way, shot, steps in _protocols(recipe, ways, shots)]
    if not dist.main:
        return {}
    for result in results:
        echo(f"{split} {result}")
    summary = read_json(run / "summary.json") if (run / "summary.json").is_file() else {}
    fresh = {_protocol_key(r.to_dict()) for r in results}
    kept = [r for r in summary.get(split, []) if _protocol_key(r) not in fresh]
    summary[split] = kept + [r.to_dict() | {"weights": weights.name} for r in results]
    write_json(run / "summary.json", summary)
    return summary
