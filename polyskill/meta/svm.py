"""The Crammer-Singer multi-class SVM head of MetaOptNet (Lee et al., 2019), solved exactly and batched in torch.

The dual over alpha [S, N] (support point i, class m) is

    min 1/2 sum_m alpha_m^T K alpha_m - sum_i alpha_{i, y_i}
    s.t. alpha_im <= C [m = y_i],  sum_m alpha_im = 0  for every i,

with K the support Gram matrix plus `eps` on its diagonal, and the weights are W = X^T alpha [D, N]. Adding
`eps` gives every support point a private feature of length sqrt(eps): the SVM stays an exact Crammer-Singer
SVM (in that augmented space; queries have no private feature, so logits are still query @ W), and the dual
becomes strictly convex, so alpha is unique and differentiable even with duplicate points or S > D.
MetaOptNet's released code adds 1.0.

Solver: accelerated projected gradient (the projection onto each row's set {alpha_i <= C e_{y_i},
sum alpha_i = 0} is exact, by sorting) finds the active set roughly; Newton steps on that active set (an
equality-constrained QP, solved exactly) then converge in a few steps to machine precision. The gradient is
not unrolled: it is the implicit derivative of the KKT conditions on the final active set, exact wherever
the active set is locally stable (strict complementarity), and it costs one more linear solve.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

SEARCH_STEPS = (1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125)
PATIENCE = 8


def project_rows(v: Tensor, upper: Tensor, total: float) -> tuple[Tensor, Tensor]:
    """Euclidean projection of each row of v [..., N] onto {a <= upper, sum a = 0}, where sum(upper) = total > 0.

    With b = upper - a it is the projection of upper - v onto the simplex {b >= 0, sum b = total}: exact by
    sorting. Returns the projection and the mask of coordinates strictly below their bound (the free set).
    """
    z = upper - v
    ordered = z.sort(dim=-1, descending=True).values
    excess = ordered.cumsum(-1) - total
    ranks = torch.arange(1, z.shape[-1] + 1, device=z.device, dtype=z.dtype)
    count = (ordered - excess / ranks > 0).sum(-1, keepdim=True).clamp_min(1)
    threshold = excess.gather(-1, count - 1) / count
    free = z - threshold > 0
    return upper - (z - threshold).clamp_min(0), free


def _cholesky(matrix: Tensor) -> Tensor:
    """Cholesky factor of a batch of matrices that must be positive definite (else a ValueError that says why)."""
    factor, info = torch.linalg.cholesky_ex(matrix)
    if bool((info > 0).any()):
        raise ValueError("the support kernel is singular (duplicate support points, or more points than "
                         "dimensions): use eps > 0")
    return factor


class _ActiveSetSystem:
    """The KKT system of the dual with the coordinates outside `free` fixed at their bound.

    Unknowns: x [B, S, N] on the free coordinates and one multiplier mu_i per row, with
    (K x_m)_i + mu_i = rhs_im for free (i, m) and sum_m x_im = total_i. For a fixed mu each class column is a
    system in K restricted to that column's free rows, so it is solved by N Cholesky factorisations of S x S
    blocks and a Schur complement in mu (S x S), not as one (SN) x (SN) system. The matrix is symmetric, so
    the backward pass solves the same system with another right-hand side.
    """

    def __init__(self, kernel: Tensor, free: Tensor) -> None:
        mask = free.transpose(1, 2).to(kernel.dtype)  # [B, N, S]
        outer = mask.unsqueeze(-1) * mask.unsqueeze(-2)
        blocks = kernel.unsqueeze(1) * outer + torch.diag_embed(1 - mask)
        self.inverse = torch.cholesky_inverse(_cholesky(blocks)) * outer  # [B, N, S, S], zero off the free rows
        self.schur = _cholesky(self.inverse.sum(1))

    def solve(self, rhs: Tensor, total: Tensor) -> Tensor:
        """x [B, S, N], zero off the free set, for right-hand sides rhs [B, S, N] and row sums total [B, S]."""
        per_class = (self.inverse @ rhs.transpose(1, 2).unsqueeze(-1)).squeeze(-1)  # [B, N, S]
        mu = torch.cholesky_solve((per_class.sum(1) - total).unsqueeze(-1), self.schur)  # [B, S, 1]
        return (per_class - (self.inverse @ mu.unsqueeze(1)).squeeze(-1)).transpose(1, 2)


class _Dual:
    """One batch of Crammer-Singer duals: kernel [B, S, S] (eps included), one-hot labels [B, S, N], C."""

    def __init__(self, kernel: Tensor, onehot: Tensor, C: float) -> None:
        self.kernel, self.onehot, self.C = kernel, onehot, C
        self.upper = C * onehot
        bounds = torch.stack([kernel.abs().sum(-1).amax(-1), kernel.diagonal(dim1=1, dim2=2).sum(-1)])
        self.lipschitz = bounds.amin(0).view(-1, 1, 1)  # >= the largest eigenvalue (Gershgorin; trace)

    def gradient(self, alpha: Tensor) -> Tensor:
        return self.kernel @ alpha - self.onehot

    def step(self, alpha: Tensor) -> tuple[Tensor, Tensor]:
        """A projected gradient step of length 1/L, and the free set it lands on."""
        return project_rows(alpha - self.gradient(alpha) / self.lipschitz, self.upper, self.C)

    def gap(self, alpha: Tensor, moved: Tensor) -> Tensor:
        """Optimality gap of each task [B]: the largest move of the projected gradient step alpha -> moved, times L,
        so in units of the gradient (whose linear part is the one-hot labels), zero exactly at the optimum."""
        return (moved - alpha).abs().flatten(1).amax(1) * self.lipschitz.flatten()

    def newton(self, free: Tensor) -> Tensor:
        """The minimiser with the coordinates outside `free` at their bound (the equality-constrained QP)."""
        fixed = torch.where(free, torch.zeros_like(self.upper), self.upper)
        x = _ActiveSetSystem(self.kernel, free).solve(self.onehot - self.kernel @ fixed, -fixed.sum(-1))
        return x + fixed

    def objective(self, alpha: Tensor) -> Tensor:
        """The dual objective of each task [B] (alpha [..., B, S, N])."""
        return (alpha * (0.5 * (self.kernel @ alpha) - self.onehot)).sum((-2, -1))

    def search(self, cauchy: Tensor, newton: Tensor) -> Tensor:
        """The lowest objective among the projections of cauchy + t (newton - cauchy), t in 1, 1/2, ..., 1/32, and
        t = 0: never worse than the projected gradient step, and the Newton point once the active set is right."""
        steps = torch.tensor(SEARCH_STEPS, dtype=cauchy.dtype, device=cauchy.device).view(-1, 1, 1, 1)
        candidates = torch.cat([project_rows(cauchy + steps * (newton - cauchy), self.upper, self.C)[0],
                                cauchy.unsqueeze(0)])
        best = self.objective(candidates).argmin(0)  # the first of equals: the longest step
        return candidates.gather(0, best.view(1, -1, 1, 1).expand_as(candidates[:1])).squeeze(0)

    def solve(self, iterations: int, tol: float) -> Tensor:
        """Up to `iterations` Newton steps from alpha = 0, each on the active set named by a projected gradient
        step (a primal-dual active-set method: a few steps, exact once the set is right), keeping the iterate
        with the smallest gap. Such steps may cycle: a task whose gap has not improved in PATIENCE steps goes
        back to its best iterate and on by `search`, which decreases the objective at every step, so it converges.
        """
        batch = self.onehot.shape[0]
        alpha = best = torch.zeros_like(self.onehot)
        best_gap = torch.full((batch,), torch.inf, dtype=alpha.dtype, device=alpha.device)
        stalled = torch.zeros(batch, dtype=torch.long, device=alpha.device)
        monotone = torch.zeros(batch, dtype=torch.bool, device=alpha.device)
        for step in range(iterations + 1):
            cauchy, free = self.step(alpha)
            gap = self.gap(alpha, cauchy)
            improved = gap < best_gap
            best, best_gap = torch.where(improved.view(-1, 1, 1), alpha, best), torch.minimum(gap, best_gap)
            if step == iterations or bool((best_gap <= tol).all()):
                break
            stalled = torch.where(improved, 0, stalled + 1)
            restart = (stalled > PATIENCE) & ~monotone
            if bool(restart.any()):
                monotone = monotone | restart
                alpha = torch.where(restart.view(-1, 1, 1), best, alpha)
                cauchy, free = self.step(alpha)
            newton = self.newton(free)
            alpha = torch.where(monotone.view(-1, 1, 1), self.search(cauchy, newton), newton)
        return best


class _CrammerSingerDual(torch.autograd.Function):
    """alpha(kernel): solved to high precision, differentiated implicitly through the KKT conditions."""

    @staticmethod
    def forward(ctx, kernel: Tensor, onehot: Tensor, C: float, iterations: int, tol: float) -> Tensor:
        dual = _Dual(kernel, onehot, C)
        alpha = dual.solve(iterations, tol)
        ctx.save_for_backward(kernel, alpha, dual.step(alpha)[1])
        return alpha

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        kernel, alpha, free = ctx.saved_tensors
        v = _ActiveSetSystem(kernel, free).solve(grad * free, torch.zeros_like(alpha[..., 0]))
        return -v @ alpha.transpose(1, 2), None, None, None, None


def svm_dual(kernel: Tensor, labels: Tensor, way: int, C: float = 0.1, iterations: int = 100,
             tol: float = 1e-9) -> Tensor:
    """Dual variables alpha [B, S, N] of the Crammer-Singer SVM on a positive definite kernel [B, S, S].

    At most `iterations` Newton steps, stopping once every task's optimality gap (L times the move of a
    projected gradient step) is <= `tol`. Use float64: the active set is decided by signs of small numbers.
    """
    if C <= 0 or tol <= 0 or iterations < 0:
        raise ValueError(f"C and tol must be > 0 and iterations >= 0, got C={C}, tol={tol}, iterations={iterations}")
    onehot = F.one_hot(labels, way).to(kernel.dtype)
    return _CrammerSingerDual.apply(kernel, onehot, C, iterations, tol)


def svm_head(support: Tensor, labels: Tensor, way: int, C: float = 0.1, eps: float = 1.0, iterations: int = 100,
             tol: float = 1e-9) -> Tensor:
    """Weights W [B, D, N] of the Crammer-Singer SVM on support [B, S, D] with labels [B, S] (logits: query @ W).

    Solved in float64 (the active-set decisions need it; S x S work is cheap) and returned in support's dtype.
    """
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    x = support.double()
    kernel = x @ x.transpose(1, 2) + eps * torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
    alpha = svm_dual(kernel, labels, way, C, iterations, tol)
    return (x.transpose(1, 2) @ alpha).to(support.dtype)
