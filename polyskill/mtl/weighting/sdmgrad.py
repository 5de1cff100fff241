"""SDMGrad, "Direction-oriented multi-objective learning: simple and provable stochastic algorithms" (Xiao, Ban and
Ji, 2023).

The update stays close to the average gradient g0 = G^T 1 / T while improving every task: the weights w on the
simplex minimise (1/2) ||G^T w + lamda g0||^2, by a few projected (stochastic) gradient steps warm-started from the
previous step's w, and the update is

    d = (G^T w + lamda g0) / (1 + lamda),

so the task weights are (w + lamda / T) / (1 + lamda). lamda = 0 is MGDA's min-norm problem solved approximately;
large lamda approaches the average gradient.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ...errors import ConfigError
from ..base import Aggregator, project_simplex

LR = 5.0  # the official code's step size for w (on the normalised Gram matrix)
MOMENTUM = 0.5  # and its heavy-ball momentum (torch.optim.SGD's, restarted every training step)


class SDMGrad(Aggregator):
    """Direction-oriented weights: `niter` steps of projected SGD with momentum on w, as the official code does.

    Each step scales the Gram matrix by the mean gradient norm, M' = M / (mean_t ||g_t||)^2, then repeats `niter`
    times: gradient M' w + lamda M' 1 / T, momentum buffer b = gradient (first iteration) or MOMENTUM b + gradient,
    w <- project_simplex(w - LR b). The momentum restarts every training step (the code builds a new optimiser); w
    does not (a float64 buffer, 1/T at first). With these constants the iteration is unstable on the normalised
    Gram matrix (its largest eigenvalue is at least 1, above the heavy-ball bound 2 (1 + MOMENTUM) / LR = 0.6), so
    unless the minimiser is a vertex of the simplex w keeps moving between steps, often between vertices: the
    official algorithm's behaviour, kept.

    Needs the Gram matrix only, and `num_tasks` to size its state (w). Cost per step: `niter` iterations of
    O(T^2) plus a sort for the projection, on the [T, T] Gram matrix, besides the T x P Jacobian the step computes
    anyway. Differences from the official code (LibMTL's SDMGrad): it draws three independent batches, one whose
    gradients make the update and two whose gradients make the Gram matrix (an unbiased estimate of the objective's
    gradient); here one batch's Gram matrix serves for both. It divides by (mean norm)^2 + 1e-8, which slows w down
    for gradients of norm ~1e-4 and below; here by (mean norm)^2 exactly, and not at all when every gradient is zero
    (w is then left as it is).
    """

    w: Tensor
    needs_num_tasks = True

    def __init__(self, num_tasks: int, lamda: float = 0.3, niter: int = 20) -> None:
        super().__init__()
        if isinstance(num_tasks, bool) or not isinstance(num_tasks, int) or num_tasks < 1:
            raise ConfigError(f"sdmgrad: num_tasks must be a positive integer, got {num_tasks!r}")
        if isinstance(lamda, bool) or not isinstance(lamda, (int, float)) or not math.isfinite(lamda) or lamda < 0:
            raise ConfigError(f"sdmgrad: lamda must be a number >= 0, got {lamda!r}")
        if isinstance(niter, bool) or not isinstance(niter, int) or niter < 1:
            raise ConfigError(f"sdmgrad: niter must be a positive integer, got {niter!r}")
        self.num_tasks, self.lamda, self.niter = num_tasks, float(lamda), niter
        self.register_buffer("w", torch.full((num_tasks,), 1.0 / num_tasks, dtype=torch.float64))

    def weights(self, gram: Tensor, losses: Tensor) -> Tensor:
        t = gram.shape[0]
        if t != self.num_tasks:
            raise ValueError(f"sdmgrad was built for {self.num_tasks} tasks, got a Gram matrix {tuple(gram.shape)}")
        m = gram.detach().to(device="cpu", dtype=torch.float64)
        m = 0.5 * (m + m.T)
        w = self.w.detach().to(device="cpu", dtype=torch.float64).clone()
        scale = m.diagonal().clamp_min(0).sqrt().mean()
        if bool(scale > 0):
            m = m / scale.square()
            pull = self.lamda * m.mean(1)
            buffer = torch.zeros_like(w)
            for i in range(self.niter):
                grad = m @ w + pull
                buffer = grad if i == 0 else MOMENTUM * buffer + grad
                w = project_simplex(w - LR * buffer)
            self.w.copy_(w)
        return ((w + self.lamda / t) / (1.0 + self.lamda)).to(device=gram.device, dtype=gram.dtype)

    def extra_repr(self) -> str:
        return f"num_tasks={self.num_tasks}, lamda={self.lamda}, niter={self.niter}"
