"""The Crammer-Singer multi-class SVM head of MetaOptNet (Lee et al., 2019), solved exactly and batched in torch.

The dual over alpha [S, N] (support point i, class m) is

    min 1/2 sum_m alpha_m^T K alpha_m - sum_i alpha_{i, y_i}
    s.t. alpha_im <= C [m = y_i],  sum_m alpha_im = 0  for every i,

with K the support Gram matrix plus `eps` on its diagonal, and the weights are W = X^T alpha [D, N]. Adding
`eps` gives every support point a private feature of length sqrt(eps): the SVM stays an exact Crammer-Singer
SVM (in that augmented space; queries have no private feature, so logits are still query @ W), and the dual
becomes strictly convex, so alpha is unique and differentiable even with duplicate points or S > D.
MetaOptNet's released code adds 1.0.

Solver: a primal-dual interior-point method (Mehrotra's predictor-corrector, as the paper's qpth) converges
in a number of steps that hardly depends on the problem; whenever the set of coordinates at their bound that
it points to holds still for two steps, the QP with that active set is solved exactly (a "polish"), and the
solve stops once every task's polished solution is optimal to `tol`: so alpha is exact to rounding, not to
the interior-point tolerance. (Active-set Newton steps alone converge in fewer steps when they converge, but
they can cycle.) The gradient is not unrolled: it is the implicit derivative of the KKT conditions on the final
active set, exact wherever that set is locally stable (strict complementarity), for one more linear solve.
Every linear system has the structure K (x) I_N plus a diagonal, with one equality per row: it is solved by N
Cholesky factorisations of S x S blocks and a Schur complement, never as one SN x SN system.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

STEP_TO_BOUNDARY = 0.99  # interior-point steps go this fraction of the way to the nearest bound


def project_rows(v: Tensor, onehot: Tensor, C: float) -> tuple[Tensor, Tensor]:
    """Euclidean projection of each row of v [..., N] onto {a <= C onehot, sum a = 0}, and its free set.

    The projection is min(v - theta, C onehot) for the theta that makes the row sum zero; theta is found by
    sorting the breakpoints v - C onehot. It is computed in the units of v, so a large C costs no precision
    on the small entries. The free set marks the coordinates strictly below their bound.
    """
    bounds = C * onehot
    breaks = v - bounds
    order = breaks.argsort(-1)
    ranks = torch.arange(1, v.shape[-1] + 1, device=v.device, dtype=v.dtype)
    # theta if the k smallest breakpoints are free: (their v + the bounds of the others) / k
    thetas = (v.gather(-1, order).cumsum(-1) + C * (1 - onehot.gather(-1, order).cumsum(-1))) / ranks
    count = (breaks.gather(-1, order) < thetas).sum(-1, keepdim=True).clamp_min(1)
    theta = thetas.gather(-1, count - 1)
    free = breaks < theta
    return torch.where(free, v - theta, bounds), free


def _cholesky(matrix: Tensor) -> Tensor:
    """Cholesky factor of a batch of matrices that must be positive definite (else a ValueError that says why)."""
    factor, info = torch.linalg.cholesky_ex(matrix)
    if bool((info > 0).any()):
        raise ValueError(
            "the support kernel is singular (duplicate support points, or more points than dimensions): use eps > 0"
        )
    return factor


class _BlockSystem:
    """(K (x) I_N + diag(d)) restricted to the `free` coordinates, with one equality per row, factorised.

    Unknowns: x [B, S, N], zero off `free`, and mu [B, S], with (K x_m)_i + d_im x_im + mu_i = rhs_im for free
    (i, m) and sum_m x_im = total_i. For a fixed mu each class column m is a system in K + diag(d_m) restricted to
    its free rows; the row sums then give an S x S positive definite system in mu (every row has a free
    coordinate). The matrix is symmetric, so the backward pass solves it with another right-hand side.
    """

    def __init__(self, kernel: Tensor, diagonal: Tensor, free: Tensor) -> None:
        mask = free.transpose(1, 2).to(kernel.dtype)  # [B, N, S]
        outer = mask.unsqueeze(-1) * mask.unsqueeze(-2)
        blocks = (kernel.unsqueeze(1) + torch.diag_embed(diagonal.transpose(1, 2))) * outer + torch.diag_embed(1 - mask)
        self.inverse = torch.cholesky_inverse(_cholesky(blocks)) * outer  # [B, N, S, S], zero off the free rows
        self.schur = _cholesky(self.inverse.sum(1))

    def solve(self, rhs: Tensor, total: Tensor) -> tuple[Tensor, Tensor]:
        """x [B, S, N] and mu [B, S] for right-hand sides rhs [B, S, N] (read on the free set) and row sums
        total [B, S]."""
        per_class = (self.inverse @ rhs.transpose(1, 2).unsqueeze(-1)).squeeze(-1)  # [B, N, S]
        mu = torch.cholesky_solve((per_class.sum(1) - total).unsqueeze(-1), self.schur)  # [B, S, 1]
        x = per_class - (self.inverse @ mu.unsqueeze(1)).squeeze(-1)
        return x.transpose(1, 2), mu.squeeze(-1)


def _expand(mask: Tensor, like: Tensor) -> Tensor:
    """A per-task mask [B] shaped to broadcast against `like` [B, ...]."""
    return mask.view(-1, *([1] * (like.dim() - 1)))


def _step_length(value: Tensor, change: Tensor) -> Tensor:
    """The largest t <= 1 with value + t change >= 0 for a positive value [B, S, N], per task [B, 1, 1]."""
    ratio = torch.where(change < 0, -value / change, torch.full_like(value, torch.inf))
    return ratio.flatten(1).amin(1).clamp(max=1.0).view(-1, 1, 1)


class _Dual:
    """One batch of Crammer-Singer duals: kernel [B, S, S] (eps included), one-hot labels [B, S, N], C."""

    def __init__(self, kernel: Tensor, onehot: Tensor, C: float) -> None:
        self.kernel, self.onehot, self.C = kernel, onehot, C
        self.upper = C * onehot
        bounds = torch.stack([kernel.abs().sum(-1).amax(-1), kernel.diagonal(dim1=1, dim2=2).sum(-1)])
        self.lipschitz = bounds.amin(0).view(-1, 1, 1)  # >= the largest eigenvalue (Gershgorin; trace)

    def projected_step(self, alpha: Tensor) -> tuple[Tensor, Tensor]:
        """A projected gradient step of length 1/L, and the free set it lands on."""
        return project_rows(alpha - (self.kernel @ alpha - self.onehot) / self.lipschitz, self.onehot, self.C)

    def gap(self, alpha: Tensor) -> Tensor:
        """Optimality gap of each task [B]: L times the largest move of a projected gradient step, so in units
        of the gradient (whose linear part is the one-hot labels); zero exactly at the optimum."""
        return (self.projected_step(alpha)[0] - alpha).abs().flatten(1).amax(1) * self.lipschitz.flatten()

    def polish(self, free: Tensor) -> Tensor:
        """The minimiser with the coordinates outside `free` at their bound (an equality-constrained QP)."""
        fixed = torch.where(free, torch.zeros_like(self.upper), self.upper)
        system = _BlockSystem(self.kernel, torch.zeros_like(fixed), free)
        return system.solve(self.onehot - self.kernel @ fixed, -fixed.sum(-1))[0] + fixed

    def start(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The interior-point start: alpha = 0, slacks C, their multipliers 1, row multipliers 0."""
        alpha = torch.zeros_like(self.onehot)
        return alpha, torch.full_like(alpha, self.C), torch.ones_like(alpha), torch.zeros_like(alpha[..., 0])

    def solve(self, iterations: int, tol: float) -> Tensor:
        """Interior-point steps on alpha, the slacks s = C onehot - alpha >= 0, their multipliers z >= 0 and the
        row multipliers mu (infeasible start), polishing the active set {z > L s} whenever it holds still.
        A task stops moving once solved, or once s z nears underflow (its steps would then divide by 0); nearly
        degenerate tasks (a coordinate very close to its bound) need s z far below rounding level to be polished."""
        state: tuple[Tensor, ...] = self.start()
        best, best_gap = state[0], self.gap(state[0])
        previous = None
        for _ in range(iterations):
            _, slack, dual, _ = state
            score = self.lipschitz * slack - dual
            free = (score > 0) | (score == score.amax(-1, keepdim=True))  # at least one free coordinate a row
            steady = (free == previous).flatten(1).all(1) if previous is not None else None
            if steady is not None and bool(steady.any()):
                candidate = self.polish(free)
                candidate_gap = self.gap(candidate)
                better = steady & (candidate_gap < best_gap)
                best = torch.where(better.view(-1, 1, 1), candidate, best)
                best_gap = torch.where(better, candidate_gap, best_gap)
            previous = free
            moving = (best_gap > tol) & ((slack * dual).mean((1, 2)) > torch.finfo(slack.dtype).tiny ** 0.5)
            if not bool(moving.any()):
                break
            state = self._advance(state, moving)
        final_gap = self.gap(state[0])
        return torch.where((final_gap < best_gap).view(-1, 1, 1), state[0], best)

    def _advance(self, state: tuple[Tensor, ...], moving: Tensor) -> tuple[Tensor, ...]:
        """An interior-point step for the tasks in `moving` [B]; the others keep their state (their step is taken
        from the start instead, and dropped, so it cannot divide by zero)."""
        inputs = (torch.where(_expand(moving, now), now, first) for now, first in zip(state, self.start(), strict=True))
        stepped = self._interior_step(*inputs)
        return tuple(torch.where(_expand(moving, now), new, now) for now, new in zip(state, stepped, strict=True))

    def _interior_step(self, alpha: Tensor, slack: Tensor, dual: Tensor, mu: Tensor) -> tuple[Tensor, ...]:
        """One Mehrotra predictor-corrector step on the KKT conditions K alpha - Y + mu + z = 0,
        sum_m alpha = 0, alpha + s = C Y, s z = sigma nu."""
        r_dual = self.kernel @ alpha - self.onehot + mu.unsqueeze(-1) + dual
        r_rows, r_bound = alpha.sum(-1), alpha + slack - self.upper
        system = _BlockSystem(self.kernel, dual / slack, torch.ones_like(alpha, dtype=torch.bool))

        def direction(target: Tensor) -> tuple[Tensor, ...]:
            """The Newton direction towards s z = target (eliminating s and z)."""
            d_alpha, d_mu = system.solve(dual - r_dual - (target + dual * r_bound) / slack, -r_rows)
            d_slack = -r_bound - d_alpha
            return d_alpha, d_slack, (target - dual * d_slack) / slack - dual, d_mu

        nu = (slack * dual).mean((1, 2), keepdim=True)
        affine = direction(torch.zeros_like(slack))
        t = torch.minimum(_step_length(slack, affine[1]), _step_length(dual, affine[2]))
        nu_affine = ((slack + t * affine[1]) * (dual + t * affine[2])).mean((1, 2), keepdim=True)
        d_alpha, d_slack, d_dual, d_mu = direction((nu_affine / nu) ** 3 * nu - affine[1] * affine[2])
        t = STEP_TO_BOUNDARY * torch.minimum(_step_length(slack, d_slack), _step_length(dual, d_dual))
        return alpha + t * d_alpha, slack + t * d_slack, dual + t * d_dual, mu + t.view(-1, 1) * d_mu


class _CrammerSingerDual(torch.autograd.Function):
    """alpha(kernel): solved to high precision, differentiated implicitly through the KKT conditions."""

    @staticmethod
    def forward(ctx, kernel: Tensor, onehot: Tensor, C: float, iterations: int, tol: float) -> Tensor:
        dual = _Dual(kernel, onehot, C)
        alpha = dual.solve(iterations, tol)
        ctx.save_for_backward(kernel, alpha, dual.projected_step(alpha)[1])
        return alpha

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        kernel, alpha, free = ctx.saved_tensors
        system = _BlockSystem(kernel, torch.zeros_like(alpha), free)
        v = system.solve(grad, torch.zeros_like(alpha[..., 0]))[0]
        return -v @ alpha.transpose(1, 2), None, None, None, None


def svm_dual(
    kernel: Tensor, labels: Tensor, way: int, C: float = 0.1, iterations: int = 50, tol: float = 1e-9
) -> Tensor:
    """Dual variables alpha [B, S, N] of the Crammer-Singer SVM on a positive definite kernel [B, S, S].

    At most `iterations` interior-point steps, stopping once every task's polished solution has an optimality
    gap (L times the move of a projected gradient step) <= `tol`. Use float64: the active set is decided by
    signs of small numbers.
    """
    if C <= 0 or tol <= 0 or iterations < 1:
        raise ValueError(f"C and tol must be > 0 and iterations >= 1, got C={C}, tol={tol}, iterations={iterations}")
    onehot = F.one_hot(labels, way).to(kernel.dtype)
    return _CrammerSingerDual.apply(kernel, onehot, C, iterations, tol)


def svm_head(
    support: Tensor, labels: Tensor, way: int, C: float = 0.1, eps: float = 1.0, iterations: int = 50, tol: float = 1e-9
) -> Tensor:
    """Weights W [B, D, N] of the Crammer-Singer SVM on support [B, S, D] with labels [B, S] (logits: query @ W).

    Solved in float64 (the active-set decisions need it; S x S work is cheap) and returned in support's dtype.
    """
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    x = support.double()
    kernel = x @ x.transpose(1, 2) + eps * torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
    alpha = svm_dual(kernel, labels, way, C, iterations, tol)
    return (x.transpose(1, 2) @ alpha).to(support.dtype)
