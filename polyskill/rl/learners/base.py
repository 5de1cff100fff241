"""What every reinforcement-learning learner shares: a Gaussian policy, advantages from a per-task linear baseline
and GAE, the vanilla policy-gradient step that adapts a policy to a task, and the adaptation curve that evaluation
reads (the return after 0, 1, ..., k such steps). A learner's own part is `update`, one training iteration.

Per-task parameters (MAML's adapted policies) are kept stacked on a leading task axis, [T, ...], so that the tasks
of a meta-batch act, adapt and are differentiated together: one batched matrix product per layer, not one
network call per task."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.distributions import Normal
from torch.optim import Optimizer

from ..baseline import linear_baseline
from ..episodes import Episodes
from ..losses import reinforce_loss
from ..policy import GaussianPolicy
from ..returns import discounted_returns, gae, normalize
from ..rollouts import Actor, Rollouts

Params = dict[str, Tensor]
"""Parameter name -> tensor with a leading task axis [T, ...]."""


def sample(distribution: Normal, noise: torch.Generator) -> Tensor:
    """A draw from `distribution` with the stream's action-noise generator (reproducible)."""
    loc = distribution.loc.detach()
    return loc + distribution.scale.detach() * torch.randn(loc.shape, generator=noise, dtype=loc.dtype)


class PolicyLearner(nn.Module):
    """A learner over `policy`; `inner_lr` is the step size of the policy-gradient steps that adapt it to a task,
    `gamma` and `gae_lambda` define its advantages."""

    #: trains one policy on a fixed list of tasks (the recipe's `env.tasks`) instead of a task distribution
    fixed_tasks: ClassVar[bool] = False

    def __init__(self, policy: GaussianPolicy, inner_lr: float = 0.1, gamma: float = 0.99, gae_lambda: float = 1.0):
        super().__init__()
        self.policy, self.inner_lr, self.gamma, self.gae_lambda = policy, inner_lr, gamma, gae_lambda

    @abstractmethod
    def update(self, stream: Rollouts, optimizer: Optimizer, meta_batch: int) -> dict[str, Tensor]:
        """One training iteration on tasks and episodes from `stream`: the parameters are updated when it returns
        (by the learner's own rule, or through `optimizer`); the metrics are detached scalars."""

    # -- the policy of each task ---------------------------------------------------------------------------
    def inputs(self, obs: Tensor) -> Tensor:
        """What the policy reads for observations [T, ..., O] of T tasks (a task-conditioned policy appends its
        task)."""
        return obs

    def shared(self, tasks: int) -> Params:
        """The policy's own parameters as every task's, [T, ...] (a view: gradients flow to the parameters)."""
        return {k: v.unsqueeze(0).expand(tasks, *v.shape) for k, v in self.policy.named_parameters()}

    def distribution(self, obs: Tensor, params: Params | None = None) -> Normal:
        """The action distribution at observations [T, ..., O] with per-task `params` (None: the policy's own)."""
        if params is None:
            return self.policy.distribution(self.inputs(obs))
        return self.policy.stacked_distribution(self.inputs(obs), params)

    def log_prob(self, episodes: Episodes, params: Params | None = None) -> Tensor:
        """log pi(a | s) [T, E, H] of every task's actions."""
        return self.distribution(episodes.obs, params).log_prob(episodes.actions).sum(-1)

    def actor(self, params: Params | None = None) -> Actor:
        """Acts on every task with its parameters in `params` (None: the policy's own for every task)."""
        return lambda obs, noise: sample(self.distribution(obs, params), noise)

    # -- advantages and the inner step ---------------------------------------------------------------------
    def advantages(self, episodes: Episodes) -> Tensor:
        """Normalised GAE advantages [T, E, H], each task's against a linear baseline fitted on its episodes."""
        out = []
        for i in range(episodes.tasks):
            rewards, mask = episodes.rewards[i], episodes.mask[i]
            returns = discounted_returns(rewards, mask, self.gamma)
            values = linear_baseline(episodes.obs[i], returns, mask)
            out.append(normalize(gae(rewards, values, mask, self.gamma, self.gae_lambda), mask))
        return torch.stack(out)

    def inner_step(
        self, params: Params, episodes: Episodes, advantages: Tensor, create_graph: bool, lr: float | None = None
    ) -> Params:
        """One vanilla policy-gradient step for every task on its own episodes: params - lr * grad of its REINFORCE
        loss. With `create_graph` the step is differentiable (second-order MAML); otherwise the gradient is a
        constant, so the result depends on `params` with derivative one (first order), or not at all if they do
        not require gradients or gradients are off (the step's values are the same)."""
        step = self.inner_lr if lr is None else lr
        tracked = torch.is_grad_enabled() and any(v.requires_grad for v in params.values())
        with torch.enable_grad():
            live = params if tracked else {k: v.detach().requires_grad_() for k, v in params.items()}
            log_probs = self.log_prob(episodes, live)
            loss = torch.stack(
                [reinforce_loss(log_probs[i], advantages[i], episodes.mask[i]) for i in range(episodes.tasks)]
            ).sum()  # each task's parameters see its own loss only
            grads = torch.autograd.grad(loss, list(live.values()), create_graph=create_graph)
        return {k: p - step * g for (k, p), g in zip(params.items(), grads, strict=True)}

    def adaptation_curve(self, stream: Rollouts, tasks: list[Any], steps: int, lr: float | None = None) -> Tensor:
        """The mean return of each task [steps + 1, T] before adapting and after each of `steps` policy-gradient
        steps, each step on fresh episodes sampled with the policy as adapted so far (as the MAML paper measures)."""
        params = {k: v.detach() for k, v in self.shared(len(tasks)).items()}
        curve = []
        for k in range(steps + 1):
            episodes = stream.run(tasks, self.actor(params))
            curve.append(episodes.returns().mean(1))
            if k < steps:
                adapted = self.inner_step(params, episodes, self.advantages(episodes), False, lr)
                params = {n: v.detach() for n, v in adapted.items()}
        return torch.stack(curve)
