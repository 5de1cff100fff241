"""Seeded rollouts of a policy on tasks of a family: the training stream of a reinforcement-learning run (which
tasks come next, which environment seeds and which action noise) and the fixed rollouts of an evaluation.

Everything random comes from two generators the stream owns, a numpy one for tasks and environment seeds and a
torch one for the policy's action noise, and every rollout resets its environments with seeds drawn from the
first: so `state_dict` is the whole state of the stream, and a run resumed from a checkpoint samples exactly what
the uninterrupted run would have."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..train.episodic import DivergedError
from .envs.base import Task, TaskFamily
from .episodes import Episodes

Actor = Callable[[Tensor, torch.Generator], Tensor]
"""(observations [T, E, O] of every task's episodes, action-noise generator) -> actions [T, E, A]."""

SEED_LIMIT = 2**31 - 1


class Rollouts:
    """Tasks and episodes from `family`: `episodes` per task unless a call says otherwise, seeded by `seed`."""

    def __init__(self, family: TaskFamily, episodes: int, seed: int) -> None:
        self.family, self.episodes, self.seed = family, episodes, seed
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self.noise = torch.Generator().manual_seed(seed)

    def sample_tasks(self, n: int) -> list[Task]:
        """`n` tasks drawn from the family's distribution."""
        return self.family.sample_tasks(n, self.rng)

    def run(self, tasks: list[Task], actor: Actor, episodes: int | None = None) -> Episodes:
        """`episodes` episodes of every task, acting with `actor`, in one vectorised environment of
        len(tasks) x episodes sub-environments stepped to the family's horizon."""
        per_task = episodes or self.episodes
        n, horizon = len(tasks) * per_task, self.family.horizon
        seeds = [int(s) for s in self.rng.integers(0, SEED_LIMIT, size=n)]
        env = self.family.vector_env(tasks, per_task)
        try:
            raw, _ = env.reset(seed=seeds)  # type: ignore[arg-type]  # every family's vector env takes one seed a sub-env
            obs = torch.zeros(horizon, n, self.family.obs_dim)
            actions = torch.zeros(horizon, n, self.family.act_dim)
            rewards = torch.zeros(horizon, n)
            mask = torch.zeros(horizon, n)
            alive = np.ones(n, dtype=bool)
            for t in range(horizon):
                current = torch.as_tensor(np.asarray(raw), dtype=torch.float32).reshape(n, -1)
                with torch.no_grad():
                    acted = actor(current.view(len(tasks), per_task, -1), self.noise).reshape(n, -1)
                obs[t], actions[t], mask[t] = current, acted, torch.from_numpy(alive.astype(np.float32))
                raw, reward, terminated, truncated, _ = env.step(acted.double().numpy())
                rewards[t] = torch.as_tensor(np.where(alive, reward, 0.0), dtype=torch.float32)
                alive &= ~(np.asarray(terminated) | np.asarray(truncated))
                if not alive.any():
                    break
        finally:
            env.close()

        for what, values in (("actions", actions), ("observations", obs), ("rewards", rewards)):
            if not torch.isfinite(values).all():
                raise DivergedError(
                    f"a rollout on {self.family.name} met non-finite {what}: the policy diverged (try a smaller "
                    f"algo.inner_lr, algo.max_kl or train.lr)"
                )

        def by_task(x: Tensor) -> Tensor:
            return x.transpose(0, 1).reshape(len(tasks), per_task, horizon, *x.shape[2:])

        return Episodes(by_task(obs), by_task(actions), by_task(rewards), by_task(mask))

    def state_dict(self) -> dict[str, Any]:
        # the numpy state holds 128-bit integers: kept as JSON text, which a weights-only checkpoint load reads
        return {"rng": json.dumps(self.rng.bit_generator.state), "noise": self.noise.get_state(), "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = json.loads(state["rng"])
        self.noise.set_state(state["noise"])
