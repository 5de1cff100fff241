"""The one runner every kind goes through: train a recipe into a run directory, evaluate a trained run, resume
a stopped one. A run directory is locked while it is trained, checked before anything in it changes, and never
left with a config that does not match its checkpoint."""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from ..distributed import SINGLE, DistContext, from_environment
from ..distributed.collectives import barrier
from ..errors import ConfigError, PolyskillError, RunError
from ..eval.summary import RunSummary, ValidationRecord
from ..records import RecordSink
from ..train.checkpoint import load_checkpoint, read_json, updating, write_json, write_text
from ..train.episodic import DivergedError, Trainer
from ..train.run_status import end_run, read_status, start_run
from . import apply_overrides, load_config, read_yaml, recipe_to_dict
from .kinds import EvalRequest, Recipe, kind_of
from .legacy import upgrade

Echo = Callable[[str], None]
LOCK = ".lock"
#: what a resume may change: how long and how often, where to log, the learning rate (applied), the tests
RESUMABLE = {"name", "description", "eval"} | {
    f"train.{k}"
    for k in ("steps", "max_minutes", "log_every", "val_every", "val_episodes", "loggers", "lr", "grad_clip", "device")
}


def _silent(_: str) -> None:
    """Ranks other than 0 say nothing."""


@contextmanager
def run_lock(out: Path) -> Iterator[None]:
    """Hold the run directory `out` exclusively (an advisory lock on out/.lock) while it is trained: a second
    training into the same directory, started at the same moment or later, is refused instead of interleaving."""
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    handle = open(out / LOCK, "a")  # noqa: SIM115 - held for the whole run, closed in the finally below
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise RunError(
            f"{out} is being trained by another process right now; wait for it or stop it "
            f"(two trainings would write over each other)"
        ) from None
    try:
        yield
    except BaseException:
        if created and not (out / "config.yaml").exists():  # refused before anything was written: leave no trace
            (out / LOCK).unlink(missing_ok=True)
            with suppress(OSError):
                out.rmdir()
        raise
    finally:
        handle.close()


def _flat(values: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(values, dict):
        return {prefix.rstrip("."): values}
    out: dict[str, Any] = {}
    for key, value in values.items():
        out.update(_flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


def check_resume_changes(recorded: Recipe, recipe: Recipe) -> None:
    """Refuse a resume whose recipe differs from the run's in anything but what a resume may change: the
    checkpoint holds a model, optimiser and data stream of the recorded recipe."""
    old, new = _flat(recipe_to_dict(recorded)), _flat(recipe_to_dict(recipe))
    changed = sorted(
        k
        for k in set(old) | set(new)
        if old.get(k) != new.get(k) and k not in RESUMABLE and k.split(".")[0] not in RESUMABLE
    )
    if changed:
        raise RunError(
            f"cannot change {changed[0]} when resuming ({old.get(changed[0])!r} -> "
            f"{new.get(changed[0])!r}): the checkpoint was trained with the recorded value; train a new "
            f"run for it (a resume may change train.steps, max_minutes, lr, log_every, val_every, "
            f"val_episodes, loggers, grad_clip, device and eval)"
        )


def train_run(
    recipe: Recipe,
    out: str | os.PathLike,
    *,
    resume: bool = False,
    root: str | None = None,
    progress: bool = True,
    evaluate: bool = True,
    echo: Echo = print,
    sinks: list[RecordSink] | None = None,
) -> dict[str, Any]:
    """Train `recipe` into `out` (or continue the run there) and, unless told not to, run its test protocols;
    `sinks` receive every metrics record besides the recipe's loggers (a sweep's pruner, say)."""
    out = Path(out)
    ctx = from_environment(recipe.train.device)
    try:
        if not ctx.main:
            return _train(
                recipe,
                out,
                ctx,
                resume=resume,
                root=root,
                progress=progress,
                evaluate=evaluate,
                echo=_silent,
                sinks=sinks,
            )
        with run_lock(out):
            return _train(
                recipe, out, ctx, resume=resume, root=root, progress=progress, evaluate=evaluate, echo=echo, sinks=sinks
            )
    except RuntimeError as exc:  # a peer died, hung past the timeout, or cannot be reached
        if not (ctx.active and _peer_failure(exc)):
            raise
        raise RunError(
            f"rank {ctx.rank}: another process of this {ctx.world}-process run failed or stopped "
            f"responding ({str(exc).splitlines()[0][:160]}); the last checkpoint in {out} is whole: "
            f"continue with polyskill train --resume {out} --nproc {ctx.world}"
        ) from None
    finally:
        if ctx.active and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


#: what the collectives say when another rank is gone (gloo and NCCL, a closed connection, a timeout)
_PEER_FAILURE = ("gloo", "nccl", "connection closed", "connection reset", "timed out", "timeout")


def _peer_failure(exc: RuntimeError) -> bool:
    """Whether an error raised during a distributed run means another rank failed or hangs."""
    return isinstance(exc, torch.distributed.DistError) or any(m in str(exc).lower() for m in _PEER_FAILURE)


def _start_mode(recipe: Recipe, out: Path, resume: bool, echo: Echo) -> bool:
    """Check what `out` holds against the request, changing nothing; returns whether to load last.pt. A run
    that died before its first checkpoint starts again from step 0 (the original command or --resume)."""
    has_config, has_checkpoint = (out / "config.yaml").is_file(), (out / "last.pt").is_file()
    if resume and not has_config:
        raise RunError(f"cannot resume {out}: it holds no run (no config.yaml)")
    if has_config:
        recorded = load_run_recipe(out, [f"train.device={recipe.train.device}"])
        if resume or not has_checkpoint:
            check_resume_changes(recorded, recipe)
        else:
            raise RunError(f"{out} already holds a run; pass --resume to continue it, or choose another --out")
    live = read_status(out)
    # a run.json of another host cannot be checked (its machine may be gone): only this host's live runs refuse
    if live.get("status") == "running" and live.get("host") == socket.gethostname() and live.get("pid") != os.getpid():
        raise RunError(
            f"{out} is being trained right now by process {live.get('pid')}; stop it first "
            f"(two processes would write over each other's checkpoints)"
        )
    if has_config and not has_checkpoint:
        echo(f"{out} stopped before its first checkpoint: training it again from step 0")
    return has_checkpoint and has_config


def _train(
    recipe: Recipe,
    out: Path,
    ctx: DistContext,
    *,
    resume: bool,
    root: str | None,
    progress: bool,
    evaluate: bool,
    echo: Echo,
    sinks: list[RecordSink] | None,
) -> dict[str, Any]:
    """train_run's work as rank `ctx.rank`: rank 0 checks and writes the run directory, every rank trains."""
    kind = kind_of(recipe)
    if evaluate:  # a test split or protocol that cannot be built is refused now, not after the training
        kind.test_protocols(recipe, EvalRequest(), root)
    load = _start_mode(recipe, out, resume, echo) if ctx.main else (out / "last.pt").is_file() and resume
    setup = kind.setup(recipe, root, out, progress, ctx, echo, resume=load)
    _, summary = fit_into(out, recipe, setup.trainer, load, echo, sinks, dist=ctx)
    if ctx.main:
        setup.finish(out)
    if evaluate:
        barrier(ctx)  # rank 0 has written the weights and summary the others read next
        summary = evaluate_run(out, root=root, echo=echo, dist=ctx)
    barrier(ctx)  # the ranks leave together: none tears the process group down while another still writes
    return summary


def fit_into(
    out: Path,
    recipe: Recipe,
    make_trainer: Callable[[list[RecordSink]], Trainer],
    resume: bool,
    echo: Echo,
    sinks: list[RecordSink] | None = None,
    dist: DistContext = SINGLE,
) -> tuple[Trainer, dict[str, Any]]:
    """Train into `out`, continuing from its last checkpoint with `resume`. The checkpoint is loaded before
    anything is written, so a refused resume changes nothing; then the recipe is recorded, run.json says how
    training ended whatever ended it, and summary.json holds the typed summary."""
    from ..track import open_trackers

    trainer = make_trainer([])
    if resume:
        trainer.resume()
    if not dist.main:  # the other ranks train beside rank 0 and write nothing
        return trainer, trainer.fit()
    config = recipe_to_dict(recipe)
    trainer.sinks = open_trackers(recipe.train.loggers, out, config) + list(sinks or [])
    kind = kind_of(recipe)
    try:
        if not resume:  # a run that died before its first checkpoint starts again: its old records go
            for name in ("metrics.jsonl", "summary.json"):
                (out / name).unlink(missing_ok=True)
        write_text(out / "config.yaml", yaml.safe_dump(config, sort_keys=False))
        start_run(out, recipe.name, kind.algorithm_label(recipe), kind.dataset_label(recipe), recipe.train.device)
    except BaseException:
        trainer.close_sinks()
        raise
    if resume:
        echo(f"resuming {out} at step {trainer.step}")
    try:
        trained = trainer.fit()  # closes the sinks, however it ends
    except KeyboardInterrupt:
        end_run(out, "interrupted", "stopped by the user; continue with polyskill train --resume")
        raise
    except DivergedError as exc:
        end_run(out, "diverged", str(exc))
        raise
    except BaseException as exc:
        end_run(out, "pruned" if type(exc).__name__ == "TrialPruned" else "failed", str(exc) or type(exc).__name__)
        raise
    end_run(out, trained["status"])
    return trainer, _record_training(out, recipe, trained)


def _record_training(out: Path, recipe: Recipe, trained: dict[str, Any]) -> dict[str, Any]:
    """summary.json after training: how it ended and what validation selected, keeping the test results that
    are already there (an evaluation run while this one trained)."""
    with updating(out / "summary.json"):
        summary = _read_summary(out)
        summary.kind, summary.recipe, summary.status = recipe.kind, recipe.name, trained["status"]
        summary.steps, summary.train_seconds = trained["steps"], trained["train_seconds"]
        summary.precision, summary.config = trained["precision"], trained["config"]
        summary.validation = ValidationRecord.from_dict(trained.get("validation"))
        values = summary.to_dict()
        write_json(out / "summary.json", values)
    return values


def _read_summary(run: Path) -> RunSummary:
    try:
        return (
            RunSummary.from_dict(read_json(run / "summary.json")) if (run / "summary.json").is_file() else RunSummary()
        )
    except PolyskillError:
        return RunSummary()


def load_weights(module: nn.Module, weights: Path, run: Path) -> str:
    """Load a run's checkpoint into `module`, or say clearly that it does not fit the run's config; returns how
    results measured with it name it (the file and the step it was saved at: best.pt moves while a run trains)."""
    state = load_checkpoint(weights)
    try:
        module.load_state_dict(state["model"])
    except (KeyError, TypeError, RuntimeError) as exc:
        raise RunError(
            f"{weights} does not fit the model that {run / 'config.yaml'} describes ({str(exc).splitlines()[0]})"
        ) from None
    step = state.get("step")
    return f"{weights.name} (step {step})" if isinstance(step, int) and not isinstance(step, bool) else weights.name


def load_run_recipe(run: str | os.PathLike, overrides: list[str] | None = None) -> Recipe:
    """The recipe a run directory records (its config.yaml), with `overrides` applied before it is validated
    (a run trained on a GPU resumes on a CPU with --set train.device=cpu), or one clear error."""
    run = Path(run)
    if not run.is_dir():
        raise RunError(f"no run directory at {run}")
    if not (run / "config.yaml").is_file():
        raise RunError(f"{run} is not a run directory: it has no config.yaml")
    try:
        values = read_yaml(run / "config.yaml", "run config")
        return load_config(apply_overrides(values if "kind" in values else upgrade(values), overrides or []))
    except ConfigError as exc:
        raise RunError(f"{run / 'config.yaml'} is not a valid recipe: {exc}") from None


def load_run(run: str | os.PathLike) -> tuple[Recipe, Path]:
    """The recipe a run was trained with and the path of its best (else last) weights."""
    recipe = load_run_recipe(run)
    for name in ("best.pt", "last.pt"):
        if (Path(run) / name).is_file():
            return recipe, Path(run) / name
    raise RunError(f"run {run} has no checkpoint yet (best.pt or last.pt)")


def trained_model(run: str | os.PathLike, root: str | None = None) -> tuple[Recipe, nn.Module]:
    """The recipe of a trained run and its model with the run's best (else last) weights."""
    recipe, weights = load_run(run)
    model = kind_of(recipe).model(recipe, root)
    load_weights(model, weights, Path(run))
    return recipe, model


def evaluate_run(
    run: str | os.PathLike,
    request: EvalRequest | None = None,
    root: str | None = None,
    overrides: list[str] | None = None,
    echo: Echo = print,
    dist: DistContext = SINGLE,
    **options: Any,
) -> dict[str, Any]:
    """Run a trained run's test protocols (the recipe's, or those `request` asks for) on `request.split`;
    results are printed and merged into summary.json (a protocol evaluated again replaces its entry). On
    several processes the tasks are split over the ranks and rank 0 writes. `options` are EvalRequest fields."""
    run = Path(run)
    request = request or EvalRequest(**options)
    recipe, weights = load_run(run)
    if overrides:
        recipe = load_config(apply_overrides(recipe_to_dict(recipe), overrides))
    kind = kind_of(recipe)
    protocols = kind.test_protocols(recipe, request, root)
    model = kind.model(recipe, root)
    measured_with = load_weights(model, weights, run)
    results = [p.evaluate(model, dist) for p in protocols]
    if not dist.main:
        return {}
    for result in results:
        echo(f"{request.split} {result}")
    results = kind.finish_results(recipe, results, request, echo)
    with updating(run / "summary.json"):
        summary = _read_summary(run)
        summary.kind = summary.kind or recipe.kind
        summary.merge(request.split, [r.with_weights(measured_with) for r in results])
        values = summary.to_dict()
        write_json(run / "summary.json", values)
    return values


__all__ = [
    "LOCK",
    "EvalRequest",
    "check_resume_changes",
    "evaluate_run",
    "fit_into",
    "load_run",
    "load_run_recipe",
    "load_weights",
    "run_lock",
    "train_run",
    "trained_model",
]
