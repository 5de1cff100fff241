"""FiLM (feature-wise scale and shift, Perez et al., 2018) written on a network's parameters.

A FiLM layer after an affine map h = W x + b gives gamma * h + beta = (gamma W) x + (gamma b + beta), so
modulating a layer's output is the same as modulating its parameters. Written that way, a task-conditioned
network is just a per-task parameter dict: the inner loop of gradient-based meta-learning then starts from
the modulated parameters and adapts them like any others.

Sites: the affine normalisation layers of the network when it has any (FiLM after normalisation, where a
scale before the normaliser would cancel out), otherwise every linear or convolutional layer but the last
(the output layer is left as it is).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

Params = dict[str, Tensor]


@dataclass(frozen=True)
class FilmSite:
    """A modulated layer: its weight and bias names and its number of output features (channels)."""

    weight: str
    bias: str
    features: int


NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)
"""Normalisation layers; a module of another class counts as one if it sets `normalises = True`."""


def _is_norm(module: nn.Module) -> bool:
    affine = isinstance(getattr(module, "weight", None), nn.Parameter) and isinstance(
        getattr(module, "bias", None), nn.Parameter
    )
    return affine and (isinstance(module, NORMS) or getattr(module, "normalises", False))


def film_sites(model: nn.Module) -> list[FilmSite]:
    """Where FiLM goes in `model` (see the module docstring); ValueError if there is nowhere to put it."""
    norms = [(name, m) for name, m in model.named_modules() if _is_norm(m)]
    if not norms:
        layers = [
            (name, m)
            for name, m in model.named_modules()
            if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))
        ]
        norms = layers[:-1]
        if any(m.bias is None for _, m in norms):
            raise ValueError("FiLM needs a bias in every modulated layer")
    if not norms:
        raise ValueError("the network has no layer to modulate with FiLM (it needs a hidden layer)")
    return [FilmSite(f"{name}.weight", f"{name}.bias", m.weight.shape[0]) for name, m in norms]


def modulate(params: Params, sites: list[FilmSite], gamma: list[Tensor], beta: list[Tensor]) -> Params:
    """Per-task parameters: at each site, weight -> gamma * weight (per output feature), bias -> gamma * bias
    + beta. gamma and beta are [B, features] per site; the modulated tensors gain a task axis [B, ...]."""
    out = dict(params)
    for site, g, b in zip(sites, gamma, beta, strict=True):
        weight = params[site.weight]
        out[site.weight] = g.view(*g.shape, *([1] * (weight.dim() - 1))) * weight
        out[site.bias] = g * params[site.bias] + b
    return out
