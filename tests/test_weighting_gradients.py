"""PCGrad, CAGrad, IMTL-G, Nash-MTL and Aligned-MTL against their papers' definitions, computed independently
on the explicit gradient vectors G [T, P] (the aggregators only ever see G G^T)."""

from __future__ import annotations

import math

import pytest
import torch
from weighting_support import F64, random_grads, roundtrip, zeros

from polyskill.errors import ConfigError
from polyskill.mtl.weighting.aligned import AlignedMTL, alignment_matrix
from polyskill.mtl.weighting.cagrad import CAGrad, solve_cagrad
from polyskill.mtl.weighting.imtl import IMTLG
from polyskill.mtl.weighting.nash import NashMTL
from polyskill.mtl.weighting.pcgrad import PCGrad


# -- PCGrad ---------------------------------------------------------------------------------------------------
def explicit_pcgrad(g: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """The paper's Algorithm 1 on the vectors: project g_i on the normal plane of each conflicting original g_j."""
    out = []
    for i in range(g.shape[0]):
        gi = g[i].clone()
        for j in order[i].tolist():
            dot = gi @ g[j]
            if dot < 0:
                gi = gi - dot / (g[j] @ g[j]) * g[j]
        out.append(gi)
    return torch.stack(out)


def test_pcgrad_two_tasks_removes_every_conflict():
    gen = torch.Generator().manual_seed(0)
    conflicts = 0
    for _ in range(200):
        g = random_grads(gen, 2, int(torch.randint(2, 8, (1,), generator=gen)))
        conflicts += int(g[0] @ g[1] < 0)
        projected = explicit_pcgrad(g, torch.tensor([[1], [0]]))
        scale = g.norm(dim=1).prod()
        assert projected[0] @ g[1] >= -1e-12 * scale and projected[1] @ g[0] >= -1e-12 * scale
        direction = PCGrad().aggregate(g, zeros(2)).direction
        torch.testing.assert_close(direction, projected.sum(0), rtol=1e-10, atol=1e-10)
    assert 40 < conflicts < 160


@pytest.mark.parametrize("t", [3, 4, 5])
def test_pcgrad_matches_the_explicit_algorithm_in_the_same_order(t):
    gen = torch.Generator().manual_seed(t)
    agg, twin = PCGrad(seed=7), PCGrad(seed=7)
    for _ in range(30):
        g = random_grads(gen, t, 6)
        order = twin.draw_order(t)
        assert sorted(order[0].tolist()) == list(range(1, t))
        assert all(sorted([*order[i].tolist(), i]) == list(range(t)) for i in range(t))
        projected = explicit_pcgrad(g, order)
        direction = agg.aggregate(g, zeros(t)).direction
        torch.testing.assert_close(direction, projected.sum(0), rtol=1e-10, atol=1e-10)
        for i in range(t):
            last = int(order[i, -1])
            assert projected[i] @ g[last] >= -1e-9 * g[i].norm() * g[last].norm()


def test_pcgrad_order_matters_and_comes_from_the_seed():
    orders = [PCGrad(seed=s).draw_order(5) for s in (0, 0, 1)]
    assert torch.equal(orders[0], orders[1]) and not torch.equal(orders[0], orders[2])


def test_pcgrad_leaves_non_conflicting_gradients_alone():
    gen = torch.Generator().manual_seed(1)
    g = torch.rand(4, 7, generator=gen, dtype=F64)
    agg = PCGrad()
    assert torch.equal(agg.weights(g @ g.T, zeros(4)), torch.ones(4, dtype=F64))
    torch.testing.assert_close(agg.aggregate(g, zeros(4)).direction, g.sum(0))


def test_pcgrad_zero_gradient_and_resume():
    g = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [-1.0, 1.0, 0.0], [0.5, -2.0, 1.0]], dtype=F64)
    w = PCGrad().weights(g @ g.T, zeros(4))
    assert torch.isfinite(w).all()

    gen = torch.Generator().manual_seed(2)
    grams = [(x @ x.T) for x in (random_grads(gen, 5, 6) for _ in range(6))]
    agg = PCGrad(seed=3)
    for gram in grams[:2]:
        agg.weights(gram, zeros(5))
    resumed = PCGrad(seed=11)
    resumed.load_state_dict(roundtrip(agg))
    assert resumed.seed == 3
    for gram in grams[2:]:
        assert torch.equal(agg.weights(gram, zeros(5)), resumed.weights(gram, zeros(5)))


@pytest.mark.parametrize("seed", [-1, 1.5, True, "0"])
def test_pcgrad_rejects_bad_seed(seed):
    with pytest.raises(ConfigError, match="seed"):
        PCGrad(seed=seed)


# -- CAGrad ---------------------------------------------------------------------------------------------------
def cagrad_f(w: torch.Tensor, g: torch.Tensor, c: float) -> torch.Tensor:
    """F(w) = g_w . g0 + c ||g0|| ||g_w|| for rows of w, on the vectors."""
    g0 = g.mean(0)
    gw = w @ g
    return gw @ g0 + c * g0.norm() * gw.norm(dim=-1)


def simplex_grid(t: int, n: int) -> torch.Tensor:
    if t == 2:
        a = torch.linspace(0, 1, n + 1, dtype=F64)
        return torch.stack([a, 1 - a], 1)
    i, j = torch.meshgrid(torch.arange(n + 1), torch.arange(n + 1), indexing="ij")
    keep = i + j <= n
    a, b = i[keep].to(F64) / n, j[keep].to(F64) / n
    return torch.stack([a, b, 1 - a - b], 1)


def explicit_cagrad_direction(g: torch.Tensor, w: torch.Tensor, c: float) -> torch.Tensor:
    g0, gw = g.mean(0), w @ g
    return g0 + c * g0.norm() / gw.norm() * gw


@pytest.mark.parametrize("t,n", [(2, 20000), (3, 400)])
def test_cagrad_weights_minimise_the_dual_objective(t, n):
    gen = torch.Generator().manual_seed(10 + t)
    grid = simplex_grid(t, n)
    for c in (0.2, 0.5, 0.9):
        for _ in range(6):
            g = random_grads(gen, t, 5)
            w = solve_cagrad(g @ g.T, c)
            assert w.min() >= 0 and abs(float(w.sum()) - 1) < 1e-12
            best = cagrad_f(grid, g, c).min()
            scale = float((g * g).sum(1).mean())
            assert float(cagrad_f(w, g, c)) <= float(best) + 1e-9 * scale
            direction = CAGrad(c=c, rescale=0).aggregate(g, zeros(t)).direction
            torch.testing.assert_close(direction, explicit_cagrad_direction(g, w, c), rtol=1e-7, atol=1e-9)


def test_cagrad_weights_of_a_float32_gram_are_those_of_float64():
    """The solver compares values of F, which near the minimum move with the square of the distance to it: in
    float32 that placed w only to ~3e-4 (1.5e-3 seen on these cases); it now iterates in float64."""
    gen = torch.Generator().manual_seed(60)
    worst = 0.0
    for _ in range(30):
        g = random_grads(gen, int(torch.randint(2, 6, (1,), generator=gen)), 8)
        gram = g @ g.T
        w32 = solve_cagrad(gram.float(), 0.5)
        assert w32.dtype == torch.float32
        worst = max(worst, float((w32.double() - solve_cagrad(gram, 0.5)).abs().max()))
    assert worst < 1e-5, worst  # observed 5e-7: the float32 rounding of the Gram matrix


def test_cagrad_direction_is_the_best_worst_case_in_the_ball():
    """d maximises min_t g_t . d' over the ball ||d' - g0|| <= c ||g0||: sampled points, some near d's."""
    gen = torch.Generator().manual_seed(3)
    for t in (2, 3, 5):
        for c in (0.3, 0.5, 0.8):
            g = random_grads(gen, t, 6)
            d = CAGrad(c=c, rescale=0).aggregate(g, zeros(t)).direction
            g0 = g.mean(0)
            radius = c * g0.norm()
            assert (d - g0).norm() <= radius * (1 + 1e-9)
            u = torch.randn(4000, 6, generator=gen, dtype=F64)
            u = u / u.norm(dim=1, keepdim=True) * torch.rand(4000, 1, generator=gen, dtype=F64).pow(1 / 6)
            u[:1000] /= u[:1000].norm(dim=1, keepdim=True)
            near = (d - g0) / radius + u[1000:2000] * torch.logspace(-4, -1, 1000, dtype=F64)[:, None]
            u[1000:2000] = near / near.norm(dim=1, keepdim=True)
            others = g0 + radius * u
            worst_d = (g @ d).min()
            worst_others = (others @ g.T).min(1).values
            assert worst_d >= worst_others.max() - 1e-9 * g0.norm() * g.norm(dim=1).max()
            assert worst_d >= (g @ g0).min() - 1e-12


def test_cagrad_c_zero_is_the_average_and_rescale_divides():
    gen = torch.Generator().manual_seed(4)
    g = random_grads(gen, 4, 6)
    for rescale in (0, 1, 2):
        agg = CAGrad(c=0.0, rescale=rescale)
        assert torch.equal(agg.weights(g @ g.T, zeros(4)), torch.full((4,), 0.25, dtype=F64))
        torch.testing.assert_close(agg.aggregate(g, zeros(4)).direction, g.mean(0))
    raw = CAGrad(c=0.5, rescale=0).aggregate(g, zeros(4)).direction
    torch.testing.assert_close(CAGrad(c=0.5, rescale=1).aggregate(g, zeros(4)).direction, raw / 1.25)
    torch.testing.assert_close(CAGrad(c=0.5, rescale=2).aggregate(g, zeros(4)).direction, raw / 1.5)


def test_cagrad_degenerate_gradients_stay_finite():
    opposite = torch.tensor([[1.0, 2.0], [-1.0, -2.0]], dtype=F64)
    with_zero = torch.tensor([[1.0, 2.0, 0.0], [0.0, 0.0, 0.0], [0.5, -1.0, 1.0]], dtype=F64)
    for g in (opposite, with_zero, torch.zeros(3, 4, dtype=F64)):
        w = CAGrad().weights(g @ g.T, zeros(g.shape[0]))
        assert torch.isfinite(w).all()
    torch.testing.assert_close(CAGrad(rescale=0).aggregate(opposite, zeros(2)).direction, torch.zeros(2, dtype=F64))


@pytest.mark.parametrize(
    "kwargs", [{"c": 1.0}, {"c": -0.1}, {"c": "0.5"}, {"rescale": 3}, {"rescale": True}, {"max_iter": 0}, {"tol": 0.0}]
)
def test_cagrad_rejects_bad_options(kwargs):
    with pytest.raises(ConfigError, match="cagrad"):
        CAGrad(**kwargs)


# -- IMTL-G ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("t", [2, 3, 4, 6])
def test_imtl_direction_has_equal_projections_on_unit_gradients(t):
    gen = torch.Generator().manual_seed(20 + t)
    for _ in range(10):
        g = random_grads(gen, t, 8)
        agg = IMTLG().aggregate(g, zeros(t))
        u = g / g.norm(dim=1, keepdim=True)
        projections = u @ agg.direction
        torch.testing.assert_close(projections, projections.mean().expand(t), rtol=1e-9, atol=1e-12)
        assert abs(float(agg.weights.sum()) - 1) < 1e-12
        d, uu = g[0] - g[1:], u[0] - u[1:]
        paper = torch.linalg.solve((d @ uu.T).T, uu @ g[0])
        torch.testing.assert_close(agg.weights[1:], paper, rtol=1e-8, atol=1e-10)


def test_imtl_single_task_and_degenerate_cases():
    g1 = torch.tensor([[3.0, -1.0]], dtype=F64)
    assert torch.equal(IMTLG().weights(g1 @ g1.T, zeros(1)), torch.ones(1, dtype=F64))

    gen = torch.Generator().manual_seed(5)
    base = random_grads(gen, 3, 5)
    with_zero = torch.cat([base[:1], torch.zeros(1, 5, dtype=F64), base[1:]])
    for g, alive in ((torch.cat([base, base[1:2]]), [0, 1, 2, 3]), (with_zero, [0, 2, 3])):
        agg = IMTLG().aggregate(g, zeros(4))
        assert torch.isfinite(agg.weights).all() and abs(float(agg.weights.sum()) - 1) < 1e-10
        u = g[alive] / g[alive].norm(dim=1, keepdim=True)
        projections = u @ agg.direction
        torch.testing.assert_close(projections, projections.mean().expand(len(alive)), rtol=1e-8, atol=1e-10)
    assert float(IMTLG().weights(with_zero @ with_zero.T, zeros(4))[1]) == 0.0
    assert torch.isfinite(IMTLG().weights(torch.zeros(3, 3, dtype=F64), zeros(3))).all()


# -- Nash-MTL -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("t", [2, 3, 4, 6])
def test_nash_weights_satisfy_the_bargaining_condition(t):
    gen = torch.Generator().manual_seed(30 + t)
    for _ in range(10):
        g = random_grads(gen, t, t + 3)
        agg = NashMTL(max_norm=0).aggregate(g, zeros(t))
        alpha = agg.weights
        assert (alpha > 0).all()
        torch.testing.assert_close(alpha * (g @ agg.direction), torch.ones(t, dtype=F64), rtol=0, atol=1e-6)


def test_nash_orthogonal_gradients_have_the_closed_form_and_scale_inversely():
    gen = torch.Generator().manual_seed(6)
    q, _ = torch.linalg.qr(torch.randn(7, 4, generator=gen, dtype=F64))
    norms = torch.tensor([0.1, 1.0, 3.0, 20.0], dtype=F64)
    g = norms[:, None] * q.T
    agg = NashMTL(max_norm=0).aggregate(g, zeros(4))
    torch.testing.assert_close(agg.weights, 1 / norms, rtol=1e-8, atol=0)
    torch.testing.assert_close((g / norms[:, None]) @ agg.direction, torch.ones(4, dtype=F64))

    g = random_grads(gen, 4, 6)
    alpha = NashMTL(max_norm=0).aggregate(g, zeros(4)).weights
    for s in (1e-3, 0.5, 40.0):
        torch.testing.assert_close(NashMTL(max_norm=0).aggregate(s * g, zeros(4)).weights, alpha / s, rtol=1e-7, atol=0)


def test_nash_reuses_weights_and_resumes_identically():
    gen = torch.Generator().manual_seed(7)
    grams = [x @ x.T for x in (random_grads(gen, 3, 5) for _ in range(7))]
    agg = NashMTL(update_weights_every=3, max_norm=0)
    first = agg.weights(grams[0], zeros(3))
    assert torch.equal(agg.weights(grams[1], zeros(3)), first)
    assert torch.equal(agg.weights(grams[2], zeros(3)), first)
    fresh = agg.weights(grams[3], zeros(3))
    torch.testing.assert_close(fresh, NashMTL(max_norm=0).weights(grams[3], zeros(3)), rtol=1e-8, atol=0)
    resumed = NashMTL(update_weights_every=3, max_norm=0)
    resumed.load_state_dict(roundtrip(agg))
    for gram in grams[4:]:
        assert torch.equal(agg.weights(gram, zeros(3)), resumed.weights(gram, zeros(3)))


def test_nash_degenerate_gradients_and_max_norm():
    with_zero = torch.tensor([[1.0, 2.0, 0.0], [0.0, 0.0, 0.0], [0.5, -1.0, 1.0]], dtype=F64)
    agg = NashMTL(max_norm=0).aggregate(with_zero, zeros(3))
    assert agg.weights[1] == 0 and (agg.weights[[0, 2]] > 0).all()
    live = with_zero[[0, 2]]
    torch.testing.assert_close(
        agg.weights[[0, 2]] * (live @ agg.direction), torch.ones(2, dtype=F64), rtol=0, atol=1e-6
    )
    opposite = torch.tensor([[1.0, 2.0], [-1.0, -2.0]], dtype=F64)
    for g in (opposite, torch.zeros(2, 2, dtype=F64)):
        assert torch.isfinite(NashMTL().weights(g @ g.T, zeros(2))).all()

    g = torch.tensor([[0.01, 0.0], [0.0, 0.02]], dtype=F64)
    free = NashMTL(max_norm=0).aggregate(g, zeros(2)).direction
    clipped = NashMTL(max_norm=0.5).aggregate(g, zeros(2)).direction
    assert free.norm() > 0.5
    torch.testing.assert_close(clipped, free / free.norm() * 0.5)


@pytest.mark.parametrize("t", [2, 3, 5])
def test_nash_clips_the_update_at_norm_one_by_default_as_the_paper_does(t):
    """Unclipped, d . d = sum_t alpha_t (M alpha)_t = T at every step; the paper's code clips the shared gradient's
    norm at 1 (max_norm=1.0), so the default update is the unclipped one divided by sqrt(T)."""
    gen = torch.Generator().manual_seed(50 + t)
    for _ in range(5):
        g = random_grads(gen, t, t + 3)
        free = NashMTL(max_norm=0).aggregate(g, zeros(t)).direction
        assert float(free.norm()) == pytest.approx(math.sqrt(t), rel=1e-6)
        default = NashMTL().aggregate(g, zeros(t)).direction
        assert float(default.norm()) == pytest.approx(1.0, rel=1e-9)
        torch.testing.assert_close(default, free / math.sqrt(t), rtol=1e-6, atol=0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_iter": 0},
        {"tol": -1.0},
        {"eps": 0.0},
        {"update_weights_every": 0},
        {"max_norm": -1.0},
        {"max_norm": float("nan")},
        {"max_iter": 2.5},
    ],
)
def test_nash_rejects_bad_options(kwargs):
    with pytest.raises(ConfigError, match="nash"):
        NashMTL(**kwargs)


# -- Aligned-MTL ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("t", [2, 3, 5])
def test_aligned_gradients_are_orthogonal_with_norm_sigma_min(t):
    gen = torch.Generator().manual_seed(40 + t)
    for _ in range(5):
        g = random_grads(gen, t, 9)
        u, s, vh = torch.linalg.svd(g, full_matrices=False)
        aligned = alignment_matrix(g @ g.T) @ g
        torch.testing.assert_close(
            aligned @ aligned.T, s.min() ** 2 * torch.eye(t, dtype=F64), rtol=0, atol=1e-9 * s.max() ** 2
        )
        torch.testing.assert_close(aligned, s.min() * u @ vh, rtol=1e-7, atol=1e-9 * s.max())
        omega = torch.arange(1, t + 1, dtype=F64)
        direction = AlignedMTL(pre_weights=omega.tolist()).aggregate(g, zeros(t)).direction
        torch.testing.assert_close(direction, omega @ (s.min() * u @ vh), rtol=1e-7, atol=1e-9 * s.max())


def test_aligned_is_equal_weighting_for_orthogonal_equal_norm_gradients():
    gen = torch.Generator().manual_seed(8)
    q, _ = torch.linalg.qr(torch.randn(6, 4, generator=gen, dtype=F64))
    g = 2.5 * q.T
    torch.testing.assert_close(AlignedMTL().weights(g @ g.T, zeros(4)), torch.ones(4, dtype=F64))


def test_aligned_rank_deficient_gradients():
    gen = torch.Generator().manual_seed(9)
    base = random_grads(gen, 3, 6)
    for g in (
        torch.cat([base, base[1:2] + base[2:3]]),
        torch.cat([base, torch.zeros(1, 6, dtype=F64)]),
        random_grads(gen, 5, 3),
    ):
        w = AlignedMTL().weights(g @ g.T, zeros(g.shape[0]))
        assert torch.isfinite(w).all()
        s = torch.linalg.svdvals(g)
        s_min = s[s > 1e-6 * s.max()].min()
        aligned = alignment_matrix(g @ g.T) @ g
        eig = torch.linalg.eigvalsh(aligned @ aligned.T)
        rank = int((s > 1e-6 * s.max()).sum())
        torch.testing.assert_close(eig[-rank:], s_min**2 * torch.ones(rank, dtype=F64), rtol=1e-7, atol=0)
        assert rank < g.shape[0] and eig[:-rank].abs().max() <= 1e-9 * s.max() ** 2
    assert torch.equal(AlignedMTL().weights(torch.zeros(3, 3, dtype=F64), zeros(3)), zeros(3))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"pre_weights": []},
        {"pre_weights": [1.0, -1.0]},
        {"pre_weights": "ab"},
        {"pre_weights": [1.0, math.inf]},
        {"rtol": 0.0},
        {"rtol": 1.5},
    ],
)
def test_aligned_rejects_bad_options(kwargs):
    with pytest.raises(ConfigError, match="aligned"):
        AlignedMTL(**kwargs)


def test_aligned_pre_weights_must_match_the_tasks():
    with pytest.raises(ConfigError, match="3 tasks"):
        AlignedMTL(pre_weights=[1.0, 2.0]).weights(torch.eye(3, dtype=F64), zeros(3))
