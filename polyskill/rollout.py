"""`polyskill rollout RUN --task ...`: adapt a trained reinforcement-learning run to one task with a few trials
(policy-gradient steps on sampled episodes) and show the return before and after each step, with a rendered clip
of the adapted policy where the environment renders."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor

from .errors import ConfigError, RunError
from .recipes.kinds.rl import RLRecipe, check_rollout_size, task_family
from .recipes.runner import trained_model
from .rl.envs.base import Task, TaskFamily
from .rl.learners.base import Params, PolicyLearner
from .rl.rollouts import Rollouts
from .rl.video import write_video


@dataclass
class Demonstration:
    """A rollout's outcome: the task, the mean return after 0..steps adaptation steps, and the adapted
    parameters (for rendering)."""

    task: Task
    label: str
    returns: list[float]
    params: Params | None


def demonstrate(
    learner: PolicyLearner, family: TaskFamily, task: Task, steps: int, episodes: int, seed: int, lr: float | None
) -> Demonstration:
    """Adapt `learner` to `task` with `steps` policy-gradient steps of `episodes` episodes each; a multi-task
    policy, which knows its tasks, is measured on the task as it is (its parameters stay None)."""
    stream = Rollouts(family, episodes, seed)
    if learner.fixed_tasks:
        index = _task_index(learner, family, task)
        act = learner.actor()
        run = stream.run([task], lambda obs, noise: act(_as_task(obs, index, learner), noise)[index : index + 1])
        return Demonstration(task, family.describe(task), [float(run.returns().mean())], None)
    params = {k: v.detach() for k, v in learner.shared(1).items()}
    returns = []
    for k in range(steps + 1):
        run = stream.run([task], learner.actor(params))
        returns.append(float(run.returns().mean()))
        if k < steps:
            adapted = learner.inner_step(params, run, learner.advantages(run), False, lr)
            params = {n: v.detach() for n, v in adapted.items()}
    return Demonstration(task, family.describe(task), returns, params)


def _as_task(obs: Tensor, index: int, learner: PolicyLearner) -> Tensor:
    """One task's observations [1, E, O] repeated for each of a multi-task policy's tasks: row `index` then
    carries that task's one-hot code."""
    tasks = len(cast(Any, learner).tasks)
    return obs.expand(tasks, *obs.shape[1:])


def _task_index(learner: PolicyLearner, family: TaskFamily, task: Task) -> int:
    known = [family.describe(t) for t in cast(Any, learner).tasks]
    label = family.describe(task)
    if label not in known:
        raise ConfigError(f"--task {label} is not one of this multi-task run's tasks: {', '.join(known)}")
    return known.index(label)


def policy_action(learner: PolicyLearner, params: Params | None, index: int) -> Callable[[np.ndarray], np.ndarray]:
    """The (adapted) policy's mean action for one observation of task `index` (what a clip shows)."""
    tasks = len(cast(Any, learner).tasks) if learner.fixed_tasks else 1

    def act(obs: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(np.asarray(obs), dtype=torch.float32).reshape(1, 1, -1).expand(tasks, 1, -1)
        with torch.no_grad():
            return learner.distribution(x, params).loc[index, 0].double().numpy()

    return act


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `rollout` subcommand."""
    rollout = sub.add_parser(
        "rollout",
        help="adapt a reinforcement-learning run to one task with a few trials; returns and a clip",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  polyskill rollout runs/nav --task goal=0.3,-0.2 --steps 3 --video nav.gif\n"
        "  polyskill rollout runs/cheetah-vel --task velocity=1.5 --video cheetah.mp4",
    )
    rollout.add_argument("run", help="run directory of a trained rl run")
    rollout.add_argument(
        "--task",
        required=True,
        help="the task: goal=X,Y (navigation2d), velocity=V (halfcheetah-vel), direction=forward|backward",
    )
    rollout.add_argument("--steps", type=int, default=3, help="adaptation steps (default 3)")
    rollout.add_argument("--episodes", type=int, help="episodes per step (default: the recipe's env.episodes)")
    rollout.add_argument("--lr", type=float, help="step size (default: the recipe's)")
    rollout.add_argument("--seed", type=int, default=0, help="seed of the episodes (default 0)")
    rollout.add_argument("--video", metavar="FILE", help="write a clip of the adapted policy (.gif, or .mp4)")
    rollout.set_defaults(handler=_rollout)


def _rollout(args: argparse.Namespace) -> int:
    if args.steps < 0 or args.steps > 100:
        raise ConfigError(f"--steps must be between 0 and 100, got {args.steps}")
    if args.episodes is not None and not 1 <= args.episodes <= 10_000:
        raise ConfigError(f"--episodes must be between 1 and 10000, got {args.episodes}")
    if args.lr is not None and not (np.isfinite(args.lr) and args.lr > 0):
        raise ConfigError(f"--lr must be a positive number, got {args.lr}")
    if args.video and Path(args.video).suffix.lower() not in (".gif", ".mp4"):
        raise ConfigError(f"--video writes .gif or .mp4, got {args.video}")
    recipe, model = trained_model(args.run)
    if not isinstance(recipe, RLRecipe):
        raise RunError(f"{args.run} is a {recipe.kind} run; polyskill rollout takes rl runs")
    learner = cast(PolicyLearner, model)
    family = task_family(recipe)
    task = family.parse_task(args.task)
    episodes = args.episodes or recipe.env.episodes
    check_rollout_size(1, episodes, family.horizon, "--episodes")
    shown = demonstrate(learner, family, task, args.steps, episodes, args.seed, args.lr or recipe.eval.lr)
    if learner.fixed_tasks:
        print(f"{recipe.env.name}, task {shown.label}: mean return {shown.returns[0]:.2f} over {episodes} episodes")
    else:
        print(f"{recipe.env.name}, task {shown.label}, {episodes} episodes a step:")
        for k, value in enumerate(shown.returns):
            print(f"  after {k} adaptation step{'s' if k != 1 else ''}: mean return {value:.2f}")
    if args.video:
        index = _task_index(learner, family, task) if learner.fixed_tasks else 0
        frames = family.render_episode(task, policy_action(learner, shown.params, index), args.seed)
        path = write_video(frames, args.video)
        print(f"clip of the adapted policy ({len(frames)} frames) in {path}")
    return 0


__all__ = ["Demonstration", "demonstrate", "register"]
