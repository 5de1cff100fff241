"""GradVac, "Gradient vaccine: investigating and improving multi-task optimization in massively multilingual models"
(Wang, Tsvetkov, Firat and Cao, 2021).

Like PCGrad, each task gradient g_i is modified against the other tasks' original gradients g_j, taken in a random
order, but towards an adaptive target similarity instead of orthogonality: with phi_ij = cos(g_i', g_j) and the
target phi^_ij, an exponential moving average of the similarities seen before, whenever phi_ij < phi^_ij

    g_i' <- g_i' + ||g_i'|| (phi^_ij sqrt(1 - phi_ij^2) - phi_ij sqrt(1 - phi^_ij^2))
                   / (||g_j|| sqrt(1 - phi^_ij^2)) g_j,

which makes cos(g_i', g_j) = phi^_ij; then phi^_ij <- (1 - beta) phi^_ij + beta phi_ij for every pair visited
(phi^ starts at 0). The update is the sum of the modified gradients. With beta = 0 the target stays 0 and the rule
is PCGrad's projection.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from ...errors import ConfigError
from ..base import Aggregator
from .pcgrad import draw_orders
from .seeded import Seeded


def gradvac_coefficients(gram: np.ndarray, order: np.ndarray, target: np.ndarray, beta: float) -> np.ndarray:
    """The coefficients C [T, T] of the modified gradients, g_i' = sum_k C[i, k] g_k, for the Gram matrix M [T, T]
    (float64) and orders [T, T-1]; updates the targets phi^ `target` [T, T] (float64) in place.

    Every modification adds a multiple of an original gradient, so C starts at the identity and only inner products
    are needed: g_i' . g_j = (C M)_ij, kept as CM, and ||g_i'||^2, kept as n_i and updated with
    ||g_i' + c g_j||^2 = n_i + 2 c g_i' . g_j + c^2 M_jj. All tasks i take their k-th partner j at once (each row of C
    changes only through its own partners); numpy, as the T - 1 rounds are many small operations. A similarity with
    a zero gradient counts as 0 and modifies nothing (the paper's code divides by the norms plus 1e-8); a target of
    +-1 (possible only with beta = 1) modifies nothing either, as the rule's denominator sqrt(1 - phi^^2) is then 0.
    """
    t = gram.shape[0]
    coef = np.eye(t)
    cm = gram.copy()
    rows = np.arange(t)
    sq_norms = np.clip(np.diag(gram), 0.0, None)
    norms_j = np.sqrt(sq_norms)
    sq_norm_i = sq_norms.copy()
    for k in range(t - 1):
        j = order[:, k]
        norm_i = np.sqrt(np.clip(sq_norm_i, 0.0, None))
        norm_j = norms_j[j]
        dot = cm[rows, j]
        valid = (norm_i > 0) & (norm_j > 0)
        phi = np.where(valid, np.clip(dot / np.where(valid, norm_i * norm_j, 1.0), -1.0, 1.0), 0.0)
        goal = target[rows, j]
        room = np.sqrt(np.clip(1.0 - goal * goal, 0.0, None))
        apply = valid & (phi < goal) & (room > 0)
        step = np.where(
            apply,
            norm_i
            * (goal * np.sqrt(np.clip(1.0 - phi * phi, 0.0, None)) - phi * room)
            / np.where(apply, norm_j * room, 1.0),
            0.0,
        )
        coef[rows, j] += step
        cm += step[:, None] * gram[j]
        sq_norm_i += step * (2.0 * dot + step * sq_norms[j])
        target[rows, j] = (1.0 - beta) * goal + beta * phi
    return coef


class GradVac(Seeded, Aggregator):
    """Gradient vaccine: weights are the column sums of the modification coefficients.

    Needs the Gram matrix only, and `num_tasks` to size its state. State: the targets phi^ [T, T] (a float64 buffer)
    and the `torch.Generator` seeded with `seed` that draws the orders (extra state), so a resumed run continues
    bit-identically. Cost per step: T - 1 rounds of O(T^2) on the [T, T] Gram matrix, O(T^3), besides the T x P
    Jacobian the step computes anyway. The paper applies the rule to each layer's gradients separately (its targets
    are per layer); this is the whole-model version (LibMTL's default group_type 0): one set of targets for the
    shared parameters as a whole, which is what their Gram matrix describes.
    """

    target: Tensor
    needs_num_tasks = True

    def __init__(self, num_tasks: int, beta: float = 0.5, seed: int = 0) -> None:
        super().__init__()
        if isinstance(num_tasks, bool) or not isinstance(num_tasks, int) or num_tasks < 1:
            raise ConfigError(f"gradvac: num_tasks must be a positive integer, got {num_tasks!r}")
        if (
            isinstance(beta, bool)
            or not isinstance(beta, (int, float))
            or not math.isfinite(beta)
            or not 0 <= beta <= 1
        ):
            raise ConfigError(f"gradvac: beta must be a number in [0, 1], got {beta!r}")
        self.num_tasks, self.beta = num_tasks, float(beta)
        self.seed_generator("gradvac", seed)
        self.register_buffer("target", torch.zeros(num_tasks, num_tasks, dtype=torch.float64))

    def weights(self, gram: Tensor, losses: Tensor) -> Tensor:
        t = gram.shape[0]
        if t != self.num_tasks:
            raise ValueError(f"gradvac was built for {self.num_tasks} tasks, got a Gram matrix {tuple(gram.shape)}")
        m = gram.detach().to(device="cpu", dtype=torch.float64).numpy()
        target = self.target.detach().to(device="cpu", dtype=torch.float64).numpy().copy()
        coef = gradvac_coefficients(0.5 * (m + m.T), draw_orders(t, self.generator).numpy(), target, self.beta)
        self.target.copy_(torch.from_numpy(target))
        return torch.from_numpy(coef.sum(0)).to(device=gram.device, dtype=gram.dtype)

    def extra_repr(self) -> str:
        return f"num_tasks={self.num_tasks}, beta={self.beta}, seed={self.seed}"
