"""2D navigation (MAML, Finn et al. 2017): a point starts at the origin and moves towards a goal drawn uniformly in
[-0.5, 0.5]^2, rewarded with minus its distance to the goal; batched in numpy, every sub-env in one array op."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from PIL import Image, ImageDraw

from polyskill.errors import ConfigError
from polyskill.rl.envs.base import (
    Task,
    TaskFamily,
    parse_number,
    require_gymnasium,
    seed_list,
    split_assignment,
)

if TYPE_CHECKING:
    from gymnasium.vector import VectorEnv

GOAL_RANGE = 0.5  # goals are uniform in [-GOAL_RANGE, GOAL_RANGE]^2
MAX_SPEED = 0.1  # an action is a velocity command clipped to [-MAX_SPEED, MAX_SPEED] per axis
TOLERANCE = 0.01  # the episode ends when the point is within TOLERANCE of the goal on both axes
VIEW = 0.6  # frames show [-VIEW, VIEW]^2
FRAME_SIZE = 256
_FORM = "goal=X,Y with X and Y in [-0.5, 0.5] (e.g. goal=0.3,-0.2)"


class NavigationDynamics:
    """The batched dynamics of navigation2d, one row per sub-environment, in float64 numpy (gymnasium-free, so that
    rendering and tests use exactly the arithmetic of the vector environment)."""

    def __init__(self, goals: np.ndarray, horizon: int) -> None:
        self.goals = np.array(goals, dtype=np.float64).reshape(-1, 2)
        self.horizon = horizon
        self.num_envs = len(self.goals)
        self.position = np.zeros_like(self.goals)
        self.done = np.zeros(self.num_envs, dtype=bool)
        self.steps = 0
        self.seeds: list[int] | None = None

    def reset(self, seeds: list[int] | None) -> np.ndarray:
        """Every sub-env back at the origin. The seeds are kept so that start or observation noise could draw from
        np.random.default_rng(seeds[j]); navigation2d has none, so its episodes do not depend on them."""
        self.seeds = seeds
        self.position[:] = 0.0
        self.done[:] = False
        self.steps = 0
        return self.position.astype(np.float32)

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Clip, move, reward minus the distance to the goal; sub-envs that reached their goal stay where they are."""
        action = np.asarray(actions, dtype=np.float64)
        if action.shape != self.position.shape:
            raise ValueError(f"navigation2d: actions must have shape {self.position.shape}, got {action.shape}")
        move = np.clip(action, -MAX_SPEED, MAX_SPEED)
        move[self.done] = 0.0
        self.position += move
        offset = self.position - self.goals
        reward = -np.sqrt(np.square(offset).sum(axis=1))
        self.done |= (np.abs(offset) < TOLERANCE).all(axis=1)
        self.steps += 1
        terminated = self.done.copy()
        truncated = np.full(self.num_envs, self.steps >= self.horizon) & ~terminated
        return self.position.astype(np.float32), reward, terminated, truncated


class Navigation2D(TaskFamily):
    """Point navigation to a goal in [-0.5, 0.5]^2: observation the position (2,), action a velocity (2,)."""

    name = "navigation2d"
    default_horizon = 100
    obs_dim = 2
    act_dim = 2
    ranges: ClassVar[dict[str, tuple[float, float]]] = {
        "goal_x": (-GOAL_RANGE, GOAL_RANGE),
        "goal_y": (-GOAL_RANGE, GOAL_RANGE),
    }

    def __init__(self, horizon: int | None = None) -> None:
        super().__init__(horizon)
        require_gymnasium(self.name)

    def parse_task(self, text: str) -> Task:
        value = split_assignment(self.name, text, "goal", _FORM)
        parts = value.split(",")
        if len(parts) != 2:
            raise ConfigError(f"{self.name} task must be written {_FORM}, got {text!r}")
        x, y = (parse_number(f"{self.name} task", p, _FORM) for p in parts)
        return self.check_task({"goal_x": x, "goal_y": y})

    def describe(self, task: Task) -> str:
        return f"goal ({task['goal_x']:.2f}, {task['goal_y']:.2f})"

    def render_episode(self, task: Task, act: Callable[[np.ndarray], np.ndarray], seed: int) -> list[np.ndarray]:
        """Frames drawn with Pillow: the [-0.6, 0.6]^2 box, the goal (green), the path so far and the point (red)."""
        task = self.check_task(task)
        dynamics = NavigationDynamics(np.array([[task["goal_x"], task["goal_y"]]]), self.horizon)
        obs = dynamics.reset([seed])
        path = [tuple(dynamics.position[0])]
        frames = [_draw(path, task, self.describe(task), 0)]
        for t in range(1, self.horizon + 1):
            action = np.asarray(act(obs[0]), dtype=np.float64).reshape(1, self.act_dim)
            obs, _, terminated, _ = dynamics.step(action)
            path.append(tuple(dynamics.position[0]))
            frames.append(_draw(path, task, self.describe(task), t))
            if terminated[0]:
                break
        return frames

    def _sample(self, n: int, rng: np.random.Generator) -> list[Task]:
        goals = rng.uniform(-GOAL_RANGE, GOAL_RANGE, size=(n, 2))
        return [{"goal_x": float(x), "goal_y": float(y)} for x, y in goals]

    def _vector_env(self, tasks: list[Task], episodes: int) -> VectorEnv:
        goals = np.repeat([[t["goal_x"], t["goal_y"]] for t in tasks], episodes, axis=0)
        return _vector_env_class()(goals, self.horizon)


@functools.cache
def _vector_env_class() -> Callable[[np.ndarray, int], VectorEnv]:
    """navigation2d's gymnasium VectorEnv, defined on first use so that importing this module needs no gymnasium."""
    from gymnasium import spaces
    from gymnasium.vector import AutoresetMode, VectorEnv
    from gymnasium.vector.utils import batch_space

    class NavigationVectorEnv(VectorEnv):
        """navigation2d's sub-envs as one batched numpy environment. Sub-envs that terminated stay put (their steps
        are to be masked); none autoresets: `reset` resets them all."""

        def __init__(self, goals: np.ndarray, horizon: int) -> None:
            self.metadata = {"autoreset_mode": AutoresetMode.DISABLED}
            self.dynamics = NavigationDynamics(goals, horizon)
            self.num_envs = self.dynamics.num_envs
            self.single_observation_space = spaces.Box(-np.inf, np.inf, (2,), np.float32)
            self.single_action_space = spaces.Box(-MAX_SPEED, MAX_SPEED, (2,), np.float32)
            self.observation_space = batch_space(self.single_observation_space, self.num_envs)
            self.action_space = batch_space(self.single_action_space, self.num_envs)

        def reset(
            self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
        ) -> tuple[np.ndarray, dict[str, Any]]:
            return self.dynamics.reset(seed_list(seed, self.num_envs)), {}

        def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
            return (*self.dynamics.step(actions), {})

    return NavigationVectorEnv


def _draw(path: list[tuple[float, float]], task: Task, label: str, step: int) -> np.ndarray:
    """One RGB frame [FRAME_SIZE, FRAME_SIZE, 3]: the box, the goal, the path so far and the point at its end."""
    image = Image.new("RGB", (FRAME_SIZE, FRAME_SIZE), "white")
    draw = ImageDraw.Draw(image)
    points = [to_pixel(x, y) for x, y in path]
    box = (*to_pixel(-GOAL_RANGE, GOAL_RANGE), *to_pixel(GOAL_RANGE, -GOAL_RANGE))
    draw.rectangle(box, outline=(200, 200, 200))
    gx, gy = to_pixel(task["goal_x"], task["goal_y"])
    draw.ellipse((gx - 5, gy - 5, gx + 5, gy + 5), fill=(0, 170, 0))
    if len(points) > 1:
        draw.line(points, fill=(60, 90, 220), width=2)
    px, py = points[-1]
    draw.ellipse((px - 4, py - 4, px + 4, py + 4), fill=(220, 30, 30))
    draw.text((4, 4), f"{label}  step {step}", fill=(0, 0, 0))
    return np.asarray(image, dtype=np.uint8)


def to_pixel(x: float, y: float) -> tuple[float, float]:
    """The pixel (column, row) of the point (x, y) in a frame showing [-VIEW, VIEW]^2 with y up."""
    scale = (FRAME_SIZE - 1) / (2 * VIEW)
    return (x + VIEW) * scale, (VIEW - y) * scale
