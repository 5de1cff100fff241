"""MGDA against an independent exact solver of min_{w in simplex} ||w @ G||^2 and against its closed-form cases."""

from __future__ import annotations

import itertools

import pytest
import torch

from polyskill.errors import ConfigError
from polyskill.mtl import aggregator_class
from polyskill.mtl.weighting.mgda import MGDA, NORMALIZATIONS, min_norm_weights
from polyskill.mtl.weighting.mgda_normalized_hull import MGDANormalizedHull


def exact_min_norm(grads: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Enumerate supports S; on each, solve the equality-constrained QP min w^T M w, sum w = 1 through its KKT
    system (least squares when singular); keep the non-negative solution of smallest value."""
    m = grads @ grads.T
    num_tasks = m.shape[0]
    best_w, best_value = None, float("inf")
    for size in range(1, num_tasks + 1):
        for support in itertools.combinations(range(num_tasks), size):
            s = list(support)
            kkt = torch.zeros(size + 1, size + 1, dtype=torch.float64)
            kkt[:size, :size] = 2 * m[s][:, s]
            kkt[:size, size] = 1
            kkt[size, :size] = 1
            rhs = torch.zeros(size + 1, dtype=torch.float64)
            rhs[size] = 1
            solution = torch.linalg.lstsq(kkt, rhs[:, None], driver="gelsd").solution[:, 0]
            if (kkt @ solution - rhs).abs().max() > 1e-9 or solution[:size].min() < -1e-12:
                continue
            w = torch.zeros(num_tasks, dtype=torch.float64)
            w[s] = solution[:size].clamp_min(0)
            value = float(w @ m @ w)
            if value < best_value - 1e-15:
                best_w, best_value = w, value
    return best_w, best_value


def random_case(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    num_tasks = int(torch.randint(2, 6, (), generator=g))
    dim = int(torch.randint(3, 11, (), generator=g))
    grads = torch.randn(num_tasks, dim, generator=g, dtype=torch.float64)
    return grads + 0.7 * torch.randn(dim, generator=g, dtype=torch.float64)  # a shared component: mixed supports


@pytest.mark.parametrize("seed", range(40))
def test_matches_exact_solver(seed):
    grads = random_case(seed)
    losses = torch.ones(grads.shape[0], dtype=torch.float64)
    w_exact, value_exact = exact_min_norm(grads)
    scale = float((grads**2).sum(1).max())

    precise = MGDA(max_iter=10_000, tol=1e-13).aggregate(grads, losses)
    assert precise.weights.min() >= 0 and precise.weights.sum() == pytest.approx(1, abs=1e-12)
    assert float(precise.direction @ precise.direction) == pytest.approx(value_exact, abs=1e-11 * scale)
    torch.testing.assert_close(precise.direction, w_exact @ grads, atol=1e-5 * scale**0.5, rtol=0)
    if grads.shape[0] <= grads.shape[1]:  # a positive definite Gram matrix: the weights are unique
        torch.testing.assert_close(precise.weights, w_exact, atol=1e-5, rtol=0)

    default = MGDA().aggregate(grads, losses)  # tol = 1e-6 bounds the duality gap relative to max ||g_t||^2
    assert float(default.direction @ default.direction) <= value_exact + 1e-6 * scale


@pytest.mark.parametrize("seed", range(10))
def test_two_tasks_closed_form(seed):
    g = torch.Generator().manual_seed(100 + seed)
    grads = torch.randn(2, 4, generator=g, dtype=torch.float64) + torch.randn(4, generator=g, dtype=torch.float64)
    gamma = torch.linspace(0, 1, 100_001, dtype=torch.float64)
    values = ((gamma[:, None] * grads[0] + (1 - gamma[:, None]) * grads[1]) ** 2).sum(1)
    w = MGDA(max_iter=1).weights(grads @ grads.T, torch.ones(2, dtype=torch.float64))
    assert float(w[0]) == pytest.approx(float(gamma[values.argmin()]), abs=2e-5)
    assert float(((w @ grads) ** 2).sum()) <= float(values.min()) + 1e-12


def test_opposing_equal_gradients_cancel_exactly():
    g = torch.tensor([[1.5, -2.0, 0.25], [-1.5, 2.0, -0.25]], dtype=torch.float64)
    out = MGDA().aggregate(g, torch.ones(2, dtype=torch.float64))
    assert out.weights.tolist() == [0.5, 0.5]
    assert out.direction.abs().max() == 0


def test_pareto_stationary_four_tasks_gives_zero():
    g = torch.tensor([[1.0, 2.0, 0.0], [-1.0, -2.0, 0.0], [0.0, 1.0, 3.0], [0.0, -1.0, -3.0]], dtype=torch.float64)
    out = MGDA(tol=1e-12, max_iter=5000).aggregate(g, torch.ones(4, dtype=torch.float64))
    assert float(out.direction.norm()) < 1e-6


@pytest.mark.parametrize("num_tasks", [2, 3, 5])
def test_smallest_gradient_inside_hull_is_the_answer(num_tasks):
    g = torch.Generator().manual_seed(num_tasks)
    base = torch.randn(6, generator=g, dtype=torch.float64)
    extra = torch.randn(num_tasks - 1, 6, generator=g, dtype=torch.float64)
    extra = extra - (extra @ base)[:, None] / (base @ base) * base  # orthogonal to base ...
    extra = extra + torch.rand(num_tasks - 1, 1, generator=g, dtype=torch.float64) * base  # ... plus c_t base, c_t >= 0
    grads = torch.cat([(base + extra)[: num_tasks // 2], base[None], (base + extra)[num_tasks // 2 :]])
    assert ((grads @ base) >= (base @ base) * (1 - 1e-12)).all()  # <g_t, g_1> >= ||g_1||^2 for every t
    out = MGDA().aggregate(grads, torch.ones(num_tasks, dtype=torch.float64))
    expected = torch.zeros(num_tasks, dtype=torch.float64)
    expected[num_tasks // 2] = 1
    torch.testing.assert_close(out.weights, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("seed", range(10))
def test_direction_is_common_descent(seed):
    grads = random_case(200 + seed)
    out = MGDA(tol=1e-12, max_iter=5000).aggregate(grads, torch.ones(grads.shape[0], dtype=torch.float64))
    sq = float(out.direction @ out.direction)
    # optimality of the min-norm point d: <d, g_t> >= ||d||^2 for every t, hence >= 0 (descent for every task)
    assert (grads @ out.direction >= sq - 1e-8).all()


def grid_min_norm(grads: torch.Tensor, steps: int = 200_000) -> torch.Tensor:
    """Brute force for two vectors: the weights (gamma, 1 - gamma) of the smallest of `steps` + 1 points of their
    segment."""
    gamma = torch.linspace(0, 1, steps + 1, dtype=torch.float64)
    points = gamma[:, None] * grads[0] + (1 - gamma[:, None]) * grads[1]
    best = float(gamma[(points**2).sum(1).argmin()])
    return torch.tensor([best, 1 - best], dtype=torch.float64)


def test_mgda_applies_the_normalised_solution_to_the_raw_gradients():
    """Sener and Koltun's code: solve on g_t / ||g_t||, then scale each raw loss (gradient) by the solution."""
    grads = torch.tensor([[3.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    unit = grads / grads.norm(dim=1, keepdim=True)
    v = grid_min_norm(unit)  # by hand: |u1 - u2|^2 = 2 - sqrt(2), gamma = (1 - u1.u2) / |u1 - u2|^2 = 1/2
    torch.testing.assert_close(v, torch.tensor([0.5, 0.5], dtype=torch.float64), atol=1e-5, rtol=0)
    out = aggregator_class("mgda")(normalization="l2").aggregate(grads, torch.ones(2, dtype=torch.float64))
    torch.testing.assert_close(out.weights, v, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.direction, v @ grads, atol=1e-5, rtol=0)  # (2, 0.5), not the unit hull's point


def test_mgda_normalized_hull_moves_to_the_min_norm_point_of_the_normalised_gradients():
    grads = torch.tensor([[3.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    norms = grads.norm(dim=1)
    v = grid_min_norm(grads / norms[:, None])
    out = aggregator_class("mgda_normalized_hull")().aggregate(grads, torch.ones(2, dtype=torch.float64))
    torch.testing.assert_close(out.weights, v / norms, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.direction, v @ (grads / norms[:, None]), atol=1e-5, rtol=0)
    assert isinstance(aggregator_class("mgda_normalized_hull")(), MGDANormalizedHull)


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
@pytest.mark.parametrize("seed", range(5))
def test_normalizations_in_original_gradients(normalization, seed):
    grads = random_case(300 + seed)
    grads = grads * torch.tensor([0.1, 1.0, 10.0, 3.0, 0.5], dtype=torch.float64)[: grads.shape[0], None]
    g = torch.Generator().manual_seed(seed)
    losses = torch.rand(grads.shape[0], generator=g, dtype=torch.float64) * 3 + 0.1
    norms = grads.norm(dim=1)
    n = {"none": torch.ones_like(losses), "l2": norms, "loss": losses, "loss+": losses * norms}[normalization]
    v_exact, _ = exact_min_norm(grads / n[:, None])
    paper = MGDA(normalization, max_iter=10_000, tol=1e-13).aggregate(grads, losses)
    torch.testing.assert_close(paper.direction, paper.weights @ grads)
    if grads.shape[0] <= grads.shape[1]:  # a positive definite Gram matrix: the weights are unique
        torch.testing.assert_close(paper.weights, v_exact, atol=1e-5, rtol=0)
    torch.testing.assert_close(paper.direction, v_exact @ grads, atol=1e-5 * float(norms.max()), rtol=0)
    assert float(paper.weights.sum()) == pytest.approx(1, abs=1e-10)
    hull = MGDANormalizedHull(normalization, max_iter=10_000, tol=1e-13).aggregate(grads, losses)
    torch.testing.assert_close(hull.direction, hull.weights @ grads)
    torch.testing.assert_close(hull.direction, (v_exact / n) @ grads, atol=1e-5 * float(norms.max()), rtol=0)
    assert float((hull.weights * n).sum()) == pytest.approx(1, abs=1e-10)


def test_l2_normalization_with_a_zero_gradient_and_loss_checks():
    grads = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    out = MGDA("l2").aggregate(grads, torch.ones(3, dtype=torch.float64))
    assert torch.isfinite(out.weights).all() and out.direction.abs().max() == 0
    with pytest.raises(ValueError, match="positive losses"):
        MGDA("loss").aggregate(grads, torch.tensor([1.0, 0.0, 2.0], dtype=torch.float64))


def test_one_task_and_float32_gram():
    assert min_norm_weights(torch.tensor([[4.0]])).tolist() == [1.0]
    w = MGDA().weights(torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]), torch.ones(3))
    assert w.dtype == torch.float32
    torch.testing.assert_close(w, torch.tensor([0.2, 0.4, 0.4]), atol=1e-5, rtol=0)


@pytest.mark.parametrize("cls", [MGDA, MGDANormalizedHull])
def test_options_are_validated(cls):
    for kwargs in [{"normalization": "l1"}, {"max_iter": 0}, {"max_iter": 2.5}, {"tol": -1.0}, {"tol": True}]:
        with pytest.raises(ConfigError, match=f"{cls.name}: "):
            cls(**kwargs)
    with pytest.raises(ValueError, match="Gram matrix"):
        cls().weights(torch.eye(3), torch.ones(2))
