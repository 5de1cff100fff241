"""Reinforcement-learning evaluation protocols, used for validation during training and for the test after it:
the adaptation curve on fixed tasks drawn from the family (meta-RL), and the return on each task of a fixed list
(multi-task RL). Tasks, environment seeds and action noise come from the protocol's seed alone, so every model
is measured on the same tasks and the same evaluation gives the same numbers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import numpy as np
import torch
from torch import nn

from ..distributed import SINGLE, DistContext
from ..eval.protocol import EvalProtocol
from ..eval.result import Result, confidence_interval
from .envs.base import Task, TaskFamily
from .learners.base import PolicyLearner
from .results import AdaptationResult, TaskReturnsResult
from .rollouts import Rollouts

INITS = ("trained", "random")


@dataclass
class AdaptationReturns(EvalProtocol):
    """The return on `tasks` tasks of `family` (drawn with `seed`) before and after each of `steps` policy-gradient
    steps of `episodes` episodes, at step size `lr` (None: the learner's own). `init: random` measures a freshly
    initialised policy of the same shape (made by `fresh`) instead of the trained one: the paper's "random" curve."""

    result_type: ClassVar[type[Result]] = AdaptationResult

    family: TaskFamily
    env: str
    tasks: int
    episodes: int
    steps: int
    seed: int
    init: str = "trained"
    lr: float | None = None
    fresh: Callable[[], nn.Module] | None = None

    def evaluate(self, model: nn.Module, dist: DistContext = SINGLE) -> Result:
        learner = cast(PolicyLearner, model if self.init == "trained" or self.fresh is None else self.fresh())
        tasks = self.family.sample_tasks(self.tasks, np.random.Generator(np.random.PCG64(self.seed)))
        stream = Rollouts(self.family, self.episodes, self.seed + 1)
        with torch.no_grad():
            curve = learner.adaptation_curve(stream, tasks, self.steps, self.lr)
        mean, ci = confidence_interval(curve[-1])
        return AdaptationResult(
            self.env,
            self.init,
            self.tasks,
            self.episodes,
            self.steps,
            self.seed,
            mean,
            ci,
            [round(float(v), 4) for v in curve.mean(1)],
        )


@dataclass
class TaskReturns(EvalProtocol):
    """A multi-task policy's mean return over `episodes` episodes of each of its tasks."""

    result_type: ClassVar[type[Result]] = TaskReturnsResult

    family: TaskFamily
    env: str
    task_list: list[Task]
    episodes: int
    seed: int

    def evaluate(self, model: nn.Module, dist: DistContext = SINGLE) -> Result:
        learner = cast(Any, model)
        stream = Rollouts(self.family, self.episodes, self.seed + 1)
        with torch.no_grad():
            returns = stream.run(self.task_list, learner.actor()).returns().mean(1)
        per_task = {self.family.describe(t): round(float(r), 4) for t, r in zip(self.task_list, returns, strict=True)}
        return TaskReturnsResult(self.env, self.episodes, self.seed, float(returns.mean()), per_task)
