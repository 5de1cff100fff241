"""MGDA: Sener and Koltun (2018), "Multi-task learning as multi-objective optimization", after Desideri (2012),
"Multiple-gradient descent algorithm (MGDA) for multiobjective optimization".

Rule: the update is the min-norm point of the convex hull of the task gradients, sum_t w_t g_t with
w = argmin over the simplex of w^T M w (M the Gram matrix); it is 0 at a Pareto-stationary point and otherwise a
descent direction for every task. Solved by the paper's Algorithm 2 (Frank-Wolfe with exact line search, here with
away steps) and, for two tasks, by its Algorithm 1 in closed form. MGDA-UB, the paper's upper bound, is the same
rule on the gradients with respect to the shared representation: the trainer provides those gradients instead of
the parameters' ones; nothing changes here.

The paper's code can first divide each gradient by a normaliser (its norm, its loss, or both: "optional and not
included in the paper"), then scales each raw loss by the solution. `mgda` does the same; `mgda_normalized_hull`
instead moves along the min-norm point of the normalised gradients themselves.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from ...errors import ConfigError
from ..base import Aggregator

NORMALIZATIONS = ("none", "l2", "loss", "loss+")


def _two_task(m11: float, m12: float, m22: float) -> float:
    """Algorithm 1: the gamma in [0, 1] minimising ||gamma a + (1 - gamma) b||^2, from a.a, a.b and b.b."""
    if m12 >= m11:
        return 1.0
    if m12 >= m22:
        return 0.0
    return (m22 - m12) / (m11 - 2.0 * m12 + m22)


def _frank_wolfe(gram: np.ndarray, max_iter: int, tol: float) -> np.ndarray:
    """argmin_{w in simplex} w^T M w by Frank-Wolfe with exact line search from w = 1/T (Algorithm 2), with
    away steps (Guelat and Marcotte, 1986) so that a minimum on a face of the simplex is reached linearly;
    stops when the duality gap 2 (w^T M w - min_t (M w)_t) is at most tol * max_t M_tt."""
    num_tasks = gram.shape[0]
    w = np.full(num_tasks, 1.0 / num_tasks)
    threshold = tol * max(float(np.max(np.diag(gram))), 0.0)
    for _ in range(max_iter):
        mw = gram @ w
        value = float(w @ mw)
        toward = int(np.argmin(mw))
        gap = value - float(mw[toward])
        if 2.0 * gap <= threshold:
            break
        support = np.flatnonzero(w > 0)
        away = int(support[np.argmax(mw[support])])
        is_away = gap < float(mw[away]) - value and w[away] < 1.0
        if is_away:
            direction = w.copy()
            direction[away] -= 1.0
            step_max = float(w[away] / (1.0 - w[away]))
        else:
            direction = -w.copy()
            direction[toward] += 1.0
            step_max = 1.0
        curvature = float(direction @ gram @ direction)
        slope = float(direction @ mw)
        step = step_max if curvature <= 0 else min(max(-slope / curvature, 0.0), step_max)
        w = w + step * direction
        if is_away and step == step_max:
            w[away] = 0.0
        w = np.clip(w, 0.0, None)
        w /= w.sum()
    return w


def min_norm_weights(gram: Tensor, max_iter: int = 250, tol: float = 1e-6) -> Tensor:
    """The weights w on the simplex of the min-norm point of the convex hull of the vectors whose Gram matrix is
    `gram` [T, T]: argmin w^T M w, exact for T <= 2, Frank-Wolfe otherwise. Solved in float64 on the CPU."""
    m = gram.detach().to(device="cpu", dtype=torch.float64).numpy()
    num_tasks = m.shape[0]
    if num_tasks == 1:
        w = np.ones(1)
    elif num_tasks == 2:
        gamma = _two_task(float(m[0, 0]), float(m[0, 1]), float(m[1, 1]))
        w = np.array([gamma, 1.0 - gamma])
    else:
        w = _frank_wolfe(m, max_iter, tol)
    return torch.from_numpy(w).to(device=gram.device, dtype=gram.dtype)


class MGDA(Aggregator):
    """Min-norm task weights, optionally solved on normalised gradients, as Sener and Koltun's code does.

    `normalization` divides each g_t by n_t before solving: 1 ("none", the paper's algorithm), ||g_t|| ("l2"),
    L_t ("loss") or L_t ||g_t|| ("loss+"); on the Gram matrix, M_st / (n_s n_t). The weights returned are the
    solution v itself (it sums to 1) and apply to the raw gradients, direction = sum_t v_t g_t: the paper's code
    sets each loss's scale to v_t and backpropagates sum_t v_t L_t. (`mgda_normalized_hull` returns v_t / n_t
    instead, so that the update is the min-norm point of the normalised gradients.) A zero gradient keeps n_t = 1
    under "l2" and "loss+" (it is the min-norm point). The loss normalisations need positive losses.
    """

    name: ClassVar[str] = "mgda"  # in messages

    def __init__(self, normalization: str = "none", max_iter: int = 250, tol: float = 1e-6) -> None:
        super().__init__()
        if normalization not in NORMALIZATIONS:
            raise ConfigError(
                f"{self.name}: normalization must be one of {', '.join(NORMALIZATIONS)}, got {normalization!r}"
            )
        if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
            raise ConfigError(f"{self.name}: max_iter must be a positive integer, got {max_iter!r}")
        if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not math.isfinite(tol) or tol < 0:
            raise ConfigError(f"{self.name}: tol must be a number >= 0, got {tol!r}")
        self.normalization = normalization
        self.max_iter = max_iter
        self.tol = float(tol)

    def normalizers(self, gram: Tensor, losses: Tensor) -> Tensor:
        """n [T]: what each task gradient is divided by before solving."""
        if self.normalization == "none":
            return torch.ones_like(gram.diagonal())
        if self.normalization != "l2" and not bool((losses > 0).all()):
            raise ValueError(
                f"{self.name} normalization {self.normalization!r} needs positive losses, got {losses.tolist()}"
            )
        norms = gram.diagonal().clamp_min(0).sqrt()
        n = {"l2": norms, "loss": losses, "loss+": losses * norms}[self.normalization].to(gram)
        return torch.where(n > 0, n, torch.ones_like(n))

    def solve(self, gram: Tensor, losses: Tensor) -> tuple[Tensor, Tensor]:
        """(v, n): the min-norm weights v [T] of the gradients divided by the normalisers n [T]."""
        if gram.dim() != 2 or gram.shape != (losses.numel(), losses.numel()):
            raise ValueError(
                f"{self.name} needs a Gram matrix [T, T] matching losses {tuple(losses.shape)}, got {tuple(gram.shape)}"
            )
        n = self.normalizers(gram, losses.detach())
        return min_norm_weights(gram / (n[:, None] * n[None, :]), self.max_iter, self.tol), n

    def weights(self, gram: Tensor, losses: Tensor) -> Tensor:
        """The min-norm weights of the normalised gradients, for the raw ones."""
        return self.solve(gram, losses)[0]

    def extra_repr(self) -> str:
        return f"normalization={self.normalization!r}, max_iter={self.max_iter}, tol={self.tol}"
