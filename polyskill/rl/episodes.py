"""A batch of sampled episodes: T tasks x E episodes x H steps, padded to the horizon with a mask, the unit every
reinforcement-learning estimator (returns, advantages, losses) reads."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Episodes:
    """Episodes of T tasks, E each, H steps (the horizon).

    `obs` [T, E, H, O] is the observation each action was taken in, `actions` [T, E, H, A] the action as the
    policy sampled it (before any clipping by the environment), `rewards` [T, E, H], and `mask` [T, E, H] is 1
    for the steps an episode took and 0 after it ended (an environment that terminates early)."""

    obs: Tensor
    actions: Tensor
    rewards: Tensor
    mask: Tensor

    def __post_init__(self) -> None:
        t, e, h = self.rewards.shape
        for name in ("obs", "actions"):
            if getattr(self, name).shape[:3] != (t, e, h):
                raise ValueError(f"episodes: {name} {tuple(getattr(self, name).shape)} does not match [{t}, {e}, {h}]")
        if self.mask.shape != (t, e, h):
            raise ValueError(f"episodes: mask {tuple(self.mask.shape)} does not match [{t}, {e}, {h}]")

    @property
    def tasks(self) -> int:
        return self.rewards.shape[0]

    @property
    def horizon(self) -> int:
        return self.rewards.shape[2]

    def task(self, i: int) -> Episodes:
        """Task i's episodes, as a batch of one task."""
        return Episodes(self.obs[i : i + 1], self.actions[i : i + 1], self.rewards[i : i + 1], self.mask[i : i + 1])

    def returns(self) -> Tensor:
        """The undiscounted return of every episode [T, E]."""
        return (self.rewards * self.mask).sum(-1)

    def to(self, device: torch.device | str) -> Episodes:
        return Episodes(*(x.to(device) for x in (self.obs, self.actions, self.rewards, self.mask)))

    @staticmethod
    def cat(parts: list[Episodes]) -> Episodes:
        """Batches of the same episode count and horizon, stacked along the task axis."""
        return Episodes(*(torch.cat([getattr(p, k) for p in parts]) for k in ("obs", "actions", "rewards", "mask")))
