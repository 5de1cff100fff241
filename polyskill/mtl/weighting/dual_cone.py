"""Projection onto the dual cone of the task gradients, from their Gram matrix: Quinton and Rey (2024), "Jacobian
descent for multi-objective optimization", Proposition 1.

The dual cone of the gradients g_1..g_T (the rows of G) is C = {x : G x >= 0}, the directions that increase no loss to
first order. The projection of u^T G onto C is v^T G with

    v = argmin_{v >= u} v^T M v,   M = G G^T,

a box-constrained convex quadratic program on T variables. Its KKT conditions, with the bound's multiplier
lambda = M v: v >= u, M v >= 0 and (v - u)_t (M v)_t = 0 for every t. In particular G (G^T v) = M v >= 0: the
projected direction v^T G conflicts with no task. With M singular (linearly dependent gradients, more tasks than
parameters) v may not be unique; the direction v^T G always is.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

F64 = torch.float64
# A free variable whose Cholesky pivot on the free block is below this fraction of its diagonal entry counts as
# linearly dependent on the free variables before it: its gradient is within 1e-5 (relative) of their span.
PIVOT_RTOL = 1e-10
# Kim and Park's safeguard: full exchanges allowed without fewer infeasible variables before the block pivoting
# exchanges one variable at a time.
FULL_EXCHANGES = 3
# A Gram matrix computed in less than float64 (float32 from a float32 Jacobian) carries rounding errors of a few
# eps(dtype) max_t M_tt in its eigenvalues (seen: 2e-7 in float32, down to -2e-7, at T = 139 with 64 parameters, where
# the quadratic program is then not convex). Its eigenvalues below this many T eps(dtype) times the largest are set
# to zero: indefinite rounding becomes the rank deficiency it stands for. A float64 Gram matrix is used as it is.
LOW_PRECISION_RTOL = 1.0
# Block pivoting iterations allowed for a singular Gram matrix, where the method is not finite: the singular cases it
# solves took at most 6 (duplicated gradients, 139 tasks with 64 to 130 parameters); those it does not (gradients
# that nearly span their span positively) go to the Lawson-Hanson method after these.
SINGULAR_MAX_ITER = 10
# Projected gradient iterations that guess the free sets before the exact method starts.
WARM_START_ITERATIONS = 30
# Linearly dependent free variables a row may set aside in one solve, each a further factorisation; a row with more
# sets the rest aside in the next iteration.
MAX_PINNED = 8


def _tolerance(num_tasks: int, v: Tensor) -> Tensor:
    """Per-row slack [B] of the KKT tests on the normalised problem (max M_tt = 1, max |u| = 1): rounding of M v is
    about T eps |v|, and |v| exceeds |u| where gradients nearly cancel."""
    return 1e3 * num_tasks * torch.finfo(F64).eps * v.abs().amax(1).clamp_min(1.0)


def _guess_free_sets(m: Tensor, lower: Tensor) -> Tensor:
    """The variables above their bounds after `WARM_START_ITERATIONS` accelerated projected gradient steps (FISTA)
    on the problem scaled to unit diagonal: a start for the exact method, which is right for most rows when M is
    well conditioned."""
    d = m.diagonal().sqrt()
    safe = torch.where(d > 0, d, torch.ones_like(d))
    cos = m / (safe[:, None] * safe[None, :])
    step = 1.0 / float(torch.linalg.eigvalsh(cos)[-1])
    low = lower * safe
    x = y = low
    momentum = 1.0
    for _ in range(WARM_START_ITERATIONS):
        nxt = torch.maximum(y - step * (y @ cos), low)
        following = 0.5 * (1.0 + (1.0 + 4.0 * momentum * momentum) ** 0.5)
        y = nxt + ((momentum - 1.0) / following) * (nxt - x)
        x, momentum = nxt, following
    return (x > low + 1e-9 * low.abs().amax(1, keepdim=True)) & (d > 0)


def _solve_on_free_sets(m: Tensor, m_ext: Tensor, lower: Tensor, free: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(v [B, T], free [B, T]): v_A = u_A on the active set A and M_FF v_F = -M_FA u_A on the free set F, each row
    its own F, by batched Cholesky factorisations of the free blocks padded to the largest with identity (`m_ext` is
    blockdiag(M, I_T): padding slot s reads index T + s). A free variable whose gradient depends linearly on those
    before it (a pivot below `PIVOT_RTOL`) is moved to the active set and the row solved again: its equation
    (M v)_j = g_j . (G^T v) = 0 then holds through the others', so v also solves the original free set's equations.
    Returns v, the free sets used and ok [B], False for rows with more than `MAX_PINNED` to set aside (their v is not
    a solution, and their free sets have `MAX_PINNED` fewer variables)."""
    b, t = lower.shape
    v = lower.clone()
    free = free.clone()
    flat = m_ext.reshape(-1)
    pending = torch.arange(b)
    ok = torch.ones(b, dtype=torch.bool)
    for _ in range(MAX_PINNED + 1):
        if pending.numel() == 0:
            break
        sub = free[pending]
        sizes = sub.sum(1)
        k = int(sizes.max())
        if k == 0:
            pending = pending[:0]
            break
        slots = torch.arange(k).expand(pending.numel(), k)
        real = slots < sizes[:, None]
        order = torch.argsort((~sub).to(torch.int8), dim=1, stable=True)[:, :k]
        idx = torch.where(real, order, t + slots)
        block = torch.take(flat, idx[:, :, None] * (2 * t) + idx[:, None, :])
        low = lower[pending]
        chol, _ = torch.linalg.cholesky_ex(block)
        bad = ~(chol.diagonal(dim1=1, dim2=2).square() > PIVOT_RTOL * block.diagonal(dim1=1, dim2=2))
        failed = bad.any(1)
        rows, factor, slot_idx, low_d, sub_d = pending, chol, idx, low, sub
        if bool(failed.any()):  # copy the solvable rows out only when some are not
            keep = (~failed).nonzero().squeeze(1)
            rows, factor, slot_idx, low_d, sub_d = pending[keep], chol[keep], idx[keep], low[keep], sub[keep]
        if rows.numel():
            rhs = torch.cat([-((low_d * ~sub_d) @ m), torch.zeros_like(low_d)], 1).gather(1, slot_idx)
            # two triangular solves: a quarter of cholesky_solve's time on these batches
            half = torch.linalg.solve_triangular(factor, rhs[:, :, None], upper=False)
            x = torch.linalg.solve_triangular(factor.mT, half, upper=True)[:, :, 0]
            v[rows] = torch.cat([low_d, torch.zeros_like(low_d)], 1).scatter(1, slot_idx, x)[:, :t]
        first = bad[failed].to(torch.int8).argmax(1)
        pending = pending[failed]
        free[pending, order[failed].gather(1, first[:, None]).squeeze(1)] = False
    ok[pending] = False
    return v, free, ok


def _block_pivoting(m: Tensor, lower: Tensor, free: Tensor, max_iter: int) -> tuple[Tensor, Tensor]:
    """(v [B, T], solved [B]) by block principal pivoting (Judice and Pires, 1994; Kim and Park, 2011, "Fast
    nonnegative matrix factorization: an active-set-like method and comparisons") from the free sets `free`.

    Each iteration solves every unsolved row's equality-constrained problem on its free set, then moves each of its
    infeasible variables (free below the bound, or active with a negative multiplier) to the other set; after
    `FULL_EXCHANGES` exchanges without fewer infeasible variables it moves only the infeasible variable of largest
    index (Murty's rule), which makes the method finite when M is positive definite. A row stops when its KKT
    conditions hold within rounding; rows still unsolved after `max_iter` iterations have solved = False."""
    b, t = lower.shape
    m_ext = torch.block_diag(m, torch.eye(t, dtype=F64))
    v = lower.clone()
    solved = torch.zeros(b, dtype=torch.bool)
    free = free.clone()
    best = torch.full((b,), t + 1)
    budget = torch.full((b,), FULL_EXCHANGES)
    todo = torch.arange(b)
    for _ in range(max_iter):
        low = lower[todo]
        cur, on, ok = _solve_on_free_sets(m, m_ext, low, free[todo])
        v[todo] = cur
        free[todo[~ok]] = on[~ok]
        later, todo, low, cur, on = todo[~ok], todo[ok], low[ok], cur[ok], on[ok]
        slack = _tolerance(t, cur)[:, None]
        infeasible = torch.where(on, cur - low < -slack, cur @ m < -slack)
        count = infeasible.sum(1)
        done = count == 0
        solved[todo[done]] = True
        fewer = count < best[todo]
        full = fewer | (budget[todo] > 0)
        budget[todo] = torch.where(fewer, FULL_EXCHANGES, budget[todo] - 1)
        best[todo] = torch.minimum(best[todo], count)
        last = t - 1 - infeasible.flip(1).to(torch.int8).argmax(1)
        single = torch.zeros_like(infeasible).scatter(1, last[:, None], True)
        free[todo] = on ^ torch.where(full[:, None], infeasible, single & infeasible)
        todo = torch.cat([todo[~done], later]).sort().values
        if todo.numel() == 0:
            break
    return v, solved


def _lawson_hanson(m: np.ndarray, lower: np.ndarray, max_iter: int) -> np.ndarray:
    """v for one row by Lawson and Hanson's active-set method (1974, "Solving least squares problems", ch. 23) on
    x = v - u >= 0, in Gram form (Bro and de Jong, 1997). The free variables' gradients stay linearly independent (a
    candidate whose Cholesky pivot on the free block is below `PIVOT_RTOL` of its diagonal waits until another
    variable enters), so every solve is well posed and the method is finite for a singular M too; so does a candidate
    that leaves again at once with a zero step (rounding in a degenerate problem), which would otherwise enter and
    leave forever. The Cholesky factor of the free block grows by a row when a variable enters and is recomputed when
    one leaves."""
    t = lower.shape[0]
    base = m @ lower
    x = np.zeros(t)
    idx = np.zeros(0, dtype=np.int64)
    factor = np.zeros((t, t))
    waiting = np.zeros(t, dtype=bool)
    for _ in range(max_iter):
        gain = -(base + m @ x)
        slack = 1e3 * t * np.finfo(np.float64).eps * max(1.0, float(np.abs(lower + x).max()))
        candidates = ~waiting & (gain > slack)
        candidates[idx] = False
        if not candidates.any():
            break
        j = int(np.argmax(np.where(candidates, gain, -np.inf)))
        k = idx.size
        col = np.linalg.solve(factor[:k, :k], m[idx, j]) if k else np.zeros(0)
        pivot = m[j, j] - col @ col
        if not pivot > PIVOT_RTOL * m[j, j]:
            waiting[j] = True
            continue
        idx = np.append(idx, j)
        factor[k, :k], factor[k, k] = col, np.sqrt(pivot)
        while True:
            k = idx.size
            chol = factor[:k, :k]
            z_free = np.linalg.solve(chol.T, np.linalg.solve(chol, -base[idx]))
            if (z_free > 0).all():
                x = np.zeros(t)
                x[idx] = z_free
                break
            x_free = x[idx]
            gap = x_free - z_free
            blocked = z_free <= 0
            ratios = np.where(blocked, x_free / np.where(blocked & (gap > 0), gap, 1.0), np.inf)
            ratios[blocked & ~(gap > 0)] = 0.0
            r = int(np.argmin(ratios))
            if idx[r] == j and ratios[r] == 0.0:
                waiting[j] = True
            x_free = x_free + ratios[r] * (z_free - x_free)
            keep = x_free > 0
            keep[r] = False
            x = np.zeros(t)
            x[idx[keep]] = x_free[keep]
            idx = idx[keep]
            factor[: idx.size, : idx.size] = np.linalg.cholesky(m[np.ix_(idx, idx)]) if idx.size else 0.0
        if j in idx:
            waiting[:] = False
    return lower + x


def _positive_null_combination(m: Tensor) -> Tensor | None:
    """w >= 1 with M w = 0 (within rounding) when the gradients positively span their span, else None.

    Stiemke's alternative: either some x has G x >= 0 with G x != 0, or some w > 0 has G^T w = 0. The second holds
    exactly when the problem with u = 1 has a solution with w^T M w = 0 (solved by Lawson and Hanson's method). Then
    the dual cone holds no direction along the gradients, every projection is zero, and v = s w with
    s = max(0, max_t u_t / w_t) is optimal for every row: the case (more tasks than parameters, gradients all around)
    where block pivoting cycles, solved at the cost of one row."""
    t = m.shape[0]
    w = torch.from_numpy(_lawson_hanson(m.numpy(), np.ones(t), 10 * t + 10))
    return w if float(w @ m @ w) <= float(_tolerance(t, w[None])[0]) * float(w.abs().max()) else None


def dual_cone_weights(gram: Tensor, lower: Tensor, max_iter: int = 20) -> Tensor:
    """v [B, T] (or [T] for `lower` [T]) with v^T G the projection of u^T G onto the dual cone of the gradients, for
    each row u of `lower`, from the Gram matrix `gram` = G G^T [T, T].

    Solved in float64 on the CPU, on the problem scaled to max_t M_tt = 1 and max_t |u_t| = 1 (v scales with u, not
    with M). A row with M u >= 0 is its own projection (v = u). A singular M whose gradients positively span their
    span (then every projection is zero) is recognised first and solved in closed form
    (`_positive_null_combination`). The other rows start from free sets guessed by a few projected gradient steps
    and are solved exactly by block principal pivoting, all rows at once; a row it leaves unsolved after `max_iter`
    iterations (`SINGULAR_MAX_ITER` for a singular M; seen only for a singular M, with more tasks than parameters) is
    solved by Lawson and Hanson's method, one row at a time (20 to 40 ms a row at T = 139 here: seconds for UPGrad's
    139 rows, the one slow case). The result has v >= u exactly and M v >= 0, (v - u) (M v) = 0 within about
    1e3 T eps max(|v|, 1) (normalised units). Tasks with zero gradients keep v_t = u_t. A Gram matrix in lower
    precision than float64 first has its eigenvalues at its own rounding set to zero (`LOW_PRECISION_RTOL`, one
    eigendecomposition); the result is returned in the Gram matrix's dtype.
    """
    single = lower.dim() == 1
    rows = lower[None] if single else lower
    t = gram.shape[0]
    if gram.shape != (t, t) or rows.dim() != 2 or rows.shape[1] != t:
        raise ValueError(
            f"expected a Gram matrix [T, T] and bounds [T] or [B, T], got {tuple(gram.shape)} and {tuple(lower.shape)}"
        )
    m = gram.detach().to(device="cpu", dtype=F64)
    m = 0.5 * (m + m.T)
    u = rows.detach().to(device="cpu", dtype=F64)
    out = u.clone()
    m_scale = m.diagonal().max() if t else torch.zeros((), dtype=F64)
    if bool(m_scale > 0):
        m = m / m_scale
        u_scale = u.abs().amax(1, keepdim=True)
        un = u / torch.where(u_scale > 0, u_scale, torch.ones_like(u_scale))
        hard = ((un @ m) < -_tolerance(t, un)[:, None]).any(1).nonzero().squeeze(1)
        if hard.numel():
            low = un[hard]
            if gram.dtype != F64:
                lam, vec = torch.linalg.eigh(m)
                lam = torch.where(lam > LOW_PRECISION_RTOL * t * torch.finfo(gram.dtype).eps * lam[-1], lam, 0.0)
                m = (vec * lam) @ vec.T
            chol, _ = torch.linalg.cholesky_ex(m)
            singular = not bool((chol.diagonal().square() > PIVOT_RTOL * m.diagonal()).all())
            null = _positive_null_combination(m) if singular else None
            if null is not None:
                v = (low / null).amax(1, keepdim=True).clamp_min(0) * null
            else:
                iterations = min(max_iter, SINGULAR_MAX_ITER) if singular else max_iter
                v, solved = _block_pivoting(m, low, _guess_free_sets(m, low), iterations)
                m_np = m.numpy()
                for r in (~solved).nonzero().squeeze(1).tolist():
                    v[r] = torch.from_numpy(_lawson_hanson(m_np, low[r].numpy(), 10 * t + 10))
            out[hard] = torch.maximum(v * u_scale[hard], u[hard])
    out = out.to(device=gram.device, dtype=gram.dtype)
    return out[0] if single else out
