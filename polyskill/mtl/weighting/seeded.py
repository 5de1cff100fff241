"""A weighting's own random stream: a CPU `torch.Generator` seeded from the options and saved with the weighting, so
that a run resumed from a checkpoint draws exactly what the uninterrupted run would have."""

from __future__ import annotations

from typing import Any

import torch

from ...errors import ConfigError


class Seeded:
    """Mixin for an `nn.Module` weighting: `seed_generator(owner, seed)` in the constructor, then `self.generator`;
    the state goes into `state_dict` as extra state (an int and a uint8 tensor: `torch.load(weights_only=True)`)."""

    seed: int
    generator: torch.Generator

    def seed_generator(self, owner: str, seed: object) -> None:
        """Check `seed` (a non-negative integer; `owner` names the weighting in the error) and start the stream."""
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"{owner}: seed must be a non-negative integer, got {seed!r}")
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    def get_extra_state(self) -> dict[str, Any]:
        return {"seed": self.seed, "rng": self.generator.get_state()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.seed = int(state["seed"])
        self.generator.set_state(state["rng"].cpu())
