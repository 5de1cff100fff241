"""Masked policy-gradient objectives: REINFORCE (MAML's inner step), TRPO's surrogate, the clipped surrogate of
PPO/ProMP, and the Gaussian KL that bounds a trust region. Every mean runs over the valid steps only."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import Normal, kl_divergence

from polyskill.errors import ConfigError


def _check(mask: Tensor, *xs: Tensor) -> None:
    for x in xs:
        if x.shape != mask.shape:
            raise ValueError(
                f"a masked loss needs tensors shaped like the mask {tuple(mask.shape)}, got {tuple(x.shape)}"
            )


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """The mean of `x` over the steps where `mask` is nonzero (every valid step weighs the same); padded entries,
    even non-finite ones, do not reach the value or the gradient. An all-zero mask gives 0."""
    _check(mask, x)
    valid = mask > 0
    total = torch.where(valid, x, 0.0).sum()
    return total / valid.sum().clamp(min=1).to(x.dtype)


def _masked_log_ratio(log_probs: Tensor, old_log_probs: Tensor, mask: Tensor) -> Tensor:
    # zero on padded steps before exp, so a huge padded log ratio cannot make inf (and a NaN gradient)
    _check(mask, log_probs, old_log_probs)
    return torch.where(mask > 0, log_probs - old_log_probs.detach(), 0.0)


def reinforce_loss(log_probs: Tensor, advantages: Tensor, mask: Tensor) -> Tensor:
    """The vanilla policy-gradient loss -mean(log pi(a|s) A) over valid steps; its gradient is minus the
    likelihood-ratio estimate of the return's gradient. The advantages are constants."""
    _check(mask, log_probs, advantages)
    return -masked_mean(log_probs * advantages.detach(), mask)


def surrogate_loss(log_probs: Tensor, old_log_probs: Tensor, advantages: Tensor, mask: Tensor) -> Tensor:
    """TRPO's importance-weighted surrogate -mean(exp(logp - old_logp) A); old_logp and A are constants."""
    _check(mask, advantages)
    ratio = _masked_log_ratio(log_probs, old_log_probs, mask).exp()
    return -masked_mean(ratio * advantages.detach(), mask)


def clipped_surrogate_loss(
    log_probs: Tensor, old_log_probs: Tensor, advantages: Tensor, mask: Tensor, clip: float
) -> Tensor:
    """PPO/ProMP's pessimistic surrogate -mean(min(r A, clip(r, 1-clip, 1+clip) A)): no incentive to move the
    ratio r out of the band [1-clip, 1+clip]."""
    if not clip > 0:
        raise ConfigError(f"the clipped surrogate needs clip > 0, got {clip}")
    _check(mask, advantages)
    ratio = _masked_log_ratio(log_probs, old_log_probs, mask).exp()
    adv = advantages.detach()
    objective = torch.minimum(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv)
    return -masked_mean(objective, mask)


def gaussian_kl(old: Normal, new: Normal, mask: Tensor) -> Tensor:
    """The mean over valid steps of KL(old || new) summed over the action dim (old is a constant): the distance a
    trust-region step is bounded by. The distributions' batch shape is [..., H, A]."""
    fixed = Normal(old.loc.detach(), old.scale.detach(), validate_args=False)
    kl = kl_divergence(fixed, new)
    if kl.dim() < 1 or kl.shape[:-1] != mask.shape:
        raise ValueError(
            f"gaussian_kl: distributions of shape {tuple(kl.shape)} do not match the mask {tuple(mask.shape)}"
        )
    return masked_mean(kl.sum(-1), mask)
