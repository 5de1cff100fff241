"""DSelect-k (Hazimeh, Zhao, Chowdhery, Sathiamoorthy, Chen, Mazumder, Hong & Chi, 2021, "DSelect-k:
Differentiable Selection in the Mixture of Experts with Applications to Multi-Task Learning"): n experts shared
by every task, and per task a gate made of k single-expert selectors, each a product of smooth steps over the
m = ceil(log2 n) bits of a binary encoding of the expert's index, combined by softmax weights:

    S(t) = 0 if t <= -gamma/2,  1 if t >= gamma/2,  -2 t^3 / gamma^3 + 3 t / (2 gamma) + 1/2 otherwise
    r(z)_l = prod_{j=1..m} (S(z_j) if bit j of l is 1 else 1 - S(z_j))          (l = 0..n-1, bits MSB first)
    q = sum_{i=1..k} softmax(w)_i r(z_i),     task t's head reads sum_l q_l f_l(x)

r(z) sums to 1 over the 2^m codes and is one-hot once every |z_j| >= gamma/2, so each selector converges to a
single expert. The logits z_1..z_k and w are linear maps of the flattened input (`gate: per_example`, the paper's
per-example gating) or free parameters (`gate: static`, its task-only gating). Initialisation as in the authors'
code: z uniform in [-gamma/100, gamma/100], w uniform in [-0.05, 0.05].

`penalty()` (of the latest training-mode forward call) is, summed over tasks, examples and selectors,
`entropy_reg` * H(r(z_i)) with H(r) = -sum_l r_l log(r_l + 1e-6) (the authors' entropy regulariser, which
speeds the selectors' convergence) and, when n is not a power of 2, 1 / sum_{l<n} r(z_i)_l, the authors' term
that keeps a selector off the 2^m - n codes no expert has (it stops acting once the reachable weights sum to 1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import torch
from torch import Tensor, nn

from ..base import MultiTaskModel
from .common import (
    EncoderFactory,
    HeadFactory,
    build_experts,
    build_heads,
    check_input_shape,
    check_option,
    check_tasks,
    is_int,
    is_real,
    mix_experts,
    stage_shapes,
)

GATES = ("per_example", "static")
ENTROPY_EPSILON = 1e-6


def smooth_step(t: Tensor, gamma: float) -> Tensor:
    """The cubic smooth step S(t): 0 below -gamma/2, 1 above gamma/2, continuously differentiable."""
    cubic = -2.0 / gamma**3 * t**3 + 3.0 / (2.0 * gamma) * t + 0.5
    return torch.where(t <= -gamma / 2, torch.zeros_like(t), torch.where(t >= gamma / 2, torch.ones_like(t), cubic))


def binary_codes(experts: int) -> Tensor:
    """[experts, ceil(log2 experts)] bool: row l is l's binary encoding, most significant bit first."""
    bits = math.ceil(math.log2(experts)) if experts > 1 else 0
    index = torch.arange(experts)[:, None]
    return (index >> torch.arange(bits - 1, -1, -1)) & 1 == 1


class StaticLogits(nn.Module):
    """Logits that do not read the input (task-only gating): one parameter [size] repeated over the batch."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.empty(size))

    def forward(self, flat: Tensor) -> Tensor:
        return self.logits.expand(flat.shape[0], -1)


class Selectors(nn.Module):
    """One task's k single-expert selectors over n experts and their softmax weights (see the module docstring).

    `forward(flat)` returns (q [batch, n], r [batch, k, n]) for flattened inputs `flat` [batch, features].
    """

    codes: Tensor

    def __init__(self, in_features: int, experts: int, k: int, gamma: float, per_example: bool) -> None:
        super().__init__()
        self.k, self.gamma = k, gamma
        codes = binary_codes(experts)
        self.register_buffer("codes", codes, persistent=False)
        bits = codes.shape[1]

        def logits(size: int) -> nn.Module:
            return nn.Linear(in_features, size) if per_example else StaticLogits(size)

        self.z = logits(k * bits) if bits else None  # a single expert needs no bit
        self.w = logits(k)
        with torch.no_grad():
            for p in [] if self.z is None else self.z.parameters():
                p.uniform_(-gamma / 100, gamma / 100)
            for p in self.w.parameters():
                p.uniform_(-0.05, 0.05)

    def selector_outputs(self, flat: Tensor) -> Tensor:
        """r(z_i) for each selector i: [batch, k, n], each row on the probability simplex of the 2^m codes."""
        n, bits = self.codes.shape
        if self.z is None:
            return torch.ones(flat.shape[0], self.k, n, dtype=flat.dtype, device=flat.device)
        steps = smooth_step(self.z(flat).reshape(-1, self.k, 1, bits), self.gamma)
        return torch.where(self.codes, steps, 1 - steps).prod(-1)

    def forward(self, flat: Tensor) -> tuple[Tensor, Tensor]:
        r = self.selector_outputs(flat)
        weights = torch.softmax(self.w(flat), dim=-1)
        return (weights[:, :, None] * r).sum(1), r


class DSelectK(MultiTaskModel):
    """`experts` encoders shared by every task; task t's head reads its DSelect-k gate's mixture of their outputs
    (see the module docstring).

    Options: `experts` n (>= 1, default 4), `k` selectors per task (>= 1, default 2), `gamma` (> 0, default 1.0),
    `gate` "per_example" (default) or "static", `entropy_reg` (>= 0, default 0: off). The experts are shared;
    each task's selectors and head belong to it. `penalty()` is recorded by training-mode forward calls outside
    torch.func transforms (vmap, grad), like sluice's.
    """

    def __init__(
        self,
        tasks: Sequence[str],
        encoder: EncoderFactory,
        head: HeadFactory,
        input_shape: Sequence[int],
        *,
        experts: int = 4,
        k: int = 2,
        gamma: float = 1.0,
        gate: str = "per_example",
        entropy_reg: float = 0.0,
    ) -> None:
        check_option("dselect_k", "experts", is_int(experts, 1), "an integer >= 1", experts)
        check_option("dselect_k", "k", is_int(k, 1), "an integer >= 1", k)
        check_option("dselect_k", "gamma", is_real(gamma, 0.0) and gamma > 0, "a finite number > 0", gamma)
        check_option("dselect_k", "gate", gate in GATES, f"one of {GATES}", gate)
        check_option("dselect_k", "entropy_reg", is_real(entropy_reg, 0.0), "a finite number >= 0", entropy_reg)
        super().__init__()
        self.tasks = check_tasks(tasks)
        shape = check_input_shape(input_shape)
        self.experts = build_experts(encoder, experts)
        feature_shape = stage_shapes(cast(nn.Sequential, self.experts[0]), shape)[-1]
        in_features = math.prod(shape)
        self.selectors = nn.ModuleDict(
            {task: Selectors(in_features, experts, k, float(gamma), gate == "per_example") for task in self.tasks}
        )
        self.heads = build_heads(self.tasks, head, feature_shape)
        self.entropy_weight = float(entropy_reg)
        self.reachability = experts & (experts - 1) != 0  # not a power of 2: some codes name no expert
        self._penalty: Tensor | None = None

    def gate_weights(self, x: Tensor) -> dict[str, Tensor]:
        """Each task's expert weights q [batch, experts] (non-negative, summing to at most 1)."""
        flat = x.flatten(1)
        return {task: self.selectors[task](flat)[0] for task in self.tasks}

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Each task's head on its selected mixture of the experts' outputs."""
        return self.forward_with_representation(x)[1]

    def forward_with_representation(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """(the experts' outputs stacked batch-first [batch, experts, ...], outputs): the selectors read the input
        but own no shared parameter, so the shared parameters reach the outputs only through this representation."""
        stacked = torch.stack([expert(x) for expert in self.experts], dim=1)
        flat = x.flatten(1)
        outputs, terms = {}, []
        for task in self.tasks:
            weights, r = self.selectors[task](flat)
            outputs[task] = self.heads[task](mix_experts(weights, stacked))
            terms.append(self._regulariser(r))
        term = torch.stack(terms).sum()
        wrapped = torch._C._functorch.is_functorch_wrapped_tensor(term)
        self._penalty = term if self.training and not wrapped else None
        return stacked, outputs

    def _regulariser(self, r: Tensor) -> Tensor:
        """The entropy and reachability terms of one task's selector outputs r [batch, k, n]."""
        total = r.new_zeros(())
        if self.entropy_weight > 0:
            total = total - self.entropy_weight * (r * torch.log(r + ENTROPY_EPSILON)).sum()
        if self.reachability:
            total = total + (1 / r.sum(-1)).sum()
        return total

    def __getstate__(self) -> dict:
        """The module's state without the latest penalty (a graph, not part of the model)."""
        state = super().__getstate__()
        state["_penalty"] = None
        return state

    def penalty(self) -> Tensor | None:
        """The entropy and reachability terms of the latest training-mode forward call (None when both are off)."""
        if self.entropy_weight == 0 and not self.reachability:
            return None
        return self._penalty

    def shared_parameters(self) -> list[nn.Parameter]:
        """The experts."""
        return list(self.experts.parameters())

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        """The task's selectors and head."""
        return [*self.selectors[task].parameters(), *self.heads[task].parameters()]
