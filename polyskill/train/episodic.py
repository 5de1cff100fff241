"""The episodic trainer: meta-batches of tasks, Adam/SGD with a step schedule, validation, checkpoints, resume."""

from __future__ import annotations

import copy
import math
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from tqdm.auto import tqdm

from ..data.episodes import EpisodeSampler
from ..distributed import SINGLE, DistContext, average_gradients, broadcast_module, gather_objects, sum_across
from ..distributed.batch_norm import sync_batch_norms
from ..distributed.collectives import average_buffers
from ..errors import ConfigError, RunError
from ..meta.base import FewShotAlgorithm
from ..nn.precision import PRECISIONS, autocast, resolve
from ..progress import is_quiet, quiet_if
from ..records import RecordSink
from .checkpoint import load_checkpoint, read_json, save_checkpoint, updating, write_json
from .checks import one_of, real_number, whole_number
from .device import check_device
from .metrics import MetricsLog
from .validation import Validation, is_better, validation_key

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("step", "linear", "cosine")
LOGGERS = ("tensorboard", "mlflow")
NEVER = 2**62  # "no non-finite step yet", for the all-ranks minimum


class TrainingStream(Protocol):
    """Where training steps come from: a seeded stream of batches (episodes, class batches, multi-task batches)
    whose position a checkpoint keeps; each trainer's `train_step` knows how to draw from its own."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class DivergedError(RunError):
    """Training produced a non-finite loss or parameters; the last good checkpoint is untouched."""


@dataclass
class FitConfig:
    """How to train: every field can be set from a recipe's `train:` section or `--set train.FIELD=...`."""

    steps: int = 1000
    meta_batch: int = 1
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "step"
    lr_step: int = 0
    lr_gamma: float = 0.5
    log_every: int = 50
    val_every: int = 500
    val_episodes: int = 200
    precision: str = "fp32"
    max_minutes: float | None = None
    device: str = "cpu"
    seed: int = 0
    grad_clip: float | None = None
    loggers: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        """Refuse a value torch would fail on later (NaN, infinity, a wrong type, a device this machine lacks)."""
        for name in ("steps", "meta_batch", "log_every", "val_every", "val_episodes"):
            whole_number(f"train.{name}", getattr(self, name), low=1)
        whole_number("train.lr_step", self.lr_step)
        whole_number("train.seed", self.seed)
        real_number("train.lr", self.lr, above=0)
        real_number("train.momentum", self.momentum, at_least=0, below=1)
        real_number("train.weight_decay", self.weight_decay, at_least=0)
        real_number("train.lr_gamma", self.lr_gamma, above=0, at_most=1)
        if self.max_minutes is not None:
            real_number("train.max_minutes", self.max_minutes, above=0, note=" (or null: no time budget)")
        if self.grad_clip is not None:
            real_number("train.grad_clip", self.grad_clip, above=0, note=" (or null: no clipping)")
        one_of("train.optimizer", self.optimizer, OPTIMIZERS)
        one_of("train.schedule", self.schedule, SCHEDULES)
        one_of("train.precision", self.precision, PRECISIONS)
        if not isinstance(self.loggers, list):
            raise ConfigError(f"train.loggers must be a list of names ({', '.join(LOGGERS)}), got {self.loggers!r}")
        for name in self.loggers:
            one_of("train.loggers", name, LOGGERS)
        check_device(self.device, "train.device")


def _optimizer(params, config: FitConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


def _scheduler(optimizer: torch.optim.Optimizer, config: FitConfig) -> torch.optim.lr_scheduler.LRScheduler:
    """`step`: multiply the rate by lr_gamma every lr_step steps (lr_step 0: constant); `linear` / `cosine`:
    anneal it from lr to 0 over `steps` (Reptile's outer step size, MAML++'s meta rate)."""
    if config.schedule == "linear":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: max(0.0, 1 - t / config.steps))
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda t: 0.5 * (1 + math.cos(math.pi * min(t, config.steps) / config.steps))
        )
    step = config.lr_step or sys.maxsize  # independent of `steps`, so a resumed run may extend its length
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=step, gamma=config.lr_gamma)


class Trainer:
    """Runs `config.steps` meta-updates of `algo` on tasks from `train`, writing the run into `out`.

    `out` receives metrics.jsonl, last.pt (everything needed to continue identically), best.pt (the
    weights with the best validation accuracy) and summary.json. Without `out` nothing is written.
    """

    def __init__(
        self,
        algo: nn.Module,
        train: TrainingStream,
        config: FitConfig,
        out: str | Path | None = None,
        val: Validation | None = None,
        progress: bool = True,
        sinks: list[RecordSink] | None = None,
        dist: DistContext = SINGLE,
    ) -> None:
        self.algo: Any = algo  # a FewShotAlgorithm here, a MultiTaskLearner for the multi-task trainer
        self.train: Any = train
        self.config, self.val, self.dist = config, val, dist
        if self.splits_meta_batch and config.meta_batch % dist.world:
            raise ConfigError(f"train.meta_batch ({config.meta_batch}) must split evenly over {dist.world} processes")
        self.local_batch = config.meta_batch // dist.world
        self.sinks = list(sinks or []) if dist.main else []
        self.out = Path(out) if out is not None else None
        self.writes = self.out is not None and dist.main  # rank 0 alone writes the run directory
        self.progress = progress and dist.main
        self.device = torch.device(config.device)
        self.precision = resolve(config.precision, self.device)
        if dist.active and self.syncs_batch_norm and not self.per_task_batch_norm(algo):
            sync_batch_norms(algo)  # statistics over the global batch, as in one process
        algo.to(self.device)
        broadcast_module(algo, dist)
        self.optimizer = _optimizer(algo.parameters(), config)
        self.scheduler = _scheduler(self.optimizer, config)
        self.step = 0
        self.best_val: float | None = None
        self.best_step: int | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.train_seconds = 0.0
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0
        self.last_metrics: dict[str, float] | None = None
        self.log = MetricsLog(self._file("metrics.jsonl")) if self.writes else None

    #: whether `train.meta_batch` tasks are split over the ranks (a multi-task trainer's batches are sharded
    #: by their source instead)
    splits_meta_batch = True
    #: whether batch norm computes its statistics over the global batch on several processes
    syncs_batch_norm = True

    #: whether train_step leaves gradients averaged over the ranks already (fit then does not average them again)
    averages_own_gradients = False

    # -- checkpoints ------------------------------------------------------------------------------
    def _rank_state(self) -> dict[str, Any]:
        """What differs between ranks: the task stream, the RNGs and the partial metric sums."""
        return {
            "sampler": self.train.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "sums": self.sums,
            "count": self.count,
        }

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue identically (collective: every rank calls it; rank 0 saves it)."""
        ranks = gather_objects(self._rank_state(), self.dist)
        state = {
            "step": self.step,
            "model": self.algo.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "best_val": self.best_val,
            "best_step": self.best_step,
            "train_seconds": self.train_seconds,
            "last_metrics": self.last_metrics,
        }
        return {**state, **ranks[0]} if len(ranks) == 1 else {**state, "ranks": ranks}

    def resume(self) -> None:
        """Continue from out/last.pt: model, optimizer, schedule, sampler and RNG exactly as they were saved."""
        if self.out is None:
            raise RunError("resuming needs a run directory")
        state = load_checkpoint(self.out / "last.pt")
        self.algo.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self._set_base_lr(self.config.lr)
        saved_world = len(state["ranks"]) if "ranks" in state else 1
        if saved_world != self.dist.world:
            raise RunError(
                f"{self.out / 'last.pt'} was saved by {saved_world} process(es); resume it with "
                f"{saved_world} (--nproc {saved_world})"
            )
        mine = state["ranks"][self.dist.rank] if "ranks" in state else state
        self.train.load_state_dict(mine["sampler"])
        torch.set_rng_state(mine["torch_rng"])
        if mine.get("cuda_rng") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(mine["cuda_rng"])
        self.sums, self.count = mine.get("sums", {}), mine.get("count", 0)
        self.step, self.best_val, self.best_step = state["step"], state["best_val"], state["best_step"]
        self.train_seconds = state["train_seconds"]
        self.last_metrics = state.get("last_metrics")
        if (self.out / "best.pt").exists():
            self.best_state = load_checkpoint(self.out / "best.pt")["model"]
        if self.log is not None:
            self.log.truncate_after(self.step)

    def _set_base_lr(self, lr: float) -> None:
        """Make `lr` the schedule's base rate (a resume may change train.lr): the current rate keeps its ratio to
        the base, so the schedule goes on from where it was, scaled."""
        for i, group in enumerate(self.optimizer.param_groups):
            old = self.scheduler.base_lrs[i]
            group["lr"] = group["lr"] * lr / old if old else lr
            group["initial_lr"] = lr
        self.scheduler.base_lrs = [lr] * len(self.optimizer.param_groups)
        self.scheduler._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def _means(self) -> dict[str, float]:
        """The metrics since the last record, averaged over the steps and the ranks."""
        keys = list(self.sums)  # the same order on every rank: they run the same code
        if not keys:
            return {}
        totals = sum_across(torch.stack([self.sums[k].detach().double().reshape(()) for k in keys]), self.dist)
        return {k: float(v) / (self.count * self.dist.world) for k, v in zip(keys, totals.tolist(), strict=True)}

    def _past(self, deadline: float) -> bool:
        """Whether the time budget is spent: on several processes, as soon as any rank's is (so that every
        rank stops, checkpoints and validates at the same step)."""
        if deadline == math.inf:
            return False
        over = time.monotonic() > deadline
        return bool(sum_across(torch.tensor([int(over)]), self.dist, "max")) if self.dist.active else over

    def _check_parameters(self) -> None:
        """Stop, keeping the last good checkpoint, if an update left a parameter non-finite."""
        if not all(bool(torch.isfinite(p).all()) for p in self.algo.parameters()):
            self._diverged(self.step, "non-finite parameters")

    def _file(self, name: str) -> Path:
        """A file of the run directory (only called when the trainer writes one)."""
        assert self.out is not None
        return self.out / name

    def _checkpoint(self) -> None:
        state = self.state_dict() if self.out is not None else None
        if self.writes and state is not None:
            save_checkpoint(self._file("last.pt"), state)

    def _diverged(self, step: int, what: str) -> None:
        last = (
            f"(step {self.last_metrics['step']}) "
            + ", ".join(f"{k} {v:.4g}" for k, v in self.last_metrics.items() if k != "step")
            if self.last_metrics
            else "none logged yet"
        )
        good = self.out / "last.pt" if self.out is not None and (self.out / "last.pt").is_file() else None
        raise DivergedError(
            f"training diverged at step {step} ({what}); last finite metrics: {last}; "
            + (
                f"the last good checkpoint is {good} (step {load_checkpoint(good)['step']})"
                if good
                else "no checkpoint was written before it"
            )
        )

    # -- the loop ---------------------------------------------------------------------------------
    def after_optimizer_step(self) -> None:
        """What a trainer does once the optimiser has stepped (the multi-task trainer's FAMO update); nothing here."""

    def train_step(self) -> dict[str, torch.Tensor]:
        """One meta-update's gradients (left in `.grad`) and its metrics; the optimiser step is fit's."""
        batch = self.train.sample(self.local_batch).to(self.device)
        with autocast(self.precision, self.device):
            return self.algo.meta_backward(batch)

    @staticmethod
    def per_task_batch_norm(algo: torch.nn.Module) -> bool:
        """Whether the learner's batch norm sees one task at a time (its contract says), so needs no syncing."""
        return bool(type(algo).contract.per_task_batch_norm)  # type: ignore[attr-defined]

    def validate(self) -> float:
        """The validation protocol's figure for the current parameters (split over the ranks by the protocol)."""
        assert self.val is not None
        with quiet_if(not self.progress):
            return float(self.val.evaluate(self.algo, self.dist).value)

    def format_val(self, value: float | None) -> str:
        if value is None:
            return "-"
        return f"{100 * value:.2f}%" if self.val is not None and self.val.metric == "accuracy" else f"{value:.4f}"

    def close_sinks(self) -> None:
        """Close every sink (fit does, however it ends; call it if the trainer never gets to fit)."""
        for sink in self.sinks:
            sink.close()

    def _record(self, record: dict[str, Any]) -> None:
        if self.log is not None:
            self.log.write(record)
        for sink in self.sinks:
            sink.write(record)

    def _after_validation(self, bar: tqdm) -> None:
        assert self.val is not None
        value = self.validate()
        key = validation_key(self.val.metric)
        self._record({"step": self.step, key: value, "time": round(self.train_seconds, 3)})
        if is_better(value, self.best_val, self.val.higher_is_better):
            self.best_val, self.best_step = value, self.step
            self.best_state = {
                k: v.detach().clone() if torch.is_tensor(v) else copy.deepcopy(v)
                for k, v in self.algo.state_dict().items()
            }
            if self.writes:
                save_checkpoint(self._file("best.pt"), {"model": self.best_state, "step": self.step, key: value})
        if self.progress:
            bar.write(
                f"step {self.step}: validation {self.val.metric} {self.format_val(value)} "
                f"(best {self.format_val(self.best_val)} at step {self.best_step})"
            )

    def fit(self) -> dict[str, Any]:
        """Train to `config.steps` (or the time budget), validating and checkpointing along the way."""
        config, algo = self.config, self.algo
        algo.train()
        status = "finished"
        deadline = time.monotonic() + 60 * config.max_minutes if config.max_minutes else math.inf
        bar = tqdm(
            total=config.steps,
            initial=self.step,
            disable=True if not self.progress or is_quiet() else None,
            dynamic_ncols=True,
            desc="train",
            unit="step",
            mininterval=0.5,
        )  # None: off when not a terminal
        first_bad = torch.full((), -1, dtype=torch.long)  # the first step with a non-finite metric, kept on device
        started = time.perf_counter()
        try:
            while self.step < config.steps:
                self.optimizer.zero_grad(set_to_none=True)
                metrics = self.train_step()
                if not self.averages_own_gradients:
                    average_gradients(self.algo.parameters(), self.dist)
                if config.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(self.algo.parameters(), config.grad_clip)
                self.optimizer.step()
                self.after_optimizer_step()
                self.scheduler.step()
                self.step += 1
                self.count += 1
                finite = torch.stack([v.detach().float().reshape(()) for v in metrics.values()]).isfinite().all()
                first_bad = torch.where((first_bad < 0) & ~finite.to(first_bad.device), self.step, first_bad)
                for key, value in metrics.items():
                    self.sums[key] = self.sums[key] + value.detach() if key in self.sums else value.detach().clone()
                bar.update(1)
                last = self.step == config.steps or self._past(deadline)
                log_now = self.step % config.log_every == 0 or last
                checkpoint_now = self.step % config.val_every == 0 or last
                if log_now or checkpoint_now:
                    bad = int(sum_across(torch.where(first_bad < 0, NEVER, first_bad).view(1), self.dist, "min"))
                    if bad != NEVER:
                        self._diverged(bad, "non-finite loss")
                if log_now:
                    self.train_seconds += time.perf_counter() - started
                    started = time.perf_counter()
                    means = self._means()
                    self._record(
                        {
                            "step": self.step,
                            **means,
                            "lr": self.scheduler.get_last_lr()[0],
                            "time": round(self.train_seconds, 3),
                        }
                    )
                    self.last_metrics = {"step": self.step, **means}
                    bar.set_postfix({k: f"{v:.3f}" for k, v in means.items()})
                    self.sums, self.count = {}, 0
                if checkpoint_now:
                    self._check_parameters()
                    average_buffers(self.algo, self.dist)
                if self.val is not None and checkpoint_now:
                    self._after_validation(bar)
                if checkpoint_now:
                    self._checkpoint()
                if last and self.step < config.steps:
                    status = "stopped at the time budget"
                    break
        finally:
            self.train_seconds += time.perf_counter() - started
            bar.close()
            if self.log is not None:
                self.log.close()
            self.close_sinks()
        if self.best_state is not None:
            algo.load_state_dict(self.best_state)
        validation = (
            None
            if self.val is None
            else {
                "metric": self.val.metric,
                "higher_is_better": self.val.higher_is_better,
                "best": self.best_val,
                "best_step": self.best_step,
            }
        )
        summary = {
            "status": status,
            "steps": self.step,
            "train_seconds": round(self.train_seconds, 1),
            "precision": self.precision,
            "validation": validation,
            "config": asdict(config),
        }
        if self.writes:
            self._write_summary(summary)
        return summary

    def _write_summary(self, summary: dict[str, Any]) -> None:
        """Write summary.json, keeping what else it holds (test results an evaluation wrote meanwhile)."""
        path = self._file("summary.json")
        with updating(path):
            try:
                kept = read_json(path) if path.is_file() else {}
            except RunError:
                kept = {}
            write_json(path, {**kept, **summary})


def fit(
    algo: FewShotAlgorithm,
    episodes: EpisodeSampler,
    config: FitConfig | None = None,
    *,
    out: str | Path | None = None,
    val: Validation | None = None,
    resume: bool = False,
    progress: bool = True,
    **overrides: Any,
) -> dict[str, Any]:
    """Meta-train `algo` on `episodes`; keyword overrides set FitConfig fields (e.g. steps=2000, lr=1e-3)."""
    known = {f.name for f in fields(FitConfig)}
    unknown = set(overrides) - known
    if unknown:
        raise ConfigError(f"unknown training option(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
    config = FitConfig(**{**(asdict(config) if config else {}), **overrides})
    trainer = Trainer(algo, episodes, config, out=out, val=val, progress=progress)
    if resume:
        trainer.resume()
    return trainer.fit()
