"""A synthetic dense multi-task regression with planted task relations, to check what MTL methods find.

Eight linear tasks y_t = w_t . x + noise * e, x ~ N(0, I), e ~ N(0, 1). The weights come in three groups:
A (a1, a2, a3) around a unit vector u_A, B (b1, b2, b3) around a unit vector u_B orthogonal to u_A (unrelated
to A), and C (c1, c2) around -u_A (in conflict with A). Each task adds its own perturbation of norm about
`spread` to its group centre, so tasks of a group are related but not identical. The weights depend on `seed`
only; the inputs and noise of each split come from their own stream, so the splits share the tasks and differ in
their examples.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError
from .multitask import MultiTaskData

SYNTHETIC_GROUPS: dict[str, tuple[str, ...]] = {"A": ("a1", "a2", "a3"), "B": ("b1", "b2", "b3"), "C": ("c1", "c2")}
SYNTHETIC_CONFLICTS: tuple[tuple[str, str], ...] = (("A", "C"),)
TASKS: tuple[str, ...] = sum(SYNTHETIC_GROUPS.values(), ())
SPLITS = ("train", "val", "test")
_STREAMS = {"weights": 0, "train": 1, "val": 2, "test": 3}


def _generator(seed: int, stream: str) -> torch.Generator:
    state = np.random.SeedSequence([seed, _STREAMS[stream]]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & 0x7FFFFFFFFFFFFFFF)


def _check_seed(seed: int) -> None:
    if not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"synthetic seed must be a non-negative integer, got {seed!r}")


def synthetic_groups() -> list[list[str]]:
    """The planted groups of related tasks: [[a1, a2, a3], [b1, b2, b3], [c1, c2]] (A and C kept apart)."""
    return [list(group) for group in SYNTHETIC_GROUPS.values()]


def synthetic_relations() -> Tensor:
    """[T, T] float32 in TASKS order: +1 for tasks of one group (a task with itself too), -1 for a pair across
    conflicting groups (A and C), 0 for unrelated tasks."""
    group = {task: name for name, tasks in SYNTHETIC_GROUPS.items() for task in tasks}
    conflicts = {frozenset(pair) for pair in SYNTHETIC_CONFLICTS}
    out = torch.zeros(len(TASKS), len(TASKS))
    for i, s in enumerate(TASKS):
        for j, t in enumerate(TASKS):
            if group[s] == group[t]:
                out[i, j] = 1.0
            elif frozenset((group[s], group[t])) in conflicts:
                out[i, j] = -1.0
    return out


def synthetic_weights(seed: int = 0, dim: int = 16, spread: float = 0.2) -> Tensor:
    """The true task weights [T, dim] (float32, TASKS order) of the data set drawn with `seed`."""
    _check_seed(seed)
    if not isinstance(dim, int) or dim < 2:
        raise ConfigError(f"synthetic dim must be an integer >= 2, got {dim!r}")
    if not spread >= 0:
        raise ConfigError(f"synthetic spread must be >= 0, got {spread!r}")
    g = _generator(seed, "weights")
    u_a, u_b = torch.randn(2, dim, generator=g, dtype=torch.float64).unbind(0)
    u_a = u_a / u_a.norm()
    u_b = u_b - (u_b @ u_a) * u_a
    u_b = u_b / u_b.norm()
    centre = {"A": u_a, "B": u_b, "C": -u_a}
    centres = torch.stack([centre[name] for name, tasks in SYNTHETIC_GROUPS.items() for _ in tasks])
    perturbation = torch.randn(len(TASKS), dim, generator=g, dtype=torch.float64) / dim**0.5
    return (centres + spread * perturbation).float()


def mtl_synthetic(
    split: str,
    seed: int = 0,
    n_train: int = 2000,
    n_val: int = 500,
    n_test: int = 1000,
    dim: int = 16,
    noise: float = 0.1,
    spread: float = 0.2,
) -> MultiTaskData:
    """Split `split` of the planted-relations regression: x float32 [N, dim], dense y float32 [N, 8], tasks TASKS.

    The ground truth is `synthetic_weights(seed, dim, spread)`, `synthetic_relations()` and `synthetic_groups()`.
    """
    sizes = {"train": n_train, "val": n_val, "test": n_test}
    if split not in SPLITS:
        raise ConfigError(f"unknown synthetic split {split!r}; choose one of {', '.join(SPLITS)}")
    if not isinstance(sizes[split], int) or sizes[split] < 1:
        raise ConfigError(f"synthetic n_{split} must be a positive integer, got {sizes[split]!r}")
    if not noise >= 0:
        raise ConfigError(f"synthetic noise must be >= 0, got {noise!r}")
    weights = synthetic_weights(seed, dim, spread)
    g = _generator(seed, split)
    x = torch.randn(sizes[split], dim, generator=g)
    y = x @ weights.T + noise * torch.randn(sizes[split], len(TASKS), generator=g)
    return MultiTaskData(TASKS, x, y, (0,) * len(TASKS))
