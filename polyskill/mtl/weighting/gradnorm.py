"""GradNorm: Chen, Badrinarayanan, Lee and Rabinovich (2018), "GradNorm: gradient normalization for adaptive
loss balancing in deep multitask networks".

Rule: task weights w (initialised at 1) are moved by gradient descent on sum_t |G_t - target_t|, where
G_t = w_t ||g_t|| is the norm of task t's weighted gradient and target_t = mean_s(G_s) r_t^alpha (held constant)
with r_t = (L_t / L_t(0)) / mean_s(L_s / L_s(0)) the relative inverse training rate; then w is renormalised to
sum to T. Tasks that train more slowly (larger r_t) are pushed towards larger gradients.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ...errors import ConfigError
from ..base import Aggregator

_TINY = 1e-12


class GradNorm(Aggregator):
    """GradNorm task weights, updated once per call.

    The paper measures the gradient norms on the last shared layer; here they are the norms of whatever
    per-task gradients the trainer gives (the diagonal of the Gram matrix): all shared parameters, or the shared
    representation. L(0) are the losses of the first call. Each call returns the weights of the current step,
    w(t), at which the norms and the GradNorm loss are evaluated (the paper's order: the network is updated with
    w(t)), and then takes one plain gradient step of rate `lr` on w, using the closed-form gradient
    sign(G_t - target_t) ||g_t||; the new weights are clamped positive and rescaled to sum to T, for the next call.
    """

    task_weights: Tensor
    initial_losses: Tensor
    steps: Tensor

    needs_num_tasks = True

    def __init__(self, num_tasks: int, alpha: float = 1.5, lr: float = 0.025) -> None:
        super().__init__()
        if isinstance(num_tasks, bool) or not isinstance(num_tasks, int) or num_tasks < 1:
            raise ConfigError(f"gradnorm: num_tasks must be a positive integer, got {num_tasks!r}")
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha) or alpha < 0:
            raise ConfigError(f"gradnorm: alpha must be a number >= 0, got {alpha!r}")
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
            raise ConfigError(f"gradnorm: lr must be a number > 0, got {lr!r}")
        self.num_tasks = num_tasks
        self.alpha = float(alpha)
        self.lr = float(lr)
        self.register_buffer("task_weights", torch.ones(num_tasks, dtype=torch.float64))
        self.register_buffer("initial_losses", torch.zeros(num_tasks, dtype=torch.float64))
        self.register_buffer("steps", torch.zeros((), dtype=torch.int64))

    def loss_and_grad(self, w: Tensor, grad_norms: Tensor, losses: Tensor) -> tuple[Tensor, Tensor]:
        """The GradNorm loss sum_t |w_t n_t - target_t| and its gradient in w (targets held constant), for
        weights `w`, gradient norms `grad_norms` n and `losses`, relative to the stored initial losses."""
        ratio = losses / self.initial_losses.clamp_min(_TINY)
        inverse_rate = ratio / ratio.mean().clamp_min(_TINY)
        norms = w * grad_norms
        target = norms.mean() * inverse_rate**self.alpha
        return (norms - target).abs().sum(), torch.sign(norms - target) * grad_norms

    def weights(self, gram: Tensor, losses: Tensor) -> Tensor:
        """The current weights [T] (summing to T); updates them for the next call as the class docstring says."""
        if gram.shape != (self.num_tasks, self.num_tasks) or losses.shape != (self.num_tasks,):
            raise ValueError(
                f"gradnorm was built for {self.num_tasks} tasks, got gram {tuple(gram.shape)} and losses "
                f"{tuple(losses.shape)}"
            )
        store = self.task_weights
        losses = losses.detach().to(device=store.device, dtype=store.dtype)
        self.initial_losses.copy_(torch.where(self.steps == 0, losses, self.initial_losses))
        grad_norms = gram.detach().diagonal().to(device=store.device, dtype=store.dtype).clamp_min(0).sqrt()
        current = store.clone()
        _, grad = self.loss_and_grad(current, grad_norms, losses)
        updated = (current - self.lr * grad).clamp_min(_TINY)
        store.copy_(updated * (self.num_tasks / updated.sum()))
        self.steps += 1
        return current.to(device=gram.device, dtype=gram.dtype)
