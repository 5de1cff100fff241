"""What every reinforcement-learning learner shares: a Gaussian policy, advantages from a per-task linear baseline
and GAE, the vanilla policy-gradient step that adapts a policy to a task, and the adaptation curve that evaluation
reads (the return after 0, 1, ..., k such steps). A learner's own part is `update`, one training iteration."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from ..baseline import linear_baseline
from ..episodes import Episodes
from ..losses import reinforce_loss
from ..policy import GaussianPolicy
from ..returns import discounted_returns, gae, normalize
from ..rollouts import Actor, Rollouts

Params = dict[str, Tensor]


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

    # -- advantages and the inner step ---------------------------------------------------------------------
    def task_advantages(self, episodes: Episodes, i: int) -> Tensor:
        """Normalised GAE advantages [E, H] of task i's episodes, against a linear baseline fitted on them."""
        rewards, mask = episodes.rewards[i], episodes.mask[i]
        returns = discounted_returns(rewards, mask, self.gamma)
        values = linear_baseline(episodes.obs[i], returns, mask)
        return normalize(gae(rewards, values, mask, self.gamma, self.gae_lambda), mask)

    def advantages(self, episodes: Episodes) -> list[Tensor]:
        return [self.task_advantages(episodes, i) for i in range(episodes.tasks)]

    def inputs(self, i: int, obs: Tensor) -> Tensor:
        """What the policy reads for task i's observations (a task-conditioned policy appends the task)."""
        return obs

    def log_prob(self, episodes: Episodes, i: int, params: Params | None = None) -> Tensor:
        """log pi(a | s) [E, H] of task i's actions under `params` (None: the policy's own)."""
        return self.policy.log_prob(self.inputs(i, episodes.obs[i]), episodes.actions[i], params)

    def parameters_dict(self) -> Params:
        return dict(self.policy.named_parameters())

    def inner_step(
        self, params: Params, episodes: Episodes, i: int, advantages: Tensor, create_graph: bool, lr: float | None = None
    ) -> Params:
        """One vanilla policy-gradient step on task i's episodes: params - lr * grad of the REINFORCE loss. With
        `create_graph` the step is differentiable (second-order MAML); otherwise the gradient is a constant, so
        the result still depends on `params` with derivative one (first order), or not at all if they do not
        require gradients."""
        step = self.inner_lr if lr is None else lr
        with torch.enable_grad():
            live = {k: v if v.requires_grad else v.detach().requires_grad_() for k, v in params.items()}
            loss = reinforce_loss(self.log_prob(episodes, i, live), advantages, episodes.mask[i])
            grads = torch.autograd.grad(loss, list(live.values()), create_graph=create_graph)
        return {k: p - step * g for (k, p), g in zip(params.items(), grads, strict=True)}

    # -- acting --------------------------------------------------------------------------------------------
    def actor(self, params: list[Params] | None = None) -> Actor:
        """Acts on task i with `params[i]` (None: the policy's own parameters for every task)."""

        def act(i: int, obs: Tensor, noise: torch.Generator) -> Tensor:
            return self.policy.sample(self.inputs(i, obs), noise, None if params is None else params[i])

        return act

    def adaptation_curve(self, stream: Rollouts, tasks: list[Any], steps: int, lr: float | None = None) -> Tensor:
        """The mean return of each task [steps + 1, T] before adapting and after each of `steps` policy-gradient
        steps, each step on fresh episodes sampled with the policy as adapted so far (as the MAML paper measures)."""
        detached = {k: v.detach() for k, v in self.parameters_dict().items()}
        params = [detached for _ in tasks]
        curve = []
        for k in range(steps + 1):
            episodes = stream.run(tasks, self.actor(params))
            curve.append(episodes.returns().mean(1))
            if k < steps:
                params = [
                    {n: v.detach() for n, v in self.inner_step(params[i], episodes, i, adv, False, lr).items()}
                    for i, adv in enumerate(self.advantages(episodes))
                ]
        return torch.stack(curve)
