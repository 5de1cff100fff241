"""Task selection: which training tasks to learn from for a given target task.

Two rankings of candidate tasks, each seen through its data (x [n, ...], y [n, ...], n may differ by task):

- `rank_by_embedding`: cosine similarity of task embeddings (the task-conditioned learner's encoder, or any
  function from a support set to a vector);
- `rank_by_gradient`: cosine similarity of the tasks' loss gradients at shared parameters, the gradient
  affinity of the multi-task tools (`polyskill.mtl.affinity.cosine_from_gram`) between the target and each
  candidate.

`top_k` then picks the k best; comparing with k tasks drawn at random tells whether the ranking helps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from ..mtl.affinity import cosine_from_gram

TaskData = tuple[Tensor, Tensor]


def rank_by_embedding(
    embed: Callable[[Tensor, Tensor], Tensor], target: TaskData, candidates: Sequence[TaskData]
) -> tuple[Tensor, Tensor]:
    """Candidate indices, most similar first, and their cosine similarities to the target [C].

    `embed(x [1, n, ...], y [1, n, ...]) -> [1, D]` embeds one task from its examples."""
    with torch.no_grad():
        z_target = embed(target[0].unsqueeze(0), target[1].unsqueeze(0))
        z = torch.cat([embed(x.unsqueeze(0), y.unsqueeze(0)) for x, y in candidates])
    similarity = F.cosine_similarity(z, z_target, dim=-1)
    return similarity.argsort(descending=True), similarity


def task_gradients(model: nn.Module, loss: Callable[[Tensor, Tensor], Tensor], tasks: Sequence[TaskData]) -> Tensor:
    """The gradient of each task's mean loss at the model's parameters, flattened: [T, P]."""
    params = {n: p.detach() for n, p in model.named_parameters()}
    rows = []
    for x, y in tasks:
        leaves = {n: p.clone().requires_grad_() for n, p in params.items()}
        value = loss(functional_call(model, leaves, (x,)), y)
        rows.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(value, list(leaves.values()))]))
    return torch.stack(rows)


def rank_by_gradient(
    model: nn.Module, loss: Callable[[Tensor, Tensor], Tensor], target: TaskData, candidates: Sequence[TaskData]
) -> tuple[Tensor, Tensor]:
    """Candidate indices, most aligned first, and the cosine of each candidate's loss gradient with the
    target's [C] (at the model's current parameters)."""
    grads = task_gradients(model, loss, [target, *candidates]).double()
    cosine = cosine_from_gram(grads @ grads.T)[0, 1:].float()
    return cosine.argsort(descending=True), cosine


def top_k(order: Tensor, k: int) -> list[int]:
    """The first k indices of a ranking."""
    if not 1 <= k <= len(order):
        raise ValueError(f"k must be between 1 and the number of candidates ({len(order)}), got {k}")
    return order[:k].tolist()
