"""The linear feature baseline of Duan et al. 2016 (rllab) that MAML subtracts from returns: a ridge regression
of the returns on per-step features, refitted to each task's episodes."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from polyskill.errors import ConfigError

_ATTEMPTS = 5  # the ridge term grows tenfold after each failed solve, as in rllab and pytorch-maml-rl


def baseline_features(obs: Tensor) -> Tensor:
    """Per-step features [..., H, 2 O + 4] in float64: [o, o^2, t/100, (t/100)^2, (t/100)^3, 1] with o the
    observation clipped to [-10, 10] and t the step index."""
    o = obs.detach().to(torch.float64).clamp(-10, 10)
    t = torch.arange(obs.shape[-2], dtype=torch.float64, device=obs.device) / 100
    t = t.unsqueeze(-1).expand(*obs.shape[:-1], 1)
    return torch.cat([o, o * o, t, t**2, t**3, torch.ones_like(t)], dim=-1)


@torch.no_grad()
def linear_baseline(obs: Tensor, returns: Tensor, mask: Tensor, reg: float = 1e-5) -> Tensor:
    """Fitted values [..., H] of a ridge regression of `returns` [..., H] on the features of `obs` [..., H, O], fit
    on the valid steps of all episodes given (one task's); 0 where masked. No gradient flows."""
    if not (math.isfinite(reg) and reg > 0):
        raise ConfigError(f"the linear baseline's ridge term must be positive, got {reg}")
    if obs.dim() < 2 or obs.shape[:-1] != returns.shape or returns.shape != mask.shape:
        raise ValueError(
            f"linear_baseline: obs {tuple(obs.shape)}, returns {tuple(returns.shape)} and mask {tuple(mask.shape)}"
            " do not fit [..., H, O], [..., H], [..., H]"
        )
    valid = mask > 0
    features = baseline_features(obs)
    x, y = features[valid], returns.detach().to(torch.float64)[valid]
    if x.shape[0] == 0:
        return torch.zeros_like(returns)
    xtx, xty = x.T @ x, x.T @ y
    eye = torch.eye(xtx.shape[0], dtype=torch.float64, device=xtx.device)
    for attempt in range(_ATTEMPTS):
        coeffs, info = torch.linalg.solve_ex(xtx + reg * 10**attempt * eye, xty)
        if int(info) == 0 and bool(torch.isfinite(coeffs).all()):
            break
    else:
        raise ValueError("linear_baseline: the normal equations could not be solved (non-finite returns or obs?)")
    fitted = features @ coeffs
    return torch.where(valid, fitted, 0.0).to(returns.dtype)
