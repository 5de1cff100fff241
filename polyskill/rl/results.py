"""What reinforcement-learning evaluations return: the mean return on fixed tasks after k adaptation steps (with
the whole curve from 0 to k steps), and a multi-task policy's return on each of its tasks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..eval.result import Result


@dataclass(frozen=True)
class AdaptationResult(Result):
    """Mean return over `tasks` fixed tasks of `env` after `steps` policy-gradient steps of `episodes` episodes
    each, from the trained (`init: trained`) or a freshly initialised policy (`init: random`); `curve` holds the
    mean return after 0, 1, ..., `steps` steps."""

    protocol: ClassVar[str] = "rl_adaptation"
    metric: ClassVar[str] = "mean_return"
    measured: ClassVar[tuple[str, ...]] = ("mean_return", "ci95", "curve")

    env: str
    init: str
    tasks: int
    episodes: int
    steps: int
    seed: int
    mean_return: float
    ci95: float
    curve: list[float]
    weights: str | None = None

    @property
    def label(self) -> str:
        return f"{self.init}@{self.steps}"

    def formatted(self) -> str:
        return f"return {self.mean_return:.2f}±{self.ci95:.2f}"

    def __str__(self) -> str:
        curve = " -> ".join(f"{v:.2f}" for v in self.curve)
        return (
            f"{self.env}, {self.init} policy, return after 0..{self.steps} adaptation steps: {curve} "
            f"(±{self.ci95:.2f} at {self.steps}; {self.tasks} tasks, {self.episodes} episodes a step)"
        )


@dataclass(frozen=True)
class TaskReturnsResult(Result):
    """A multi-task policy's mean return on each of its tasks (`per_task`, by task label) over `episodes` episodes
    each, and their mean."""

    protocol: ClassVar[str] = "rl_tasks"
    metric: ClassVar[str] = "mean_return"
    measured: ClassVar[tuple[str, ...]] = ("mean_return", "per_task")

    env: str
    episodes: int
    seed: int
    mean_return: float
    per_task: dict[str, float]
    weights: str | None = None

    @property
    def label(self) -> str:
        return f"{len(self.per_task)} tasks"

    def formatted(self) -> str:
        return f"return {self.mean_return:.2f}"

    def __str__(self) -> str:
        tasks = ", ".join(f"{k}: {v:.2f}" for k, v in self.per_task.items())
        return f"{self.env}, mean return {self.mean_return:.2f} over {len(self.per_task)} tasks ({tasks})"
