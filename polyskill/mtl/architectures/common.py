"""What the multi-task architectures share: option and task-name checks, building encoders, towers and heads,
probing feature shapes, the mixing matrices of cross-stitch and sluice, softmax gates over experts (MMoE's family),
and the shared-xor-task parameter check.

An encoder factory builds an `nn.Sequential` whose children are the *stages* (layers or blocks) between which
the architectures that connect towers act; a head factory builds one task's head on the encoder's output.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import cast

import torch
from torch import Tensor, nn

from ...errors import ConfigError
from ..base import MultiTaskModel

EncoderFactory = Callable[[], nn.Sequential]
HeadFactory = Callable[[str], nn.Module]
Mixer = Callable[[int, list[Tensor]], list[Tensor]]


def check_option(owner: str, name: str, ok: bool, expected: str, value: object) -> None:
    """Raise ConfigError("<owner>: option <name> must be <expected>, got <value>") unless `ok`."""
    if not ok:
        raise ConfigError(f"{owner}: option {name} must be {expected}, got {value!r}")


def is_int(value: object, minimum: int) -> bool:
    """Whether `value` is an int (not a bool) of at least `minimum`."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def is_real(value: object, low: float, high: float = math.inf) -> bool:
    """Whether `value` is a finite real number in [low, high]."""
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and low <= value <= high
    )


def check_tasks(tasks: Sequence[str]) -> tuple[str, ...]:
    """The task names as a tuple: at least one, distinct, non-empty, usable as `nn.ModuleDict` keys."""
    if isinstance(tasks, str) or not isinstance(tasks, Sequence) or len(tasks) == 0:
        raise ConfigError(f"tasks must be a non-empty list of task names, got {tasks!r}")
    for task in tasks:
        if not isinstance(task, str) or not task or "." in task or hasattr(nn.ModuleDict, task):
            raise ConfigError(
                f"task name {task!r} is not usable: names are non-empty strings without '.' "
                "that are not attributes of nn.ModuleDict"
            )
    if len(set(tasks)) != len(tasks):
        raise ConfigError(f"task names must be distinct, got {list(tasks)}")
    return tuple(tasks)


def check_input_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    """One example's shape as a tuple of positive ints."""
    if not isinstance(input_shape, Sequence) or not input_shape or not all(is_int(d, 1) for d in input_shape):
        raise ConfigError(f"input_shape must be one example's shape (positive ints), got {input_shape!r}")
    return tuple(input_shape)


def build_encoder(encoder: EncoderFactory) -> nn.Sequential:
    """A fresh encoder from the factory, checked to be an `nn.Sequential` with at least one stage."""
    built = encoder()
    if not isinstance(built, nn.Sequential) or len(built) == 0:
        raise ConfigError(f"encoder() must return an nn.Sequential of stages, got {type(built).__name__}")
    return built


def probe(module: nn.Module, input_shape: Sequence[int], what: str) -> torch.Size:
    """The per-example output shape of `module` on a zero batch, in eval mode and without gradients.

    Eval mode keeps batch-norm statistics untouched; every submodule's mode is restored afterwards.
    """
    modes = [(m, m.training) for m in module.modules()]
    first = next(module.parameters(), None)
    dtype = first.dtype if first is not None else torch.get_default_dtype()
    device = first.device if first is not None else None
    module.eval()
    try:
        with torch.no_grad():
            out = module(torch.zeros(2, *input_shape, dtype=dtype, device=device))
    except (RuntimeError, ValueError) as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"{what} does not accept inputs of shape {tuple(input_shape)}: {message}") from None
    finally:
        for m, training in modes:
            m.training = training
    if not isinstance(out, Tensor) or out.dim() < 2:
        raise ConfigError(f"{what} must return a [batch, features...] tensor on inputs of shape {tuple(input_shape)}")
    return out.shape[1:]


def stage_shapes(encoder: nn.Sequential, input_shape: Sequence[int]) -> list[torch.Size]:
    """The per-example output shape of every stage of `encoder` (its children, in order)."""
    shapes: list[torch.Size] = []
    shape = torch.Size(input_shape)
    for s, stage in enumerate(encoder):
        shape = probe(stage, shape, f"encoder stage {s} ({type(stage).__name__})")
        shapes.append(shape)
    return shapes


def build_heads(tasks: Sequence[str], head: HeadFactory, feature_shape: Sequence[int]) -> nn.ModuleDict:
    """One fresh head per task, each checked to accept features of `feature_shape`."""
    heads = nn.ModuleDict({task: head(task) for task in tasks})
    for task, module in heads.items():
        if not isinstance(module, nn.Module):
            raise ConfigError(f"head({task!r}) must return an nn.Module, got {type(module).__name__}")
        probe(module, feature_shape, f"head({task!r})")
    return heads


def build_experts(encoder: EncoderFactory, count: int) -> nn.ModuleList:
    """`count` fresh encoders (each an `nn.Sequential` of stages) from the factory."""
    return nn.ModuleList(build_encoder(encoder) for _ in range(count))


def gate(in_shape: Sequence[int], experts: int) -> nn.Linear:
    """The linear map from one flattened example of shape `in_shape` to `experts` gate logits."""
    return nn.Linear(math.prod(in_shape), experts)


def mix_experts(weights: Tensor, stacked: Tensor) -> Tensor:
    """sum_e weights[b, e] * stacked[b, e, ...]: each example's mixture of the experts' outputs, for `weights`
    [batch, experts] and batch-first `stacked` [batch, experts, ...]."""
    return (weights.reshape(*weights.shape, *([1] * (stacked.dim() - 2))) * stacked).sum(1)


def parameters_of(*modules: nn.Module) -> list[nn.Parameter]:
    """The parameters of the given modules, in order."""
    return [p for module in modules for p in module.parameters()]


def mixing_matrix(n: int, init: str, alpha_self: float) -> Tensor:
    """An [n, n] mixing matrix: the identity ("identity"), or `alpha_self` on the diagonal and the rest of
    each row spread evenly over the others ("mixed", rows sum to 1; a single unit keeps weight 1)."""
    if init == "identity" or n == 1:
        return torch.eye(n)
    off = (1.0 - alpha_self) / (n - 1)
    return torch.full((n, n), off) + (alpha_self - off) * torch.eye(n)


class TowerModel(MultiTaskModel):
    """One encoder (a *tower*) and one head per task, nothing shared; subclasses add what connects them.

    `stage_shapes` holds the per-example output shape of every stage of a tower. `share_towers` (False here;
    cross-stitch's and sluice's option) declares the towers shared parameters rather than their tasks' own: once
    the towers are mixed, every task's output depends on every tower.
    """

    share_towers = False

    def __init__(
        self, tasks: Sequence[str], encoder: EncoderFactory, head: HeadFactory, input_shape: Sequence[int]
    ) -> None:
        super().__init__()
        self.tasks = check_tasks(tasks)
        shape = check_input_shape(input_shape)
        self.towers = nn.ModuleDict({task: build_encoder(encoder) for task in self.tasks})
        layouts = {tuple((n, p.shape) for n, p in tower.named_parameters()) for tower in self.towers.values()}
        if len(layouts) != 1:
            raise ConfigError("encoder() must build the same network (same stages and parameter shapes) every call")
        self.stage_shapes = stage_shapes(cast(nn.Sequential, self.towers[self.tasks[0]]), shape)
        self.heads = build_heads(self.tasks, head, self.stage_shapes[-1])

    def run_towers(self, x: Tensor, mix: Mixer | None = None) -> list[list[Tensor]]:
        """Every tower's stage outputs, indexed [task][stage].

        With `mix`, after every stage but the last, `mix(stage, outputs)` (one output per task, in task order)
        returns the features each tower's next stage reads; those mixed features are what is recorded.
        """
        features = [x] * len(self.tasks)
        recorded: list[list[Tensor]] = [[] for _ in self.tasks]
        depth = len(self.stage_shapes)
        for s in range(depth):
            features = [
                cast(nn.Sequential, self.towers[task])[s](f) for task, f in zip(self.tasks, features, strict=True)
            ]
            if mix is not None and s < depth - 1:
                features = mix(s, features)
            for record, f in zip(recorded, features, strict=True):
                record.append(f)
        return recorded

    def tower_parameters(self) -> list[nn.Parameter]:
        """Every tower's parameters, in task order, when the towers are declared shared; else none."""
        return parameters_of(*self.towers.values()) if self.share_towers else []

    def shared_parameters(self) -> list[nn.Parameter]:
        """The towers when declared shared, else none (the towers belong to their tasks)."""
        return self.tower_parameters()

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        """The task's head, and its tower unless the towers are declared shared."""
        if self.share_towers:
            return list(self.heads[task].parameters())
        return parameters_of(self.towers[task], self.heads[task])


def partition_problems(model: MultiTaskModel) -> list[str]:
    """What breaks "every parameter is shared xor owned by exactly one task": an empty list when nothing does."""
    names = {id(p): name for name, p in model.named_parameters()}
    owners: dict[int, list[str]] = {}
    for p in model.shared_parameters():
        owners.setdefault(id(p), []).append("shared")
    for task in model.tasks:
        for p in model.task_parameters(task):
            owners.setdefault(id(p), []).append(task)
    problems = [
        f"{names.get(pid, 'a parameter outside model.parameters()')} is listed as {who}"
        for pid, who in owners.items()
        if len(who) != 1 or pid not in names
    ]
    problems += [f"{name} is neither shared nor owned by a task" for pid, name in names.items() if pid not in owners]
    return problems


def check_partition(model: MultiTaskModel) -> None:
    """Raise ValueError naming every parameter that is not shared xor owned by exactly one task."""
    problems = partition_problems(model)
    if problems:
        raise ValueError(f"{type(model).__name__}: " + "; ".join(problems))
