"""Multi-task reinforcement learning: one policy for a fixed list of tasks, told which task it is in by a one-hot
code appended to its observation, trained on all of them at once. Each iteration samples every task's episodes,
forms one clipped-surrogate policy-gradient loss per task, and a multi-task weighting from `polyskill.mtl`
(equal weights, PCGrad, CAGrad, Nash-MTL, ...) turns the per-task gradients into the update, as in the PCGrad and
CAGrad papers' Meta-World experiments (which pair the aggregators with SAC; here the per-task losses are
on-policy)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.optim import Optimizer

from ...errors import ConfigError
from ...mtl.base import Weighting
from ..envs.base import Task
from ..losses import clipped_surrogate_loss
from ..policy import GaussianPolicy
from ..rollouts import Rollouts
from .base import PolicyLearner


class MultiTaskPolicy(PolicyLearner):
    """A task-conditioned Gaussian policy (its input: observation + one-hot task) over `tasks`, updated along
    `weighting`'s combination of the per-task clipped-surrogate gradients, `epochs` optimiser steps an iteration."""

    fixed_tasks = True

    def __init__(
        self,
        policy: GaussianPolicy,
        tasks: list[Task],
        weighting: Weighting,
        epochs: int = 5,
        clip: float = 0.2,
        inner_lr: float = 0.1,
        gamma: float = 0.99,
        gae_lambda: float = 1.0,
    ) -> None:
        super().__init__(policy, inner_lr, gamma, gae_lambda)
        if len(tasks) < 2:
            raise ConfigError(f"a multi-task policy needs env.tasks with at least 2 tasks, got {len(tasks)}")
        if epochs < 1 or clip <= 0:
            raise ConfigError(f"algo.epochs must be >= 1 and algo.clip > 0, got {epochs} and {clip}")
        if any(True for _ in weighting.parameters()):
            raise ConfigError(
                f"mtl.weighting {type(weighting).__name__} learns parameters of its own through the loss, which "
                f"the policy-gradient update does not train: use a gradient aggregator or ew, rlw, dwa"
            )
        if weighting.needs_losses_after_step or weighting.needs_meta_batch:
            raise ConfigError(
                f"mtl.weighting {type(weighting).__name__} reads losses after the step or a meta batch, which the "
                f"policy-gradient update does not give: use a gradient aggregator or ew, rlw, dwa"
            )
        self.tasks, self.weighting, self.epochs, self.clip = list(tasks), weighting, epochs, clip

    def inputs(self, obs: Tensor) -> Tensor:
        """Observations [T, ..., O] of the T tasks, each with its task's one-hot code appended."""
        tasks = len(self.tasks)
        code = F.one_hot(torch.arange(tasks), tasks).to(obs.dtype)
        return torch.cat([obs, code.view(tasks, *([1] * (obs.dim() - 2)), tasks).expand(*obs.shape[:-1], tasks)], -1)

    def update(self, stream: Rollouts, optimizer: Optimizer, meta_batch: int) -> dict[str, Tensor]:
        episodes = stream.run(self.tasks, self.actor())
        advantages = self.advantages(episodes)
        with torch.no_grad():
            old = self.log_prob(episodes)
        params = [p for p in self.policy.parameters() if p.requires_grad]
        weights = torch.zeros(len(self.tasks))
        for _ in range(self.epochs):
            log_probs = self.log_prob(episodes)
            losses = torch.stack(
                [
                    clipped_surrogate_loss(log_probs[i], old[i], advantages[i], episodes.mask[i], self.clip)
                    for i in range(len(self.tasks))
                ]
            )
            rows = []
            for i in range(len(self.tasks)):
                grads = torch.autograd.grad(losses[i], params, retain_graph=i + 1 < len(self.tasks), allow_unused=True)
                flat = [
                    (g if g is not None else torch.zeros_like(p)).reshape(-1)
                    for g, p in zip(grads, params, strict=True)
                ]
                rows.append(torch.cat(flat))
            aggregation = self.weighting.aggregate(torch.stack(rows), losses.detach())
            weights = aggregation.weights.detach()
            optimizer.zero_grad(set_to_none=True)
            offset = 0
            for p in params:
                p.grad = aggregation.direction[offset : offset + p.numel()].view_as(p).clone()
                offset += p.numel()
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        returns = episodes.returns().mean(1).detach()
        return {
            "return": returns.mean(),
            **{f"return_{i}": r for i, r in enumerate(returns)},
            **{f"weight_{i}": w for i, w in enumerate(weights)},
        }
