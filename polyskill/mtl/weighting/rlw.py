"""Random loss weighting: Lin, Ye, Zhang and Tsang (2022), "Reasonable effectiveness of random weighting:
a litmus test for multi-task learning" (TMLR).

Rule: at every step draw z_t ~ N(0, 1) ("normal") or z_t ~ U(0, 1) ("uniform") independently and weight the
losses by w = T softmax(z). The paper normalises to sum 1; the factor T here makes the mean weight 1, as in EW.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ...errors import ConfigError
from ..base import LossWeighting

DISTRIBUTIONS = ("normal", "uniform")


class RandomLossWeighting(LossWeighting):
    """Fresh random weights each call, from a seeded CPU generator whose state is saved in `state_dict`
    (extra state), so a resumed run draws the same weights as an uninterrupted one."""

    def __init__(self, distribution: str = "normal", seed: int = 0) -> None:
        super().__init__()
        if distribution not in DISTRIBUTIONS:
            raise ConfigError(f"rlw: distribution must be one of {', '.join(DISTRIBUTIONS)}, got {distribution!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"rlw: seed must be an integer >= 0, got {seed!r}")
        self.distribution = distribution
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    def weights(self, losses: Tensor) -> Tensor:
        """T softmax(z) [T] for a fresh draw z, in the dtype and on the device of `losses`."""
        if losses.dim() != 1:
            raise ValueError(f"expected losses [T], got {tuple(losses.shape)}")
        num_tasks = losses.numel()
        draw = torch.randn if self.distribution == "normal" else torch.rand
        z = draw(num_tasks, generator=self.generator, dtype=torch.float64)
        return (num_tasks * torch.softmax(z, dim=0)).to(device=losses.device, dtype=losses.dtype)

    def get_extra_state(self) -> dict[str, Any]:
        """The generator's state (a uint8 tensor: loadable with `torch.load(weights_only=True)`)."""
        return {"generator": self.generator.get_state()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        """Restore the generator saved by `get_extra_state`."""
        self.generator.set_state(state["generator"].to(device="cpu", dtype=torch.uint8))
