"""The dual-cone projection (UPGrad, DualProj), FairGrad, ConFIG, GradVac and SDMGrad against their papers'
definitions, computed independently on the explicit gradient vectors G [T, P] (the aggregators only see G G^T): a
brute-force active-set enumeration and scipy's NNLS for the projection, scipy's least squares for FairGrad, the
pseudo-inverse of the unit gradients for ConFIG, and the papers' update loops written out for GradVac and SDMGrad."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.optimize import least_squares, nnls
from weighting_support import F64, random_grads, roundtrip, zeros

from polyskill.errors import ConfigError
from polyskill.mtl.weighting.config import ConFIG
from polyskill.mtl.weighting.dual_cone import _lawson_hanson, _positive_null_combination, dual_cone_weights
from polyskill.mtl.weighting.dualproj import DualProj
from polyskill.mtl.weighting.fairgrad import FairGrad, solve_fairgrad
from polyskill.mtl.weighting.gradvac import GradVac
from polyskill.mtl.weighting.mgda import min_norm_weights
from polyskill.mtl.weighting.nash import solve_nash
from polyskill.mtl.weighting.pcgrad import PCGrad, draw_orders
from polyskill.mtl.weighting.sdmgrad import SDMGrad
from polyskill.mtl.weighting.upgrad import UPGrad


# -- the dual-cone projection ---------------------------------------------------------------------------------
def brute_force_box_qp(m: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, float]:
    """min v^T M v s.t. v >= u by enumerating the free sets F: v_A = u_A, M_FF v_F = -M_FA u_A (least squares, so a
    singular block is allowed), kept when consistent and feasible; the best objective wins."""
    t = m.shape[0]
    scale = float(m.diagonal().max()) * float(u.abs().max())
    best, best_value = None, float("inf")
    for size in range(t + 1):
        for free in itertools.combinations(range(t), size):
            f = list(free)
            a = [i for i in range(t) if i not in free]
            v = u.clone()
            if f:
                rhs = -(m[f][:, a] @ u[a]) if a else torch.zeros(size, dtype=F64)
                v[f] = torch.linalg.lstsq(m[f][:, f], rhs[:, None], driver="gelsd").solution[:, 0]
            mv = m @ v
            if f and (mv[f].abs().max() > 1e-9 * scale or (v[f] - u[f]).min() < -1e-12):
                continue
            if a and mv[a].min() < -1e-12 * scale:
                continue
            value = float(v @ m @ v)
            if value < best_value:
                best, best_value = v, value
    assert best is not None
    return best, best_value


def nnls_projection(g: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The projection of u^T G onto {x : G x >= 0} by Moreau's decomposition: u^T G + lambda^T G with
    lambda = argmin_{lambda >= 0} ||G^T (u + lambda)||, scipy's NNLS on the explicit vectors."""
    lam, _ = nnls(g.T.numpy(), -(g.T @ u).numpy(), maxiter=50 * g.shape[0])
    return (u + torch.from_numpy(lam)) @ g


def assert_no_conflict(g: torch.Tensor, weights: torch.Tensor) -> None:
    """G d >= 0 for d = weights^T G, up to rounding: relative to max ||g_t||^2 max |w_t| (d itself may be ~0)."""
    d = weights @ g
    assert float((g @ d).min()) >= -1e-10 * float(g.norm(dim=1).max() ** 2 * weights.abs().max())


def assert_kkt(m: torch.Tensor, u: torch.Tensor, v: torch.Tensor, rtol: float = 1e-10) -> None:
    """v >= u, M v >= 0 and (v - u)_t (M v)_t = 0, relative to max M_tt and max |v|."""
    scale = float(m.diagonal().max()) * max(float(v.abs().max()), float(u.abs().max()))
    mv = m @ v
    assert (v >= u).all()
    assert float(mv.min()) >= -rtol * scale
    assert float(((v - u) * mv).abs().max()) <= rtol * scale * max(1.0, float(v.abs().max()))


@pytest.mark.parametrize("seed", range(12))
def test_dual_cone_weights_match_the_brute_force_solution(seed):
    gen = torch.Generator().manual_seed(seed)
    t = 2 + seed % 4
    singular = seed % 3 == 2
    g = random_grads(gen, t, t - 1 if singular else t + 3)
    m = g @ g.T
    lower = torch.randn(t, t, generator=gen, dtype=F64)
    lower[0] = torch.rand(t, generator=gen, dtype=F64)
    v = dual_cone_weights(m, lower)
    for row in range(t):
        expected, value = brute_force_box_qp(m, lower[row])
        assert_kkt(m, lower[row], v[row])
        assert float(v[row] @ m @ v[row]) == pytest.approx(value, rel=1e-9, abs=1e-12 * float(m.diagonal().max()))
        torch.testing.assert_close(v[row] @ g, expected @ g, rtol=1e-7, atol=1e-9 * float(g.norm(dim=1).max()))
        if not singular:
            torch.testing.assert_close(v[row], expected, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("t,p", [(12, 40), (30, 200), (40, 10), (25, 25)])
def test_dual_cone_projection_agrees_with_scipy_nnls(t, p):
    gen = torch.Generator().manual_seed(t * p)
    g = random_grads(gen, t, p)
    lower = torch.eye(t, dtype=F64) * torch.rand(t, 1, generator=gen, dtype=F64)
    v = dual_cone_weights(g @ g.T, lower)
    for row in range(t):
        assert_kkt(g @ g.T, lower[row], v[row])
        d = v[row] @ g
        expected = nnls_projection(g, lower[row])
        torch.testing.assert_close(d, expected, rtol=0, atol=1e-8 * float(g.norm(dim=1).max()))
        assert_no_conflict(g, v[row])


def test_dual_cone_singular_gram_matrices():
    """Duplicated gradients, a zero gradient and more tasks than dimensions: v may not be unique, d is."""
    gen = torch.Generator().manual_seed(5)
    base = random_grads(gen, 6, 8)
    duplicated = torch.cat([base, base[:3], 2 * base[3:4]])
    with_zero = torch.cat([base, torch.zeros(1, 8, dtype=F64)])
    wide = random_grads(gen, 20, 4)
    positive_span = torch.cat([torch.eye(3, dtype=F64), -torch.ones(1, 3, dtype=F64)])
    for g in (duplicated, with_zero, wide, positive_span):
        t = g.shape[0]
        lower = torch.eye(t, dtype=F64) / t
        v = dual_cone_weights(g @ g.T, lower)
        for row in range(t):
            assert_kkt(g @ g.T, lower[row], v[row])
            torch.testing.assert_close(v[row] @ g, nnls_projection(g, lower[row]), rtol=0, atol=1e-9)
    zero_row = dual_cone_weights(with_zero @ with_zero.T, torch.eye(7, dtype=F64))
    assert torch.equal(zero_row[:, 6], torch.tensor([0.0] * 6 + [1.0], dtype=F64))
    # the four directions positively span R^3: the dual cone is {0}, every projection is zero (the closed form);
    # duplicated gradients do not span positively (block pivoting)
    v = dual_cone_weights(positive_span @ positive_span.T, torch.eye(4, dtype=F64))
    assert float((v @ positive_span).abs().max()) < 1e-12
    w = _positive_null_combination(positive_span @ positive_span.T)
    assert w is not None and (w >= 1).all() and float((w @ positive_span).abs().max()) < 1e-12
    assert _positive_null_combination((duplicated @ duplicated.T) / float((duplicated @ duplicated.T).max())) is None


def test_dual_cone_float32_gram_matrices_are_the_float64_projection_to_their_rounding():
    """A float32 Gram matrix of more gradients than dimensions is indefinite by rounding (its zero eigenvalues come
    out as +-1e-7): the projections still match the exact float64 ones to float32's precision."""
    gen = torch.Generator().manual_seed(7)
    for t, p in ((20, 10), (12, 30), (40, 8)):
        g = random_grads(gen, t, p).float()
        assert float(torch.linalg.eigvalsh((g @ g.T).double())[0]) < 0 or t <= p
        lower = torch.eye(t) / t
        v = dual_cone_weights(g @ g.T, lower)
        assert v.dtype == torch.float32
        g64 = g.double()
        scale = float(g64.norm(dim=1).max())
        for row in range(t):
            expected = nnls_projection(g64, lower[row].double())
            torch.testing.assert_close(v[row].double() @ g64, expected, rtol=0, atol=1e-4 * scale)


@pytest.mark.parametrize("seed", range(6))
def test_lawson_hanson_fallback_matches_the_brute_force_solution(seed):
    """The exact fallback, which the block pivoting rarely leaves anything to, on its own."""
    gen = torch.Generator().manual_seed(100 + seed)
    t = 3 + seed % 3
    g = random_grads(gen, t, 2 if seed % 2 else t + 2)
    m = g @ g.T
    u = torch.randn(t, generator=gen, dtype=F64)
    v = torch.from_numpy(_lawson_hanson(m.numpy(), u.numpy(), 100))
    expected, value = brute_force_box_qp(m, u)
    assert_kkt(m, u, v)
    assert float(v @ m @ v) == pytest.approx(value, rel=1e-9, abs=1e-12)
    torch.testing.assert_close(v @ g, expected @ g, rtol=1e-7, atol=1e-10)


def test_dual_cone_weights_scale_with_the_bounds_not_the_gram_matrix():
    gen = torch.Generator().manual_seed(6)
    g = random_grads(gen, 8, 12)
    lower = torch.rand(3, 8, generator=gen, dtype=F64)
    v = dual_cone_weights(g @ g.T, lower)
    torch.testing.assert_close(dual_cone_weights(1e-6 * (g @ g.T), lower), v, rtol=1e-9, atol=0)
    torch.testing.assert_close(dual_cone_weights(g @ g.T, 7.0 * lower), 7.0 * v, rtol=1e-9, atol=0)
    single = dual_cone_weights(g @ g.T, lower[1])
    assert single.shape == (8,)
    torch.testing.assert_close(single, v[1], rtol=1e-12, atol=0)
    assert torch.equal(dual_cone_weights(torch.zeros(3, 3, dtype=F64), lower[:, :3]), lower[:, :3])
    with pytest.raises(ValueError, match="Gram matrix"):
        dual_cone_weights(g @ g.T, lower[:, :5])


# -- UPGrad and DualProj --------------------------------------------------------------------------------------
@pytest.mark.parametrize("t", [2, 3, 5, 9])
def test_upgrad_is_the_mean_of_the_projected_gradients(t):
    gen = torch.Generator().manual_seed(10 + t)
    for _ in range(4):
        g = random_grads(gen, t, 7)
        agg = UPGrad().aggregate(g, zeros(t))
        expected = torch.stack([nnls_projection(g, torch.eye(t, dtype=F64)[i]) for i in range(t)]).mean(0)
        torch.testing.assert_close(agg.direction, expected, rtol=0, atol=1e-9 * float(g.norm(dim=1).max()))
        assert_no_conflict(g, agg.weights)


def test_upgrad_pref_vector_weights_each_projection():
    gen = torch.Generator().manual_seed(11)
    g = random_grads(gen, 4, 6)
    pref = [0.5, 2.0, 0.0, 1.0]
    direction = UPGrad(pref_vector=pref).aggregate(g, zeros(4)).direction
    expected = sum(nnls_projection(g, p * torch.eye(4, dtype=F64)[i]) for i, p in enumerate(pref))
    torch.testing.assert_close(direction, expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("t", [2, 4, 7])
def test_dualproj_projects_the_mean_gradient(t):
    gen = torch.Generator().manual_seed(20 + t)
    for _ in range(4):
        g = random_grads(gen, t, 6)
        agg = DualProj().aggregate(g, zeros(t))
        expected = nnls_projection(g, torch.full((t,), 1.0 / t, dtype=F64))
        torch.testing.assert_close(agg.direction, expected, rtol=0, atol=1e-9 * float(g.norm(dim=1).max()))
        assert (agg.weights >= 1.0 / t).all()
        assert_no_conflict(g, agg.weights)


def test_upgrad_and_dualproj_leave_non_conflicting_gradients_alone():
    gen = torch.Generator().manual_seed(12)
    g = torch.rand(5, 8, generator=gen, dtype=F64)  # non-negative entries: no two gradients conflict
    for agg in (UPGrad(), DualProj()):
        assert torch.equal(agg.weights(g @ g.T, zeros(5)), torch.full((5,), 0.2, dtype=F64))
    pref = [1.0, 2.0, 3.0, 4.0, 5.0]
    for agg in (UPGrad(pref_vector=pref), DualProj(pref_vector=pref)):
        assert torch.equal(agg.weights(g @ g.T, zeros(5)), torch.tensor(pref, dtype=F64))


def test_upgrad_on_139_tasks_is_exact():
    """School's task count, the batched solver's full path (conflicts everywhere), against the KKT conditions."""
    gen = torch.Generator().manual_seed(13)
    g = torch.randn(139, 300, generator=gen, dtype=F64)
    m = g @ g.T
    lower = torch.eye(139, dtype=F64) / 139
    v = dual_cone_weights(m, lower)
    for row in range(0, 139, 10):
        assert_kkt(m, lower[row], v[row])
    torch.testing.assert_close(UPGrad().weights(m, zeros(139)), v.sum(0), rtol=0, atol=0)


@pytest.mark.parametrize("cls", [UPGrad, DualProj])
@pytest.mark.parametrize("pref", [[], [1.0, -1.0], [0.0, 0.0], "ab", [1.0, float("nan")], [True, 1.0]])
def test_dual_cone_aggregators_reject_bad_pref_vector(cls, pref):
    with pytest.raises(ConfigError, match="pref_vector"):
        cls(pref_vector=pref)


@pytest.mark.parametrize("cls", [UPGrad, DualProj])
def test_dual_cone_aggregators_pref_vector_must_match_the_tasks(cls):
    with pytest.raises(ConfigError, match="3 tasks"):
        cls(pref_vector=[1.0, 2.0]).weights(torch.eye(3, dtype=F64), zeros(3))


# -- FairGrad -------------------------------------------------------------------------------------------------
def fairgrad_residual(m: torch.Tensor, w: torch.Tensor, alpha: float) -> float:
    """max_t |w_t^(1/alpha) (M w)_t - 1|: the paper's condition (M w)_t = w_t^(-1/alpha), relative."""
    return float((w.pow(1 / alpha) * (m @ w) - 1).abs().max())


@pytest.mark.parametrize("alpha", [0.2, 0.5, 1.0, 2.0, 5.0, 20.0])
def test_fairgrad_weights_satisfy_the_condition_and_match_scipy_least_squares(alpha):
    """Against LibMTL's call (scipy's least_squares from 1/T, tolerances tightened) wherever that converges: for large
    alpha some weights fall to ~1e-20 and scipy stops at a residual of ~0.15 (seen for alpha = 20, T = 5 and 8)."""
    gen = torch.Generator().manual_seed(int(10 * alpha))
    compared = 0
    for t in (2, 3, 5, 8):
        g = random_grads(gen, t, t + 4)
        m = g @ g.T
        w = solve_fairgrad(m, alpha, tol=1e-13, eps=0.0)
        assert (w > 0).all()
        assert fairgrad_residual(m, w, alpha) <= 1e-11
        a = m.numpy()
        reference = least_squares(
            lambda x, a=a: a @ x - np.power(1 / x, 1 / alpha),
            np.ones(t) / t,
            bounds=(0, np.inf),
            xtol=1e-15,
            ftol=1e-15,
            gtol=1e-15,
            max_nfev=500,
        ).x
        if fairgrad_residual(m, torch.from_numpy(reference), alpha) <= 1e-10:
            torch.testing.assert_close(w, torch.from_numpy(reference), rtol=1e-7, atol=0)
            compared += 1
        torch.testing.assert_close(FairGrad(alpha=alpha).weights(m, zeros(t)), w, rtol=1e-5, atol=0)  # eps, tol
    assert compared >= 2


def test_fairgrad_with_alpha_one_is_nash_mtl():
    gen = torch.Generator().manual_seed(30)
    for t in (2, 4, 7):
        g = random_grads(gen, t, t + 2)
        m = g @ g.T
        torch.testing.assert_close(
            solve_fairgrad(m, 1.0, tol=1e-13, eps=0.0),
            solve_nash(m, max_iter=50, tol=1e-13, eps=0.0),
            rtol=1e-9,
            atol=0,
        )


def test_fairgrad_closed_forms_and_scaling():
    """Orthogonal gradients: w_t = ||g_t||^(-2 alpha / (alpha + 1)); M -> c M gives w -> c^(-alpha / (alpha + 1)) w."""
    gen = torch.Generator().manual_seed(31)
    q, _ = torch.linalg.qr(torch.randn(6, 4, generator=gen, dtype=F64))
    norms = torch.tensor([0.1, 1.0, 3.0, 20.0], dtype=F64)
    g = norms[:, None] * q.T
    for alpha in (0.5, 1.0, 3.0):
        w = FairGrad(alpha=alpha, tol=1e-13, eps=0.0).weights(g @ g.T, zeros(4))
        torch.testing.assert_close(w, norms.pow(-2 * alpha / (alpha + 1)), rtol=1e-10, atol=0)
    g = random_grads(gen, 5, 7)
    for alpha in (0.5, 2.0):
        w = solve_fairgrad(g @ g.T, alpha, tol=1e-13, eps=0.0)
        for c in (1e-4, 30.0):
            scaled = solve_fairgrad(c * (g @ g.T), alpha, tol=1e-13, eps=0.0)
            torch.testing.assert_close(scaled, w * c ** (-alpha / (alpha + 1)), rtol=1e-9, atol=0)


def test_fairgrad_degenerate_gradients_stay_finite():
    with_zero = torch.tensor([[1.0, 2.0, 0.0], [0.0, 0.0, 0.0], [0.5, -1.0, 1.0]], dtype=F64)
    w = FairGrad(alpha=2.0).weights(with_zero @ with_zero.T, zeros(3))
    assert w[1] == 0 and (w[[0, 2]] > 0).all()
    live = with_zero[[0, 2]]
    assert fairgrad_residual(live @ live.T, w[[0, 2]], 2.0) <= 1e-8  # the ridge eps
    opposite = torch.tensor([[1.0, 2.0], [-1.0, -2.0]], dtype=F64)
    for g in (opposite, torch.zeros(2, 2, dtype=F64)):
        for alpha in (0.5, 1.0, 4.0):
            assert torch.isfinite(FairGrad(alpha=alpha).weights(g @ g.T, zeros(2))).all()
    g32 = torch.randn(3, 5, generator=torch.Generator().manual_seed(32))
    w32 = FairGrad().weights(g32 @ g32.T, torch.zeros(3))
    assert w32.dtype == torch.float32 and torch.isfinite(w32).all()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"alpha": 0.0},
        {"alpha": -1.0},
        {"alpha": True},
        {"alpha": float("inf")},
        {"tol": 0.0},
        {"eps": -1e-8},
        {"max_iter": 0},
        {"max_iter": 2.0},
    ],
)
def test_fairgrad_rejects_bad_options(kwargs):
    with pytest.raises(ConfigError, match="fairgrad"):
        FairGrad(**kwargs)


# -- ConFIG ---------------------------------------------------------------------------------------------------
def explicit_config(g: torch.Tensor) -> torch.Tensor:
    """Eq. 2 on the vectors: g_u = pinv(U) 1 with the unit gradients as rows of U, d = (sum_i g_i . g_v) g_v."""
    norms = g.norm(dim=1, keepdim=True)
    units = torch.where(norms > 0, g / torch.where(norms > 0, norms, torch.ones_like(norms)), torch.zeros_like(g))
    g_u = torch.linalg.pinv(units) @ torch.ones(g.shape[0], dtype=F64)
    g_v = g_u / g_u.norm()
    return (g @ g_v).sum() * g_v


@pytest.mark.parametrize("t,p", [(2, 5), (3, 3), (5, 12), (8, 4)])
def test_config_matches_the_pseudo_inverse_of_the_unit_gradients(t, p):
    gen = torch.Generator().manual_seed(40 + t * p)
    for _ in range(5):
        g = random_grads(gen, t, p)
        direction = ConFIG().aggregate(g, zeros(t)).direction
        torch.testing.assert_close(direction, explicit_config(g), rtol=1e-8, atol=1e-10 * float(g.norm(dim=1).max()))
        if t <= p:  # linearly independent: the same positive cosine with every gradient
            cosines = (g @ direction) / (g.norm(dim=1) * direction.norm())
            assert float(cosines.min()) > 0
            torch.testing.assert_close(cosines, cosines.mean().expand(t), rtol=1e-9, atol=0)


def test_config_degenerate_gradients():
    gen = torch.Generator().manual_seed(41)
    base = random_grads(gen, 3, 6)
    duplicated = torch.cat([base, 2.5 * base[1:2]])
    direction = ConFIG().aggregate(duplicated, zeros(4)).direction
    torch.testing.assert_close(direction, explicit_config(duplicated), rtol=1e-7, atol=1e-9)
    with_zero = torch.cat([base[:1], torch.zeros(1, 6, dtype=F64), base[1:]])
    agg = ConFIG().aggregate(with_zero, zeros(4))
    assert agg.weights[1] == 0
    torch.testing.assert_close(agg.direction, ConFIG().aggregate(base, zeros(3)).direction, rtol=1e-10, atol=0)
    assert torch.equal(ConFIG().weights(torch.zeros(3, 3, dtype=F64), zeros(3)), zeros(3))
    opposite = torch.tensor([[1.0, 2.0], [-1.0, -2.0]], dtype=F64)
    assert torch.isfinite(ConFIG().weights(opposite @ opposite.T, zeros(2))).all()


# -- GradVac --------------------------------------------------------------------------------------------------
def explicit_gradvac(g: torch.Tensor, order: torch.Tensor, target: torch.Tensor, beta: float) -> torch.Tensor:
    """The paper's loop on the vectors: each g_i' against the original g_j in the given order, towards the target
    similarity, then the moving average of the similarity seen. Updates `target`; returns sum_i g_i'."""
    total = torch.zeros(g.shape[1], dtype=F64)
    for i in range(g.shape[0]):
        gi = g[i].clone()
        for j in order[i].tolist():
            phi = float(gi @ g[j] / (gi.norm() * g[j].norm()))
            goal = float(target[i, j])
            if phi < goal:
                gi = (
                    gi
                    + gi.norm()
                    * (goal * (1 - phi**2) ** 0.5 - phi * (1 - goal**2) ** 0.5)
                    / (g[j].norm() * (1 - goal**2) ** 0.5)
                    * g[j]
                )
            target[i, j] = (1 - beta) * goal + beta * phi
        total += gi
    return total


@pytest.mark.parametrize("t", [2, 3, 5])
def test_gradvac_matches_the_paper_loop_over_several_steps(t):
    gen = torch.Generator().manual_seed(50 + t)
    agg = GradVac(num_tasks=t, beta=0.3, seed=4)
    twin = torch.Generator().manual_seed(4)
    target = torch.zeros(t, t, dtype=F64)
    modified = 0
    for _ in range(8):
        g = random_grads(gen, t, 6)
        before = target.clone()
        expected = explicit_gradvac(g, draw_orders(t, twin), target, 0.3)
        direction = agg.aggregate(g, zeros(t)).direction
        torch.testing.assert_close(direction, expected, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(agg.target, target, rtol=1e-12, atol=1e-15)
        modified += int(not torch.allclose(expected, g.sum(0)))
        assert not torch.equal(before, target)
    assert modified >= 3


def test_gradvac_reaches_the_target_similarity_and_beta_zero_is_pcgrad():
    gen = torch.Generator().manual_seed(51)
    g = torch.tensor([[1.0, 0.2, 0.0], [0.3, 1.0, 0.5]], dtype=F64)
    agg = GradVac(num_tasks=2, beta=0.5)
    agg.target.fill_(0.8)
    direction = agg.aggregate(g, zeros(2)).direction
    phi = float(g[0] @ g[1] / (g[0].norm() * g[1].norm()))
    assert phi < 0.8
    vaccinated = [
        g[i] + g[i].norm() * (0.8 * (1 - phi**2) ** 0.5 - phi * 0.6) / (g[1 - i].norm() * 0.6) * g[1 - i]
        for i in (0, 1)
    ]
    for i in (0, 1):
        assert float(vaccinated[i] @ g[1 - i] / (vaccinated[i].norm() * g[1 - i].norm())) == pytest.approx(
            0.8, abs=1e-12
        )
    torch.testing.assert_close(direction, vaccinated[0] + vaccinated[1], rtol=1e-12, atol=1e-12)
    assert float(agg.target[0, 1]) == pytest.approx(0.5 * 0.8 + 0.5 * phi, abs=1e-12)
    vaccine, pcgrad = GradVac(num_tasks=5, beta=0.0, seed=3), PCGrad(seed=3)
    for _ in range(4):
        g = random_grads(gen, 5, 7)
        torch.testing.assert_close(
            vaccine.weights(g @ g.T, zeros(5)), pcgrad.weights(g @ g.T, zeros(5)), rtol=1e-10, atol=1e-12
        )


def test_gradvac_resumes_bit_identically():
    gen = torch.Generator().manual_seed(52)
    grams = [x @ x.T for x in (random_grads(gen, 4, 6) for _ in range(7))]
    agg = GradVac(num_tasks=4, seed=9)
    for gram in grams[:3]:
        agg.weights(gram, zeros(4))
    state = roundtrip(agg)
    assert state["target"].dtype == F64 and state["target"].abs().sum() > 0
    resumed = GradVac(num_tasks=4, seed=1)
    resumed.load_state_dict(state)
    assert resumed.seed == 9
    for gram in grams[3:]:
        assert torch.equal(agg.weights(gram, zeros(4)), resumed.weights(gram, zeros(4)))
    assert torch.equal(agg.target, resumed.target)


def test_gradvac_degenerate_gradients_and_task_count():
    with_zero = torch.tensor([[1.0, 2.0, 0.0], [0.0, 0.0, 0.0], [-1.0, 1.0, 0.5]], dtype=F64)
    agg = GradVac(num_tasks=3, beta=1.0)
    for _ in range(3):  # beta = 1 sets targets to the last similarity, +-1 for parallel gradients
        assert torch.isfinite(agg.weights(with_zero @ with_zero.T, zeros(3))).all()
    parallel = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]], dtype=F64)
    for _ in range(3):
        assert torch.isfinite(agg.weights(parallel @ parallel.T, zeros(3))).all()
    with pytest.raises(ValueError, match="3 tasks"):
        agg.weights(torch.eye(4, dtype=F64), zeros(4))


@pytest.mark.parametrize(
    "kwargs", [{"num_tasks": 0}, {"beta": 1.5}, {"beta": -0.1}, {"beta": True}, {"seed": -1}, {"seed": 1.0}]
)
def test_gradvac_rejects_bad_options(kwargs):
    with pytest.raises(ConfigError, match="gradvac"):
        GradVac(**{"num_tasks": 3, **kwargs})


# -- SDMGrad --------------------------------------------------------------------------------------------------
def simplex_projection(v: np.ndarray) -> np.ndarray:
    """The official code's Euclidean projection onto the simplex (sort, threshold)."""
    u = np.sort(v)[::-1]
    css = np.cumsum(u)
    rho = np.nonzero(u * np.arange(1, v.size + 1) > (css - 1))[0][-1]
    return np.clip(v - (css[rho] - 1) / (rho + 1), 0, None)


def explicit_sdmgrad_step(g: torch.Tensor, w: torch.Tensor, lamda: float, niter: int) -> torch.Tensor:
    """One step of the official code on the vectors (its three batches being the same one here, and without its
    1e-8 in the scale): normalised G G^T, torch.optim.SGD(lr=5, momentum=0.5) on w with the gradient
    G G^T w + lamda G G^T 1 / T, projected after each iteration; w is updated in place, the update returned."""
    gg = g @ g.T
    gg = gg / gg.diagonal().sqrt().mean() ** 2
    pull = gg.mean(1)
    w.requires_grad_(True)
    optimizer = torch.optim.SGD([w], lr=5, momentum=0.5)
    for _ in range(niter):
        optimizer.zero_grad()
        w.grad = gg @ w.detach() + lamda * pull
        optimizer.step()
        w.data.copy_(torch.from_numpy(simplex_projection(w.data.numpy())))
    w.requires_grad_(False)
    return (w @ g + lamda * g.mean(0)) / (1 + lamda)


@pytest.mark.parametrize("t,lamda,niter", [(2, 0.3, 20), (3, 0.3, 20), (5, 0.0, 7), (4, 2.0, 3)])
def test_sdmgrad_matches_the_official_loop_over_several_steps(t, lamda, niter):
    gen = torch.Generator().manual_seed(60 + t)
    agg = SDMGrad(num_tasks=t, lamda=lamda, niter=niter)
    w = torch.full((t,), 1.0 / t, dtype=F64)
    for _ in range(5):
        g = random_grads(gen, t, 6)
        expected = explicit_sdmgrad_step(g, w, lamda, niter)
        out = agg.aggregate(g, zeros(t))
        torch.testing.assert_close(out.direction, expected.detach(), rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(agg.w, w.detach(), rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(out.weights, (w.detach() + lamda / t) / (1 + lamda), rtol=1e-10, atol=1e-12)


def test_sdmgrad_limits_and_resume():
    """A large lamda gives the mean gradient; lamda = 0 MGDA's min-norm point when that is a vertex of the simplex
    (with LR = 5 the heavy-ball iteration is unstable on the normalised Gram matrix, lambda_max >= 1 > 2 (1 +
    MOMENTUM) / LR, so elsewhere w cycles, as the official code's does); resuming is exact."""
    gen = torch.Generator().manual_seed(61)
    g = random_grads(gen, 4, 8)
    heavy = SDMGrad(num_tasks=4, lamda=1e6).weights(g @ g.T, zeros(4))
    torch.testing.assert_close(heavy, torch.full((4,), 0.25, dtype=F64), rtol=0, atol=1e-6)
    g = torch.tensor([[1.0, 0.0, 0.0], [2.0, 1.0, 0.0], [1.5, -0.5, 2.0]], dtype=F64)  # g_1 . g_t >= ||g_1||^2
    assert torch.equal(min_norm_weights(g @ g.T), torch.tensor([1.0, 0.0, 0.0], dtype=F64))
    torch.testing.assert_close(SDMGrad(num_tasks=3, lamda=0.0).weights(g @ g.T, zeros(3)), min_norm_weights(g @ g.T))

    grams = [x @ x.T for x in (random_grads(gen, 3, 5) for _ in range(6))]
    agg = SDMGrad(num_tasks=3)
    for gram in grams[:2]:
        agg.weights(gram, zeros(3))
    resumed = SDMGrad(num_tasks=3)
    resumed.load_state_dict(roundtrip(agg))
    assert not torch.equal(resumed.w, torch.full((3,), 1 / 3, dtype=F64))
    for gram in grams[2:]:
        assert torch.equal(agg.weights(gram, zeros(3)), resumed.weights(gram, zeros(3)))


def test_sdmgrad_zero_gradients_and_task_count():
    agg = SDMGrad(num_tasks=3, lamda=0.5)
    w = agg.weights(torch.zeros(3, 3, dtype=F64), zeros(3))
    torch.testing.assert_close(w, torch.full((3,), 1 / 3, dtype=F64))
    with pytest.raises(ValueError, match="3 tasks"):
        agg.weights(torch.eye(2, dtype=F64), zeros(2))


@pytest.mark.parametrize(
    "kwargs",
    [{"num_tasks": 0}, {"lamda": -0.1}, {"lamda": float("nan")}, {"lamda": True}, {"niter": 0}, {"niter": 2.0}],
)
def test_sdmgrad_rejects_bad_options(kwargs):
    with pytest.raises(ConfigError, match="sdmgrad"):
        SDMGrad(**{"num_tasks": 3, **kwargs})
