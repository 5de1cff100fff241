"""Discounted returns, generalized advantage estimation and masked normalization over padded episodes [..., H]
(the mask is 1 for the steps an episode took, a prefix of ones, and 0 after it ended)."""

from __future__ import annotations

import torch
from torch import Tensor

from polyskill.errors import ConfigError
from polyskill.rl.losses import masked_mean


def _check_discount(name: str, value: float) -> None:
    if not 0 <= value <= 1:
        raise ConfigError(f"{name} must be in [0, 1], got {value}")


def _check_shapes(mask: Tensor, **xs: Tensor) -> None:
    if mask.dim() < 1:
        raise ValueError("returns: the mask needs a horizon dim [..., H]")
    for name, x in xs.items():
        if x.shape != mask.shape:
            raise ValueError(f"returns: {name} {tuple(x.shape)} does not match the mask {tuple(mask.shape)}")


def _valid(x: Tensor, mask: Tensor) -> Tensor:
    return torch.where(mask > 0, x, 0.0)


def discounted_returns(rewards: Tensor, mask: Tensor, gamma: float) -> Tensor:
    """R_t = sum_k gamma^k r_{t+k} over the valid steps from t to the episode's end [..., H]; 0 where masked."""
    _check_discount("gamma", gamma)
    _check_shapes(mask, rewards=rewards)
    r, m = _valid(rewards, mask), (mask > 0).to(rewards.dtype)
    out = torch.zeros_like(r)
    running = torch.zeros_like(r[..., 0])
    for t in range(r.shape[-1] - 1, -1, -1):
        running = (r[..., t] + gamma * running) * m[..., t]
        out[..., t] = running
    return out


def gae(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float) -> Tensor:
    """Generalized advantage estimates [..., H] (Schulman et al. 2016): A_t = sum_k (gamma lam)^k delta_{t+k}
    with delta_t = r_t + gamma V_{t+1} - V_t and V = 0 after the last valid step (the horizon end is terminal,
    as in the MAML code); 0 where masked. lam=1 gives returns - values, lam=0 the TD residual."""
    _check_discount("gamma", gamma)
    _check_discount("lam", lam)
    _check_shapes(mask, rewards=rewards, values=values)
    r, v, m = _valid(rewards, mask), _valid(values, mask), (mask > 0).to(rewards.dtype)
    next_v = torch.cat([v[..., 1:], torch.zeros_like(v[..., :1])], dim=-1)
    delta = (r + gamma * next_v - v) * m
    out = torch.zeros_like(delta)
    running = torch.zeros_like(delta[..., 0])
    for t in range(delta.shape[-1] - 1, -1, -1):
        running = (delta[..., t] + gamma * lam * running) * m[..., t]
        out[..., t] = running
    return out


def normalize(x: Tensor, mask: Tensor, eps: float = 1e-8) -> Tensor:
    """(x - mean) / (std + eps) with the mean and the (population) std over all valid entries; 0 where masked.
    Standardizes advantages so one step size fits tasks whose rewards differ in scale."""
    _check_shapes(mask, x=x)
    mean = masked_mean(x, mask)
    centred = _valid(x - mean, mask)
    std = masked_mean(centred * centred, mask).sqrt()
    return _valid(centred / (std + eps), mask)
