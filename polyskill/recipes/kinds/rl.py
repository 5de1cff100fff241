"""Reinforcement learning (`kind: rl`): a task family of environments (2D navigation, HalfCheetah velocity or
direction), a Gaussian policy, and a learner that either meta-learns an initialisation to adapt to new tasks with
policy-gradient steps (MAML, or the pretrained baseline) or learns one task-conditioned policy for a fixed list of
tasks with a multi-task weighting. Tested by the return on fixed tasks before and after adaptation (against a
freshly initialised policy fine-tuned the same way), or by the return on each task."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, cast

import torch
from torch import nn

from ...distributed import SINGLE, DistContext
from ...errors import ConfigError
from ...eval.protocol import EvalProtocol
from ...eval.result import Result
from ...mtl import AGGREGATOR_NAMES, aggregator_class
from ...mtl.base import Weighting
from ...rl.envs import ENVIRONMENTS, family
from ...rl.envs.base import Task, TaskFamily
from ...rl.evaluation import AdaptationReturns, TaskReturns
from ...rl.learners import RL_ALGORITHMS, PolicyLearner
from ...rl.policy import GaussianPolicy
from ...rl.results import AdaptationResult, TaskReturnsResult
from ...rl.rollouts import Rollouts
from ...rl.trainer import RLTrainer
from ...train.episodic import FitConfig
from ..spec import at_least, building, choice, options, parse_named, parsed
from .base import EvalRequest, Kind, Recipe, Root, Setup

SPLIT_SEEDS = {"test": 0, "val": 1_000_003, "train": 2_000_006}  # the tasks of each split differ by their seed
MAX_HORIZON, MAX_EPISODES = 100_000, 10_000
#: environment steps one rollout may hold in memory (tasks x episodes x horizon; about 100 bytes a step)
MAX_ROLLOUT_STEPS = 20_000_000
LEARNER_ARGS = ("policy", "tasks", "weighting")
OPTIMISER_KEYS = ("optimizer", "lr", "momentum", "weight_decay", "schedule", "lr_step", "lr_gamma", "grad_clip")


@dataclass
class RLEnv:
    """The environments: a task family by `name`, its `horizon` (null: the family's own: 100 steps for
    navigation2d, 200 for the cheetahs), `episodes` sampled per task at every rollout (the MAML paper's 20), and
    for a multi-task learner the fixed list of `tasks` (each a mapping of task parameters such as
    `{direction: -1}`, or its text form such as `direction=backward`)."""

    name: str = choice("navigation2d", tuple(ENVIRONMENTS))
    horizon: int | None = None
    episodes: int = 20
    tasks: list[str | dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        at_least(self, horizon=1, episodes=1)
        if self.horizon is not None and self.horizon > MAX_HORIZON:
            raise ValueError(f"horizon must be <= {MAX_HORIZON}, got {self.horizon}")
        if self.episodes > MAX_EPISODES:
            raise ValueError(f"episodes must be <= {MAX_EPISODES}, got {self.episodes}")


@dataclass
class PolicySpec:
    """A Gaussian policy: an MLP with tanh hidden layers `widths` gives the mean, and a learned state-independent
    standard deviation starts at `init_std`."""

    widths: list[int] = field(default_factory=lambda: [100, 100])
    init_std: float = 1.0

    def __post_init__(self) -> None:
        at_least(self, widths=1)
        if not 0 < self.init_std <= 100:
            raise ValueError(f"init_std must be in (0, 100], got {self.init_std}")


@dataclass
class RLMultiTask:
    """The multi-task learner's weighting of the per-task gradients, by name, with its constructor `options`."""

    weighting: str = choice("ew", tuple(AGGREGATOR_NAMES))
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.options = options(aggregator_class(self.weighting), self.options, "mtl.options", skip=("num_tasks",))


@dataclass
class RLEval:
    """The test: `tasks` fixed tasks (drawn with `seed`), the return before and after each of up to `steps`
    policy-gradient steps of `episodes` episodes (null: env.episodes) at step size `lr` (null: the learner's
    inner_lr); `random` also measures a freshly initialised policy fine-tuned the same way. `validate` measures
    the same on `val_tasks` other tasks every train.val_every iterations and keeps the best weights."""

    tasks: int = 40
    episodes: int | None = None
    steps: int = 3
    seed: int = 0
    lr: float | None = None
    random: bool = True
    validate: bool = False
    val_tasks: int = 10

    def __post_init__(self) -> None:
        at_least(self, tasks=1, episodes=1, steps=0, val_tasks=1)
        if self.steps > 100:
            raise ValueError(f"steps must be <= 100, got {self.steps}")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")


def _parse_algo(values: Any, key: str) -> dict[str, Any]:
    return parse_named(values, key, RL_ALGORITHMS, skip=LEARNER_ARGS)


@dataclass
class RLRecipe(Recipe):
    kind: str = "rl"
    env: RLEnv = field(default_factory=RLEnv)
    policy: PolicySpec = field(default_factory=PolicySpec)
    algo: dict[str, Any] = parsed(lambda: {"name": "maml"}, _parse_algo)  # noqa: RUF009
    mtl: RLMultiTask = field(default_factory=RLMultiTask)
    eval: RLEval = field(default_factory=RLEval)


def check_rollout_size(tasks: int, episodes: int, horizon: int, lower: str) -> None:
    """One ConfigError when a rollout of `tasks` x `episodes` episodes of `horizon` steps would not fit in memory
    (`lower`: the settings that shrink it)."""
    if tasks * episodes * horizon > MAX_ROLLOUT_STEPS:
        raise ConfigError(
            f"one rollout would hold {tasks} tasks x {episodes} episodes x {horizon} steps, more than "
            f"{MAX_ROLLOUT_STEPS:,} environment steps: lower {lower}"
        )


def task_family(recipe: RLRecipe) -> TaskFamily:
    """The recipe's task family (one ConfigError when its environment cannot be made here)."""
    return family(recipe.env.name, recipe.env.horizon)


def fixed_tasks(recipe: RLRecipe, tasks_of: TaskFamily) -> list[Task]:
    """The recipe's `env.tasks`, each checked against the family."""
    checked: list[Task] = []
    for i, task in enumerate(recipe.env.tasks or []):
        try:
            checked.append(tasks_of.parse_task(task) if isinstance(task, str) else tasks_of.check_task(task))
        except ConfigError as exc:
            raise ConfigError(f"env.tasks[{i}]: {exc}") from None
    labels = [tasks_of.describe(t) for t in checked]
    if len(set(labels)) < len(labels):
        raise ConfigError(f"env.tasks lists a task twice: {', '.join(labels)}")
    return checked


def learner(recipe: RLRecipe, seed: int | None = None) -> PolicyLearner:
    """A freshly initialised learner (seeded by train.seed, or `seed`)."""
    torch.manual_seed(recipe.train.seed if seed is None else seed)
    tasks_of = task_family(recipe)
    cls = RL_ALGORITHMS[recipe.algo["name"]]
    kwargs = {k: v for k, v in recipe.algo.items() if k != "name"}
    inputs = tasks_of.obs_dim
    if cls.fixed_tasks:
        tasks = fixed_tasks(recipe, tasks_of)
        inputs += len(tasks)
        weighting_cls = cast(type[Weighting], aggregator_class(recipe.mtl.weighting))
        weighting_args = dict(recipe.mtl.options)
        if weighting_cls.needs_num_tasks:
            weighting_args["num_tasks"] = len(tasks)
        with building(f"mtl.weighting ({recipe.mtl.weighting})"):
            kwargs.update(tasks=tasks, weighting=weighting_cls(**weighting_args))
    with building("policy"):
        policy = GaussianPolicy(inputs, tasks_of.act_dim, recipe.policy.widths, recipe.policy.init_std)
    with building(f"algo ({recipe.algo['name']})"):
        return cls(policy, **kwargs)


class RLKind(Kind):
    name = "rl"
    recipe_type: ClassVar[type[Recipe]] = RLRecipe
    unused_train_keys = frozenset({"precision"})
    eval_options = frozenset({"episodes", "seed"})
    validation_setting = "--set eval.validate=true"

    def load(self, values: dict[str, Any]) -> Recipe:
        """As every kind loads, and one error for a `train:` key set to other than its default that the learner's
        update never reads: TRPO's outer step takes no optimiser, and a multi-task iteration samples every one of
        its tasks (no meta-batch)."""
        recipe = cast(RLRecipe, super().load(values))
        raw = values.get("train")
        train: dict[str, Any] = raw if isinstance(raw, dict) else {}
        if RL_ALGORITHMS[recipe.algo["name"]].fixed_tasks:
            unused, why = {"meta_batch"}, "a multi-task iteration samples every task of env.tasks"
        elif recipe.algo.get("outer", "trpo") == "trpo":
            unused, why = set(OPTIMISER_KEYS), "TRPO's outer step uses no optimiser (algo.outer: ppo does)"
        else:
            unused, why = set(), ""
        defaults = FitConfig()  # a run's config.yaml lists every key, at its default when unused
        found = sorted(k for k in unused & set(train) if getattr(recipe.train, k) != getattr(defaults, k))
        if found:
            raise ConfigError(f"train.{found[0]} is not used by this recipe: {why}")
        return recipe

    def check(self, recipe: RLRecipe) -> None:
        cls = RL_ALGORITHMS[recipe.algo["name"]]
        if cls.fixed_tasks and not recipe.env.tasks:
            raise ConfigError(f"algo {recipe.algo['name']} learns a fixed list of tasks: give env.tasks")
        if not cls.fixed_tasks and recipe.env.tasks:
            raise ConfigError(
                f"env.tasks is for multi-task learners; {recipe.algo['name']} samples its tasks from the family"
            )
        if recipe.train.device != "cpu":
            raise ConfigError("rl runs sample their episodes on the CPU: train.device must be cpu")
        tasks_of = task_family(recipe)
        if recipe.env.tasks:
            fixed_tasks(recipe, tasks_of)
        tasks = len(recipe.env.tasks or []) if cls.fixed_tasks else max(recipe.train.meta_batch, recipe.eval.tasks)
        episodes = max(recipe.env.episodes, recipe.eval.episodes or 0)
        check_rollout_size(
            tasks, episodes, tasks_of.horizon, "train.meta_batch, eval.tasks, env.episodes or env.horizon"
        )

    def algorithm_label(self, recipe: RLRecipe) -> str:
        name = str(recipe.algo["name"])
        if RL_ALGORITHMS[name].fixed_tasks:
            return f"{name}-{recipe.mtl.weighting}"
        return f"{name}-{recipe.algo.get('outer', 'trpo')}"

    def dataset_label(self, recipe: RLRecipe) -> str:
        return recipe.env.name

    def _episodes(self, recipe: RLRecipe, request: EvalRequest | None = None) -> int:
        if request is not None and request.episodes is not None:
            return request.episodes
        return recipe.eval.episodes or recipe.env.episodes

    def protocols(
        self, recipe: RLRecipe, split: str, tasks: int, episodes: int, seed: int, with_random: bool
    ) -> list[EvalProtocol]:
        tasks_of = task_family(recipe)
        seed = seed + SPLIT_SEEDS[split]
        if RL_ALGORITHMS[recipe.algo["name"]].fixed_tasks:
            return [TaskReturns(tasks_of, recipe.env.name, fixed_tasks(recipe, tasks_of), episodes, seed)]
        inits = ["trained", "random"] if with_random else ["trained"]
        fresh: Callable[[], nn.Module] = lambda: learner(recipe, seed)  # noqa: E731
        return [
            AdaptationReturns(
                tasks_of, recipe.env.name, tasks, episodes, recipe.eval.steps, seed, init, recipe.eval.lr, fresh
            )
            for init in inits
        ]

    def validation_result(self, recipe: RLRecipe) -> type[Result] | None:
        if not recipe.eval.validate:
            return None
        return TaskReturnsResult if RL_ALGORITHMS[recipe.algo["name"]].fixed_tasks else AdaptationResult

    def validation_protocol(self, recipe: RLRecipe, root: Root = None) -> EvalProtocol | None:
        if not recipe.eval.validate:
            return None
        return self.protocols(recipe, "val", recipe.eval.val_tasks, self._episodes(recipe), recipe.eval.seed, False)[0]

    def model(self, recipe: RLRecipe, root: Root = None) -> nn.Module:
        return learner(recipe)

    def setup(
        self,
        recipe: RLRecipe,
        root: Root,
        out: Path,
        progress: bool,
        dist: DistContext = SINGLE,
        echo: Callable[[str], None] = print,
        resume: bool = False,
    ) -> Setup:
        if dist.active:
            raise ConfigError("rl runs train on one process: leave out --nproc")
        algo = learner(recipe)
        stream = Rollouts(task_family(recipe), recipe.env.episodes, recipe.train.seed)
        val = self.validation_protocol(recipe, root)
        return Setup(
            lambda sinks: RLTrainer(algo, stream, recipe.train, out=out, val=val, progress=progress, sinks=sinks)
        )

    def test_protocols(self, recipe: RLRecipe, request: EvalRequest, root: Root = None) -> list[EvalProtocol]:
        self.refuse_options(request)
        if request.split not in SPLIT_SEEDS:
            raise ConfigError(f"--split must be one of {', '.join(SPLIT_SEEDS)} for rl runs, got {request.split!r}")
        seed = recipe.eval.seed if request.seed is None else request.seed
        tasks = len(recipe.env.tasks or []) or recipe.eval.tasks
        check_rollout_size(tasks, self._episodes(recipe, request), task_family(recipe).horizon, "--episodes")
        return self.protocols(
            recipe, request.split, recipe.eval.tasks, self._episodes(recipe, request), seed, recipe.eval.random
        )
