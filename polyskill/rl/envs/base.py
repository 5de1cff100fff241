"""A task family: a distribution over reinforcement-learning tasks (goals, velocities, directions) and the vectorised
gymnasium environments that run a batch of its tasks, the unit meta-RL (MAML) and multi-task RL sample from."""

from __future__ import annotations

import importlib
import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from polyskill.errors import ConfigError

if TYPE_CHECKING:
    from gymnasium.vector import VectorEnv

Task = dict[str, float]
"""One task's parameters, e.g. {"goal_x": 0.3, "goal_y": -0.2}, {"velocity": 1.3} or {"direction": -1.0}."""


class TaskFamily(ABC):
    """A family of tasks sharing one environment: samples tasks, validates and parses them, and runs them vectorised.

    `ranges` names every key of a task and its closed range; `check_task` enforces them."""

    name: ClassVar[str]
    default_horizon: ClassVar[int]
    obs_dim: ClassVar[int]
    act_dim: ClassVar[int]
    ranges: ClassVar[dict[str, tuple[float, float]]]
    horizon: int

    def __init__(self, horizon: int | None = None) -> None:
        if horizon is None:
            horizon = self.default_horizon
        if isinstance(horizon, bool) or not isinstance(horizon, numbers.Integral) or horizon < 1:
            raise ConfigError(f"env.horizon must be a whole number of steps >= 1, got {horizon!r}")
        self.horizon = int(horizon)

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Task]:
        """n tasks drawn i.i.d. from the family's distribution with `rng` (the same generator state, the same tasks)."""
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
            raise ConfigError(f"{self.name}: the number of tasks must be a whole number >= 0, got {n!r}")
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"{self.name}: sample_tasks needs a numpy.random.Generator, got {type(rng).__name__}")
        return self._sample(int(n), rng)

    def check_task(self, task: Mapping[str, Any]) -> Task:
        """A validated copy of `task` (floats, keys in order); ConfigError naming the key and its range otherwise."""
        if not isinstance(task, Mapping):
            raise ConfigError(f"{self.name} task must be a mapping with keys {self._keys()}, got {task!r}")
        for key in task:
            if key not in self.ranges:
                raise ConfigError(f"{self.name} task: unknown key {key!r} (expected {self._keys()})")
        checked: Task = {}
        for key, (low, high) in self.ranges.items():
            if key not in task:
                raise ConfigError(f"{self.name} task: missing key {key!r} (expected {self._keys()})")
            checked[key] = check_number(f"{self.name} task: {key}", task[key], low, high)
        return checked

    @abstractmethod
    def parse_task(self, text: str) -> Task:
        """The task written on a command line (e.g. "velocity=1.5"); ConfigError showing the expected form."""

    @abstractmethod
    def describe(self, task: Task) -> str:
        """A short human label for the task, e.g. "goal (0.30, -0.20)"."""

    def vector_env(self, tasks: list[Task], episodes: int) -> VectorEnv:
        """len(tasks) * episodes sub-environments, sub-environment j running tasks[j // episodes].

        Reset it with one int seed per sub-environment; the same seeds and actions give bit-identical observations
        and rewards. Actions may be unclipped: the environment clips them to its action space. Close it when done."""
        if isinstance(tasks, Mapping) or not isinstance(tasks, list | tuple) or not tasks:
            raise ConfigError(f"{self.name}: vector_env needs a non-empty list of tasks, got {tasks!r}")
        if isinstance(episodes, bool) or not isinstance(episodes, numbers.Integral) or episodes < 1:
            raise ConfigError(f"{self.name}: episodes per task must be a whole number >= 1, got {episodes!r}")
        return self._vector_env([self.check_task(t) for t in tasks], int(episodes))

    @abstractmethod
    def render_episode(self, task: Task, act: Callable[[np.ndarray], np.ndarray], seed: int) -> list[np.ndarray]:
        """RGB frames (uint8 [H, W, 3]) of one episode of at most `horizon` steps, `act` mapping an observation
        [obs_dim] to an action [act_dim]: the start and one frame after each step; ConfigError if it cannot render."""

    @abstractmethod
    def _sample(self, n: int, rng: np.random.Generator) -> list[Task]:
        """n tasks from the family's distribution (n already checked)."""

    @abstractmethod
    def _vector_env(self, tasks: list[Task], episodes: int) -> VectorEnv:
        """The vector environment of checked tasks."""

    def _keys(self) -> str:
        return ", ".join(self.ranges)


def check_number(what: str, value: Any, low: float, high: float) -> float:
    """`value` as a float if it is a finite real number in [low, high]; ConfigError naming `what` and the range."""
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real)
    x = float(value) if ok else math.nan
    if not (math.isfinite(x) and low <= x <= high):
        raise ConfigError(f"{what} must be a number in [{low:g}, {high:g}], got {value!r}")
    return x


def parse_number(what: str, text: str, form: str) -> float:
    """The float written in `text`; ConfigError showing the expected `form` when it is not a number."""
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{what} must be written {form}, got {text!r}") from None


def split_assignment(family: str, text: str, key: str, form: str) -> str:
    """The value part of "key=value" (spaces ignored); ConfigError showing the expected `form` otherwise."""
    if not isinstance(text, str):
        raise ConfigError(f"{family} task must be written {form}, got {text!r}")
    name, sep, value = text.replace(" ", "").partition("=")
    if not sep or name != key or not value:
        raise ConfigError(f"{family} task must be written {form}, got {text!r}")
    return value


def require_gymnasium(family: str, mujoco: bool = False) -> None:
    """ConfigError when gymnasium (and MuJoCo, if asked) cannot be imported: the [rl] extra is not installed."""
    needs = "gymnasium with MuJoCo" if mujoco else "gymnasium"
    for module in ("gymnasium", "mujoco") if mujoco else ("gymnasium",):
        try:
            importlib.import_module(module)
        except ImportError:
            raise ConfigError(f"{family} needs {needs}: pip install 'polyskill[rl]'") from None


def seed_list(seed: int | list[int] | None, n: int) -> list[int] | None:
    """One seed per sub-environment from a vector reset's `seed` (an int s gives s, s+1, ..., as gymnasium does)."""
    if seed is None:
        return None
    if isinstance(seed, int | np.integer):
        return [int(seed) + j for j in range(n)]
    seeds = [int(s) for s in seed]
    if len(seeds) != n:
        raise ValueError(f"reset needs one seed per sub-environment ({n}), got {len(seeds)}")
    return seeds
