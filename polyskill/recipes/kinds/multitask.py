"""Multi-task learning (`kind: multitask`): one model for every task of a data set (an architecture from
`mtl.architectures`, an aggregator from `mtl.weighting`), per-task metrics on the validation and test splits,
delta-m against a single-task baseline run."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, cast

import torch
from torch import nn

from ...data.mtl_batches import MultiTaskBatches
from ...data.multitask import MultiTaskData
from ...distributed import SINGLE, DistContext, rank_seed
from ...errors import ConfigError, RunError
from ...eval.multitask import MultiTaskMetrics, MultiTaskResult, delta_m
from ...eval.protocol import EvalProtocol
from ...eval.result import Result
from ...eval.summary import RunSummary
from ...mtl import AGGREGATOR_NAMES, ARCHITECTURE_NAMES, aggregator_class, architecture_class
from ...mtl.base import JacobianAggregator, MultiTaskModel, Weighting
from ...mtl.learner import MultiTaskLearner
from ...nn.lenet import LeNetEncoder, lenet_head
from ...train.checkpoint import read_json, write_json
from ...train.multitask import MultiTaskTrainer
from ..spec import at_least, building, choice, options
from .base import EvalRequest, Kind, Recipe, Root, Setup
from .datasets import MULTITASK_SOURCES, multitask_data


@dataclass
class MultiTaskDataSpec:
    """The data set, its fixed train/val/test splits drawn with `split_seed`, and `tasks` (Parkinsons:
    `targets`, motor and total UPDRS, or `subjects`, one task per subject). `val: false` trains without
    validation."""

    dataset: str = choice("multifashion", tuple(MULTITASK_SOURCES))
    val: bool | None = True
    split_seed: int = 0
    tasks: str | None = None


@dataclass
class MultiTaskNetwork:
    """The shared encoder: `lenet` (images) or `mlp` with hidden layer `widths` (its stages are what
    cross-stitch, sluice and MTAN connect); each task gets a linear head."""

    backbone: str = choice("mlp", ("lenet", "mlp"))
    widths: list[int] = field(default_factory=lambda: [64])

    def __post_init__(self) -> None:
        at_least(self, widths=1)


@dataclass
class MTLSpec:
    """Multi-task training: the architecture and the aggregator (by name, with their constructor `options`),
    `rep_grad` (aggregate gradients of the shared representation, MGDA-UB style), the batch (`batch_size`
    examples, or `task_batch` examples of every task for data where each example belongs to one task),
    `affinity_every` (measure lookahead task affinity every that many steps; 0: off), `tie_heads` (start every
    task head from the same weights, so that the per-task gradients on the shared layers differ only by what
    the tasks ask of them: what task-affinity measurements want) and `baseline`, the run directory of
    single-task baselines that delta-m compares with."""

    architecture: str = choice("hps", tuple(ARCHITECTURE_NAMES))
    weighting: str = choice("ew", tuple(AGGREGATOR_NAMES))
    options: dict[str, Any] = field(default_factory=dict)
    architecture_options: dict[str, Any] = field(default_factory=dict)
    rep_grad: bool = False
    batch_size: int = 256
    task_batch: int = 8
    affinity_every: int = 0
    tie_heads: bool = False
    baseline: str | None = None

    def __post_init__(self) -> None:
        at_least(self, batch_size=1, task_batch=1, affinity_every=0)
        self.options = options(aggregator_class(self.weighting), self.options, "mtl.options", skip=("num_tasks",))
        self.architecture_options = options(
            architecture_class(self.architecture),
            self.architecture_options,
            "mtl.architecture_options",
            skip=("tasks", "encoder", "head", "input_shape"),
        )


@dataclass
class MultiTaskRecipe(Recipe):
    kind: str = "multitask"
    data: MultiTaskDataSpec = field(default_factory=MultiTaskDataSpec)
    model: MultiTaskNetwork = field(default_factory=MultiTaskNetwork)
    mtl: MTLSpec = field(default_factory=MTLSpec)


def _mlp_stages(widths: list[int], inputs: int, flatten: bool) -> nn.Sequential:
    """An MLP encoder whose stages are Linear + ReLU blocks (what cross-stitch and MTAN connect)."""
    sizes = [inputs, *widths]
    stages = nn.Sequential(*[nn.Sequential(nn.Linear(a, b), nn.ReLU()) for a, b in itertools.pairwise(sizes)])
    if flatten:
        stages[0] = nn.Sequential(nn.Flatten(), *cast(nn.Sequential, stages[0]))
    return stages


def _encoder_and_head(
    recipe: MultiTaskRecipe, data: MultiTaskData
) -> tuple[Callable[[], nn.Module], Callable[[str], nn.Module]]:
    spec = recipe.model
    classes = dict(zip(data.tasks, data.classes, strict=True))
    if spec.backbone == "lenet":
        if data.x.dim() != 4:
            raise ConfigError(
                f"model.backbone lenet reads images; {recipe.data.dataset} has feature vectors "
                f"(use model.backbone: mlp)"
            )
        channels, size = data.x.shape[1], data.x.shape[-1]
        return (lambda: LeNetEncoder(channels, size)), (lambda task: lenet_head(classes[task] or 1))
    inputs, flatten = math.prod(data.x.shape[1:]), data.x.dim() > 2
    return (
        (lambda: _mlp_stages(spec.widths, inputs, flatten)),
        (lambda task: nn.Linear(spec.widths[-1], classes[task] or 1)),
    )


def mtl_model(recipe: MultiTaskRecipe, data: MultiTaskData) -> MultiTaskModel:
    """The recipe's architecture over its encoder, one head per task of `data`."""
    encoder, head = _encoder_and_head(recipe, data)
    cls = architecture_class(recipe.mtl.architecture)
    with building(f"mtl.architecture ({recipe.mtl.architecture})"):
        return cls(data.tasks, encoder, head, tuple(data.x.shape[1:]), **recipe.mtl.architecture_options)


def tie_heads(model: MultiTaskModel) -> None:
    """Give every task head the first task's initial weights."""
    try:
        heads = model.heads
    except AttributeError:
        heads = None
    if not isinstance(heads, nn.ModuleDict):
        raise ConfigError(f"mtl.tie_heads: {type(model).__name__} has no per-task heads to tie")
    first = heads[model.tasks[0]].state_dict()
    for task in model.tasks[1:]:
        heads[task].load_state_dict(first)


def learner(recipe: MultiTaskRecipe, data: MultiTaskData) -> MultiTaskLearner:
    """A freshly initialised learner (seeded by train.seed) for the tasks of `data`."""
    torch.manual_seed(recipe.train.seed)
    spec = recipe.mtl
    model = mtl_model(recipe, data)
    if spec.tie_heads:
        tie_heads(model)
    cls = cast(type[Weighting], aggregator_class(spec.weighting))
    kwargs = dict(spec.options)
    if cls.needs_num_tasks:
        kwargs["num_tasks"] = len(data.tasks)
    with building(f"mtl.weighting ({spec.weighting})"):
        aggregator = cls(**kwargs)
    if spec.rep_grad:
        try:
            model.forward_with_representation(data.x[:2])
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if isinstance(aggregator, JacobianAggregator) and not aggregator.acts_per_coordinate:
            raise ConfigError(
                f"mtl.rep_grad: {spec.weighting} reads the whole per-task gradients of the shared parameters, which "
                f"the representation's are not; use mtl.rep_grad: false"
            )
    return MultiTaskLearner(
        model,
        aggregator,
        data.classes,
        partitioned=data.partitioned,
        rep_grad=spec.rep_grad,
        affinity_every=spec.affinity_every,
        lookahead_lr=recipe.train.lr,
    )


def rank_batches(recipe: MultiTaskRecipe, data: MultiTaskData, dist: DistContext = SINGLE) -> MultiTaskBatches:
    """Rank `dist.rank`'s training batches: its share of every global batch (`mtl.batch_size` examples, or
    `mtl.task_batch` of every task for partitioned data, split evenly over the ranks), from its own seeded stream
    (rank 0 keeps `train.seed`, so one process draws what it always drew)."""
    spec = recipe.mtl
    name = "task_batch" if data.partitioned else "batch_size"
    size = getattr(spec, name)
    if size % dist.world:
        raise ConfigError(f"mtl.{name} ({size}) is the global batch and must split evenly over {dist.world} processes")
    local = {"batch_size": spec.batch_size, "task_batch": spec.task_batch, name: size // dist.world}
    try:
        return MultiTaskBatches(
            data, local["batch_size"], local["task_batch"], seed=rank_seed(recipe.train.seed, dist.rank)
        )
    except ValueError as exc:
        raise ConfigError(f"mtl: {exc}") from None


class MultiTaskKind(Kind):
    name = "multitask"
    recipe_type: ClassVar[type[Recipe]] = MultiTaskRecipe
    unused_train_keys = frozenset({"meta_batch", "precision"})
    eval_options = frozenset({"baseline"})

    def check(self, recipe: MultiTaskRecipe) -> None:
        if recipe.data.tasks is not None and recipe.data.dataset != "parkinsons":
            raise ConfigError(f"data.tasks applies to parkinsons only, not to {recipe.data.dataset}")

    def algorithm_label(self, recipe: MultiTaskRecipe) -> str:
        return f"{recipe.mtl.architecture}+{recipe.mtl.weighting}"

    def dataset_label(self, recipe: MultiTaskRecipe) -> str:
        return recipe.data.dataset

    def validation_result(self, recipe: MultiTaskRecipe) -> type[Result] | None:
        return MultiTaskResult if recipe.data.val else None

    def validation_protocol(self, recipe: MultiTaskRecipe, root: Root = None) -> EvalProtocol | None:
        return MultiTaskMetrics(multitask_data(recipe.data, "val", root), "val") if recipe.data.val else None

    def model(self, recipe: MultiTaskRecipe, root: Root = None) -> nn.Module:
        return learner(recipe, multitask_data(recipe.data, "train", root))

    def setup(
        self,
        recipe: MultiTaskRecipe,
        root: Root,
        out: Path,
        progress: bool,
        dist: DistContext = SINGLE,
        echo: Callable[[str], None] = print,
        resume: bool = False,
    ) -> Setup:
        train = multitask_data(recipe.data, "train", root)
        model = learner(recipe, train)
        if model.aggregator.needs_meta_batch and dist.world > 1:
            raise ConfigError(
                f"mtl.weighting {recipe.mtl.weighting} trains its weights on a meta batch, which runs on one process "
                f"only: drop --nproc"
            )
        batches = rank_batches(recipe, train, dist)
        val = self.validation_protocol(recipe, root)

        def finish(out: Path) -> None:
            report = model.affinity.report(model.tasks)
            if any(report["steps"].values()):
                write_json(out / "affinity.json", report)

        return Setup(
            lambda sinks: MultiTaskTrainer(
                model, batches, recipe.train, out=out, val=val, progress=progress, sinks=sinks, dist=dist
            ),
            finish,
        )

    def test_protocols(self, recipe: MultiTaskRecipe, request: EvalRequest, root: Root = None) -> list[EvalProtocol]:
        self.refuse_options(request)
        return [MultiTaskMetrics(multitask_data(recipe.data, request.split, root), request.split)]

    def finish_results(
        self, recipe: MultiTaskRecipe, results: list[Result], request: EvalRequest, echo: Callable[[str], None]
    ) -> list[Result]:
        """Each task's metrics printed, and delta-m against the baseline run (--baseline, else mtl.baseline)."""
        finished: list[Result] = []
        for result in results:
            assert isinstance(result, MultiTaskResult)
            if len(result.per_task) <= 16:
                for task, metrics in result.per_task.items():
                    echo(f"  {task}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k != "n"))
            baseline = request.baseline or recipe.mtl.baseline
            if request.baseline is None and baseline and not (Path(baseline) / "summary.json").is_file():
                echo(
                    f"{request.split}: no delta-m: the baseline run {baseline} is not there yet (train it, then "
                    f"`polyskill eval RUN`)"
                )
            elif baseline:
                value = delta_m(result, baseline_result(baseline, request.split))
                result = MultiTaskResult(
                    result.split, result.per_task, result.overall, result.primary, value, str(baseline)
                )
                echo(f"{request.split}: delta-m {value:+.2f}% against {baseline}")
            finished.append(result)
        return finished


def baseline_result(baseline: str | Path, split: str) -> MultiTaskResult:
    """The per-task results a baseline run stored for `split`."""
    path = Path(baseline) / "summary.json"
    if not path.is_file():
        raise RunError(f"baseline {baseline} has no summary.json: train and evaluate it first")
    stored = [r for r in RunSummary.from_dict(read_json(path)).results.get(split, []) if isinstance(r, MultiTaskResult)]
    if not stored:
        raise RunError(f"baseline {baseline} has no multi-task {split} results: run `polyskill eval {baseline}`")
    return stored[-1]
