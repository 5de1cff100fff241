"""Task relatedness: gradient cosine similarity, lookahead inter-task affinity, and a grouping suggestion.

- Gradient cosine: cos(g_i, g_j) of the per-task gradients of the shared parameters, averaged over steps.
- Lookahead affinity (Fifty et al., 2021, "Efficiently identifying task groupings"): how a step on task i
  alone changes task j's loss, Z[i, j] = 1 - L_j(theta - lr * g_i) / L_j(theta), positive when task i's
  step helps task j, averaged over steps.
- Grouping: the partition of the tasks that maximises the summed mean affinity every task receives from the
  other members of its group (a task alone receives 0), exhaustive for up to 10 tasks, greedy merging above.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call


def cosine_from_gram(gram: Tensor) -> Tensor:
    """Pairwise cosine similarities [T, T] of the gradients whose Gram matrix is `gram`."""
    norms = gram.diagonal().clamp_min(0).sqrt()
    return gram / (norms[:, None] * norms[None, :]).clamp_min(torch.finfo(gram.dtype).tiny)


@torch.no_grad()
def lookahead_affinity(
    model: nn.Module,
    shared: list[Tensor],
    jac: Tensor,
    lr: float,
    losses_of: Callable[[dict[str, Tensor]], Tensor],
    x: Tensor,
    losses: Tensor,
) -> Tensor:
    """Z[i, j] = 1 - L_j(theta - lr g_i) / L_j(theta) for per-task gradients `jac` [T, P] of the `shared`
    parameters and the step's `losses` [T]; `losses_of(outputs)` gives the [T] losses of a forward pass."""
    names = {id(p): k for k, p in model.named_parameters()}
    sizes = [p.numel() for p in shared]
    rows = []
    for g in jac:
        params = {names[id(p)]: p - lr * d.view_as(p) for p, d in zip(shared, g.split(sizes), strict=True)}
        rows.append(losses_of(functional_call(model, params, (x,))))
    after = torch.stack(rows)
    return 1 - after / losses.clamp_min(torch.finfo(losses.dtype).tiny)[None, :]


class AffinityTracker(nn.Module):
    """Running means of the gradient-cosine and lookahead matrices, kept in buffers (so runs resume)."""

    cosine_sum: Tensor
    cosine_count: Tensor
    lookahead_sum: Tensor
    lookahead_count: Tensor

    def __init__(self, tasks: int) -> None:
        super().__init__()
        self.register_buffer("cosine_sum", torch.zeros(tasks, tasks, dtype=torch.float64))
        self.register_buffer("cosine_count", torch.zeros((), dtype=torch.long))
        self.register_buffer("lookahead_sum", torch.zeros(tasks, tasks, dtype=torch.float64))
        self.register_buffer("lookahead_count", torch.zeros((), dtype=torch.long))

    def add_gram(self, gram: Tensor) -> None:
        self.cosine_sum += cosine_from_gram(gram.detach().double())
        self.cosine_count += 1

    def add_lookahead(self, z: Tensor) -> None:
        self.lookahead_sum += z.detach().double()
        self.lookahead_count += 1

    def matrices(self) -> dict[str, Tensor]:
        """The mean matrices seen so far: 'cosine' and 'lookahead' (only those that have data)."""
        out = {}
        if self.cosine_count > 0:
            out["cosine"] = self.cosine_sum / self.cosine_count
        if self.lookahead_count > 0:
            out["lookahead"] = self.lookahead_sum / self.lookahead_count
        return out

    def report(self, tasks: tuple[str, ...]) -> dict[str, Any]:
        """A JSON-ready summary: task names, matrices, step counts and a suggested grouping per matrix."""
        out: dict[str, Any] = {
            "tasks": list(tasks),
            "steps": {"cosine": int(self.cosine_count), "lookahead": int(self.lookahead_count)},
        }
        for name, matrix in self.matrices().items():
            out[name] = matrix.tolist()
            out[f"groups_{name}"] = suggest_groups(matrix, tasks)
        return out


def _partitions(n: int):
    """Every set partition of range(n) as a restricted growth string (label of the group of each item)."""

    def grow(prefix: list[int], top: int):
        if len(prefix) == n:
            yield tuple(prefix)
            return
        for label in range(top + 2):
            yield from grow([*prefix, label], max(top, label))

    yield from grow([0], 0) if n else iter([()])


def partition_scores(labels: np.ndarray, affinity: np.ndarray) -> np.ndarray:
    """Score of each partition (rows of group labels [N, T]): sum over tasks of the mean affinity the task
    receives from the other members of its group (0 for a task alone)."""
    same = labels[:, :, None] == labels[:, None, :]
    same &= ~np.eye(labels.shape[1], dtype=bool)[None]
    received = (same * affinity.T[None]).sum(-1)
    members = same.sum(-1)
    return np.where(members > 0, received / np.maximum(members, 1), 0.0).sum(-1)


def suggest_groups(
    affinity: Tensor | np.ndarray, tasks: tuple[str, ...] | list[str], max_groups: int | None = None
) -> list[list[str]]:
    """Which tasks to train together: the best-scoring partition (see `partition_scores`) with at most
    `max_groups` groups; among equal scores, the one with fewer groups."""
    a = np.asarray(affinity, dtype=np.float64)
    a = np.nan_to_num(a)
    n = len(tasks)
    limit = max_groups or n
    if n <= 10:
        labels = np.array(list(_partitions(n)), dtype=np.int64).reshape(-1, n)
        groups = labels.max(1) + 1
        labels = labels[groups <= limit]
        scores = partition_scores(labels, a) - 1e-9 * (labels.max(1) + 1)
        best = labels[int(np.argmax(scores))]
    else:
        best = _greedy(a, limit)
    out: dict[int, list[str]] = {}
    for task, label in zip(tasks, best.tolist(), strict=True):
        out.setdefault(label, []).append(task)
    return list(out.values())


def _greedy(a: np.ndarray, limit: int) -> np.ndarray:
    """Start from singletons; merge the pair of groups that raises the score most (the first such pair in
    (group, group) order on ties), while it rises (or while there are more than `limit` groups).

    A group G contributes S(G) / (|G| - 1) to the score, S(G) being the sum of the affinities between its
    distinct members (0 for a task alone), so a merge changes only the two groups' terms; with the block sums
    W[g, h] of the affinities from group g to group h every candidate merge is scored at once: O(T^3) in all."""
    n = len(a)
    labels = np.arange(n)
    block = a - np.diag(np.diag(a))
    size = np.ones(n)
    alive = np.ones(n, dtype=bool)
    upper = np.triu(np.ones((n, n), dtype=bool), 1)

    def contribution(inner: np.ndarray, members: np.ndarray) -> np.ndarray:
        return np.where(members > 1, inner / np.maximum(members - 1, 1), 0.0)

    while True:
        inner = np.diag(block)
        own = contribution(inner, size)
        merged = contribution(inner[:, None] + inner[None, :] + block + block.T, size[:, None] + size[None, :])
        gain = merged - own[:, None] - own[None, :]
        valid = upper & alive[:, None] & alive[None, :]
        if not valid.any():
            return labels
        flat = np.where(valid, gain, -np.inf).ravel()
        pick = int(np.argmax(flat))
        if flat[pick] <= 0 and int(alive.sum()) <= limit:
            return labels
        g, h = divmod(pick, n)
        labels = np.where(labels == h, g, labels)
        block[g, :] += block[h, :]
        block[:, g] += block[:, h]
        block[h, :] = 0.0
        block[:, h] = 0.0
        size[g] += size[h]
        alive[h] = False
