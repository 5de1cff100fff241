"""HalfCheetah task families (MAML, Finn et al. 2017): gymnasium's MuJoCo HalfCheetah-v5 rewarded for running at a
goal velocity (halfcheetah-vel) or in a direction (halfcheetah-dir), minus a control cost of 0.05 ||clip(a)||^2."""

from __future__ import annotations

import contextlib
import ctypes.util
import functools
import importlib
import logging
import os
from abc import abstractmethod
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from polyskill.errors import ConfigError
from polyskill.rl.envs.base import (
    Task,
    TaskFamily,
    parse_number,
    require_gymnasium,
    split_assignment,
)

if TYPE_CHECKING:
    import gymnasium
    from gymnasium.vector import VectorEnv

CTRL_COST = 0.05  # 0.5 * 1e-1, the control cost weight of MAML's and ProMP's cheetahs
RENDER_SIZE = 256
_GL_LIBRARIES = {"egl": "EGL", "osmesa": "OSMesa"}  # headless MUJOCO_GL backend -> the shared library it loads
_GL_BACKENDS = ("egl", "osmesa", "glfw")  # the MUJOCO_GL values gymnasium's MuJoCo renderer accepts
log = logging.getLogger("polyskill.rl")


class HalfCheetahFamily(TaskFamily):
    """The cheetah families' shared environment: HalfCheetah-v5 (observation 17, action 6 in [-1, 1]) with a task
    reward `forward_reward(task, x_velocity) - 0.05 ||clip(a)||^2`, truncated at the horizon."""

    default_horizon = 200
    obs_dim = 17
    act_dim = 6

    def __init__(self, horizon: int | None = None) -> None:
        super().__init__(horizon)
        require_gymnasium(self.name, mujoco=True)

    @abstractmethod
    def forward_reward(self, task: Task, x_velocity: float) -> float:
        """The task's reward for the cheetah's forward velocity (before the control cost)."""

    def make_env(self, task: Task, render_mode: str | None = None) -> gymnasium.Env:
        """One HalfCheetah-v5 running `task` for `horizon` steps, clipping actions and rewarding the task."""
        import gymnasium

        # the model's "track" camera follows the cheetah (gymnasium's default free camera stays where it started)
        view: dict[str, Any] = {"width": RENDER_SIZE, "height": RENDER_SIZE, "camera_name": "track"}
        with _mujoco_warnings_logged():
            env = gymnasium.make(
                "HalfCheetah-v5",
                max_episode_steps=self.horizon,
                render_mode=render_mode,
                **(view if render_mode else {}),
            )
        return _task_reward_class()(env, self, task)

    def render_episode(self, task: Task, act: Callable[[np.ndarray], np.ndarray], seed: int) -> list[np.ndarray]:
        """Frames of MuJoCo's offscreen renderer (OpenGL: MUJOCO_GL=egl, else osmesa, unless MUJOCO_GL is set)."""
        task = self.check_task(task)
        backend = choose_gl(self.name)
        _probe_gl(self.name, backend)
        env = self.make_env(task, render_mode="rgb_array")
        try:
            obs, _ = env.reset(seed=seed)
            frames = [_first_frame(env, self.name, backend)]
            for _ in range(self.horizon):
                action = np.asarray(act(obs), dtype=np.float64)
                if action.shape != (self.act_dim,):
                    raise ValueError(
                        f"{self.name}: act must return an action of shape ({self.act_dim},), got {action.shape}"
                    )
                obs, _, terminated, truncated, _ = env.step(action)
                frames.append(np.asarray(env.render(), dtype=np.uint8))
                if terminated or truncated:
                    break
        finally:
            env.close()
        return frames

    def _vector_env(self, tasks: list[Task], episodes: int) -> VectorEnv:
        from gymnasium.vector import SyncVectorEnv

        makers = [functools.partial(self.make_env, tasks[j // episodes]) for j in range(len(tasks) * episodes)]
        return SyncVectorEnv(makers)


class HalfCheetahVel(HalfCheetahFamily):
    """Run at a goal velocity uniform in [0, 2]: reward -|x_velocity - goal| - 0.05 ||clip(a)||^2."""

    name = "halfcheetah-vel"
    ranges: ClassVar[dict[str, tuple[float, float]]] = {"velocity": (0.0, 2.0)}

    def parse_task(self, text: str) -> Task:
        form = "velocity=V with V in [0, 2] (e.g. velocity=1.5)"
        value = split_assignment(self.name, text, "velocity", form)
        return self.check_task({"velocity": parse_number(f"{self.name} task", value, form)})

    def describe(self, task: Task) -> str:
        return f"velocity {task['velocity']:.2f}"

    def forward_reward(self, task: Task, x_velocity: float) -> float:
        return -abs(x_velocity - task["velocity"])

    def _sample(self, n: int, rng: np.random.Generator) -> list[Task]:
        return [{"velocity": float(v)} for v in rng.uniform(0.0, 2.0, size=n)]


class HalfCheetahDir(HalfCheetahFamily):
    """Run forward (direction 1) or backward (-1), each with probability 1/2: reward direction * x_velocity - 0.05
    ||clip(a)||^2."""

    name = "halfcheetah-dir"
    ranges: ClassVar[dict[str, tuple[float, float]]] = {"direction": (-1.0, 1.0)}
    _WORDS: ClassVar[dict[str, float]] = {"forward": 1.0, "backward": -1.0}
    _FORM = "direction=forward|backward|1|-1"

    def check_task(self, task: Mapping[str, Any]) -> Task:
        checked = super().check_task(task)
        if checked["direction"] not in (1.0, -1.0):
            raise ConfigError(
                f"{self.name} task: direction must be 1 (forward) or -1 (backward), got {task['direction']!r}"
            )
        return checked

    def parse_task(self, text: str) -> Task:
        value = split_assignment(self.name, text, "direction", self._FORM).lower()
        direction = self._WORDS.get(value)
        if direction is None:
            direction = parse_number(f"{self.name} task", value, self._FORM)
        if direction not in (1.0, -1.0):
            raise ConfigError(f"{self.name} task must be written {self._FORM}, got {text!r}")
        return {"direction": direction}

    def describe(self, task: Task) -> str:
        return "forward" if task["direction"] > 0 else "backward"

    def forward_reward(self, task: Task, x_velocity: float) -> float:
        return task["direction"] * x_velocity

    def _sample(self, n: int, rng: np.random.Generator) -> list[Task]:
        return [{"direction": float(d)} for d in 2 * rng.integers(0, 2, size=n) - 1]


@functools.cache
def _task_reward_class() -> Callable[[gymnasium.Env, HalfCheetahFamily, Task], gymnasium.Wrapper]:
    """The task-reward wrapper, defined on first use so that importing this module needs no gymnasium."""
    import gymnasium

    class TaskReward(gymnasium.Wrapper):
        """Clips the action to the action space, steps the cheetah and replaces its reward with the task's;
        info's reward_forward and reward_ctrl are the task's terms."""

        def __init__(self, env: gymnasium.Env, family: HalfCheetahFamily, task: Task) -> None:
            super().__init__(env)
            self.family = family
            self.task = task

        def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
            space = self.action_space
            assert isinstance(space, gymnasium.spaces.Box)
            clipped = np.clip(np.asarray(action, dtype=np.float64), space.low, space.high)
            obs, _, terminated, truncated, info = self.env.step(clipped)
            forward = self.family.forward_reward(self.task, float(info["x_velocity"]))
            ctrl = CTRL_COST * float(np.square(clipped).sum())
            info = {**info, "reward_forward": forward, "reward_ctrl": -ctrl}
            return obs, forward - ctrl, terminated, truncated, info

    return TaskReward


@contextlib.contextmanager
def _mujoco_warnings_logged() -> Iterator[None]:
    """MuJoCo's warnings (HalfCheetah's model compiles with a deprecation warning) go to the log at debug level,
    not to stdout and a MUJOCO_LOG.TXT in the working directory, for as long as the block runs."""
    mujoco = importlib.import_module("mujoco")
    previous = mujoco.get_mju_user_warning()
    mujoco.set_mju_user_warning(lambda message: log.debug("MuJoCo: %s", message))
    try:
        yield
    finally:
        mujoco.set_mju_user_warning(previous)


def choose_gl(family: str) -> str:
    """The MUJOCO_GL backend to render with: the user's own MUJOCO_GL if set, else egl or osmesa, whichever's library
    is installed (then set in os.environ, which MuJoCo reads); ConfigError when neither is."""
    chosen = os.environ.get("MUJOCO_GL")
    if chosen:
        return chosen
    platform = os.environ.get("PYOPENGL_PLATFORM")
    candidates = [platform] if platform in _GL_LIBRARIES else list(_GL_LIBRARIES)
    for backend in candidates:
        if ctypes.util.find_library(_GL_LIBRARIES[backend]):
            os.environ["MUJOCO_GL"] = backend
            return backend
    raise ConfigError(
        f"rendering {family} needs OpenGL (MUJOCO_GL=egl or osmesa): neither libEGL nor libOSMesa is installed; "
        "on Debian: apt-get install libegl1 libegl-mesa0 (or libosmesa6)"
    )


def _probe_gl(family: str, backend: str) -> None:
    """Create and free one OpenGL context of `backend` (as gymnasium's renderer will), so that a missing or broken
    OpenGL is a ConfigError before the environment's renderer half-builds itself."""
    if backend not in _GL_BACKENDS:
        raise ConfigError(f"rendering {family} needs OpenGL (MUJOCO_GL={backend}): set MUJOCO_GL=egl, osmesa or glfw")
    if backend == "glfw":  # needs a display; its failures surface at the first frame
        return
    try:
        context = importlib.import_module(f"mujoco.{backend}").GLContext(RENDER_SIZE, RENDER_SIZE)
        context.free()
    except Exception as e:
        raise ConfigError(_gl_error(family, backend, e)) from None


def _gl_error(family: str, backend: str, error: Exception) -> str:
    return (
        f"rendering {family} needs OpenGL (MUJOCO_GL={backend}): {type(error).__name__}: {error}; on Debian: "
        "apt-get install libegl1 libegl-mesa0 for MUJOCO_GL=egl, or libosmesa6 for MUJOCO_GL=osmesa"
    )


def _first_frame(env: gymnasium.Env, family: str, backend: str) -> np.ndarray:
    """The first frame, whose rendering creates the OpenGL context: any failure there is a missing or broken OpenGL
    (the GL stack raises assorted exception types), reported as a ConfigError."""
    try:
        return np.asarray(env.render(), dtype=np.uint8)
    except Exception as e:
        raise ConfigError(_gl_error(family, backend, e)) from None
