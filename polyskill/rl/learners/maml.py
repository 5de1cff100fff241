"""MAML for reinforcement learning (Finn, Abbeel, Levine 2017): the inner loop adapts the policy to a task with
vanilla policy-gradient steps on episodes sampled from it; the outer loop updates the initial parameters so that
the adapted policies do well on new episodes. The outer step is TRPO over the adapted policies' surrogate (the
MAML paper) or, with `outer: ppo`, a few optimiser steps on their clipped surrogate (ProMP-style, Rothfuss et
al. 2019). Second order by default: the outer gradient flows through the inner step; `first_order` stops it.

`Pretrained` is the paper's "pretrained" baseline: one policy trained with the same outer step on tasks from the
same distribution but without adapting during training; evaluation fine-tunes it with the same steps."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.distributions import Normal
from torch.optim import Optimizer

from ...errors import ConfigError
from ..episodes import Episodes
from ..losses import clipped_surrogate_loss, gaussian_kl, surrogate_loss
from ..policy import GaussianPolicy
from ..rollouts import Rollouts
from ..trpo import TRPOConfig, trpo_step
from .base import Params, PolicyLearner

OUTER = ("trpo", "ppo")


@dataclass
class _Iteration:
    """What one meta-iteration sampled: the training episodes of each inner step with their advantages, and the
    validation episodes of the adapted policies with their advantages and the sampling policies' distribution
    and log-probabilities (constants of the outer objective)."""

    train: list[Episodes]
    train_advantages: list[Tensor]
    valid: Episodes
    advantages: Tensor
    old: Normal
    old_log_probs: Tensor


class MAMLRL(PolicyLearner):
    """MAML-TRPO / MAML with a clipped surrogate over a Gaussian policy."""

    def __init__(
        self,
        policy: GaussianPolicy,
        inner_lr: float = 0.1,
        inner_steps: int = 1,
        first_order: bool = False,
        outer: str = "trpo",
        max_kl: float = 0.01,
        cg_iters: int = 10,
        cg_damping: float = 1e-5,
        ls_ratio: float = 0.8,
        ls_backtracks: int = 15,
        clip: float = 0.2,
        outer_epochs: int = 5,
        gamma: float = 0.99,
        gae_lambda: float = 1.0,
    ) -> None:
        super().__init__(policy, inner_lr, gamma, gae_lambda)
        if outer not in OUTER:
            raise ConfigError(f"algo.outer must be one of {', '.join(OUTER)}, got {outer!r}")
        checks = {
            "inner_lr": inner_lr > 0,
            "inner_steps": inner_steps >= 0,
            "max_kl": max_kl > 0,
            "cg_iters": cg_iters >= 1,
            "cg_damping": cg_damping >= 0,
            "ls_ratio": 0 < ls_ratio < 1,
            "ls_backtracks": ls_backtracks >= 1,
            "clip": clip > 0,
            "outer_epochs": outer_epochs >= 1,
            "gamma": 0 < gamma <= 1,
            "gae_lambda": 0 <= gae_lambda <= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(f"algo.{name} is out of range: {locals()[name]!r}")
        self.inner_steps, self.first_order, self.outer = inner_steps, first_order, outer
        self.trpo = TRPOConfig(max_kl, cg_damping, cg_iters, ls_ratio, ls_backtracks)
        self.clip, self.outer_epochs = clip, outer_epochs

    # -- sampling --------------------------------------------------------------------------------------------
    def sample_iteration(self, stream: Rollouts, meta_batch: int) -> _Iteration:
        """Sample the tasks, adapt to each with `inner_steps` steps (each on fresh episodes), then sample the
        adapted policies' validation episodes."""
        tasks = stream.sample_tasks(meta_batch)
        params = {k: v.detach() for k, v in self.shared(len(tasks)).items()}
        train, train_advantages = [], []
        for _ in range(self.inner_steps):
            episodes = stream.run(tasks, self.actor(params))
            advantages = self.advantages(episodes)
            params = {k: v.detach() for k, v in self.inner_step(params, episodes, advantages, False).items()}
            train.append(episodes)
            train_advantages.append(advantages)
        valid = stream.run(tasks, self.actor(params))
        with torch.no_grad():
            old = self.distribution(valid.obs, params)
            old_log_probs = old.log_prob(valid.actions).sum(-1)
        return _Iteration(train, train_advantages, valid, self.advantages(valid), old, old_log_probs)

    def adapted(self, it: _Iteration) -> Params:
        """Every task's adapted parameters as a function of the live initial parameters, replaying the inner steps
        on the episodes they were taken on (differentiable through the steps unless first order, or when no
        gradient is wanted: the same values, without the graph of the inner gradients)."""
        params = self.shared(it.valid.tasks)
        second_order = not self.first_order and torch.is_grad_enabled()
        for episodes, advantages in zip(it.train, it.train_advantages, strict=True):
            params = self.inner_step(params, episodes, advantages, create_graph=second_order)
        return params

    # -- the outer objective --------------------------------------------------------------------------------
    def outer_loss(self, it: _Iteration, clipped: bool = False) -> Tensor:
        """The mean over tasks of the adapted policies' surrogate on their validation episodes."""
        log_probs = self.log_prob(it.valid, self.adapted(it))
        losses = []
        for i in range(it.valid.tasks):
            args = (log_probs[i], it.old_log_probs[i], it.advantages[i], it.valid.mask[i])
            losses.append(clipped_surrogate_loss(*args, self.clip) if clipped else surrogate_loss(*args))
        return torch.stack(losses).mean()

    def outer_kl(self, it: _Iteration) -> Tensor:
        """The mean over tasks of KL(sampling policy || adapted policy) on the validation observations."""
        new = self.distribution(it.valid.obs, self.adapted(it))
        kls = [
            gaussian_kl(Normal(it.old.loc[i], it.old.scale[i]), Normal(new.loc[i], new.scale[i]), it.valid.mask[i])
            for i in range(it.valid.tasks)
        ]
        return torch.stack(kls).mean()

    def update(self, stream: Rollouts, optimizer: Optimizer, meta_batch: int) -> dict[str, Tensor]:
        """One meta-iteration. Metrics: the mean return of the episodes before and after adaptation (`return`
        alone when nothing adapts during training), how much the outer step lowered the surrogate, the KL it
        moved the adapted policies by, and for TRPO the fraction of the full step the line search took."""
        it = self.sample_iteration(stream, meta_batch)
        metrics: dict[str, float] = {}
        if self.outer == "trpo":
            params = list(self.policy.parameters())
            info = trpo_step(params, lambda: self.outer_loss(it), lambda: self.outer_kl(it), self.trpo)
            metrics.update(
                improvement=info["loss_before"] - info["loss_after"], kl=info["kl"], step_fraction=info["step_fraction"]
            )
        else:
            losses = []
            for _ in range(self.outer_epochs):
                optimizer.zero_grad(set_to_none=True)
                loss = self.outer_loss(it, clipped=True)
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
            optimizer.zero_grad(set_to_none=True)
            with torch.no_grad():
                metrics.update(improvement=losses[0] - losses[-1], kl=float(self.outer_kl(it)))
        after = it.valid.returns().mean().detach()
        returns = (
            {"return_before": it.train[0].returns().mean(), "return_after": after} if it.train else {"return": after}
        )
        return {**returns, **{k: torch.tensor(float(v)) for k, v in metrics.items()}}


class Pretrained(MAMLRL):
    """One policy trained on all tasks of the distribution with the same outer step (TRPO or the clipped
    surrogate) and no adaptation during training; fine-tuned with policy-gradient steps at evaluation."""

    def __init__(
        self,
        policy: GaussianPolicy,
        inner_lr: float = 0.1,
        outer: str = "trpo",
        max_kl: float = 0.01,
        cg_iters: int = 10,
        cg_damping: float = 1e-5,
        ls_ratio: float = 0.8,
        ls_backtracks: int = 15,
        clip: float = 0.2,
        outer_epochs: int = 5,
        gamma: float = 0.99,
        gae_lambda: float = 1.0,
    ) -> None:
        super().__init__(
            policy,
            inner_lr,
            0,
            True,
            outer,
            max_kl,
            cg_iters,
            cg_damping,
            ls_ratio,
            ls_backtracks,
            clip,
            outer_epochs,
            gamma,
            gae_lambda,
        )
