"""EW, UW, GradNorm, DWA and RLW against their papers' rules, computed independently here."""

from __future__ import annotations

import io
import math

import pytest
import torch

from polyskill.errors import ConfigError
from polyskill.mtl.base import LossWeighting
from polyskill.mtl.weighting.dwa import DynamicWeightAverage
from polyskill.mtl.weighting.ew import EqualWeighting
from polyskill.mtl.weighting.gradnorm import GradNorm
from polyskill.mtl.weighting.rlw import RandomLossWeighting
from polyskill.mtl.weighting.uw import UncertaintyWeighting


def roundtrip(module: torch.nn.Module, fresh: torch.nn.Module) -> torch.nn.Module:
    """Load `module`'s state, saved and read back as a checkpoint is (weights_only), into `fresh`."""
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    buffer.seek(0)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    return fresh


# --- EW ---------------------------------------------------------------------------------------------------------


def test_equal_weighting_is_the_sum_of_losses():
    ew = EqualWeighting()
    assert isinstance(ew, LossWeighting)
    losses = torch.tensor([0.3, 2.0, 5.0], dtype=torch.float64)
    assert ew.weights(losses).tolist() == [1.0, 1.0, 1.0]
    grads = torch.randn(3, 7, dtype=torch.float64)
    torch.testing.assert_close(ew.aggregate(grads, losses).direction, grads.sum(0))


# --- UW ---------------------------------------------------------------------------------------------------------


def test_uncertainty_gradient_matches_closed_form():
    uw = UncertaintyWeighting(4)
    with torch.no_grad():
        uw.log_vars.copy_(torch.tensor([-1.0, 0.0, 0.5, 2.0]))
    losses = torch.tensor([0.2, 1.0, 3.0, 0.7])
    w = uw.weights(losses)
    assert w.requires_grad and isinstance(uw, LossWeighting)
    torch.testing.assert_close(w, torch.exp(-uw.log_vars.detach()))
    total = (w * losses).sum() + uw.regularizer(losses)
    (grad,) = torch.autograd.grad(total, uw.log_vars)
    torch.testing.assert_close(grad, 1 - torch.exp(-uw.log_vars.detach()) * losses)


def test_uncertainty_moves_to_log_loss():
    uw = UncertaintyWeighting(3)
    assert uw.weights(torch.ones(3)).tolist() == [1.0, 1.0, 1.0] and float(uw.regularizer(torch.ones(3)).detach()) == 0
    losses = torch.tensor([0.5, 2.0, 8.0])
    opt = torch.optim.SGD(uw.parameters(), lr=0.1)
    for _ in range(600):
        opt.zero_grad()
        ((uw.weights(losses) * losses).sum() + uw.regularizer(losses)).backward()
        opt.step()
    torch.testing.assert_close(uw.log_vars.detach(), losses.log(), atol=1e-4, rtol=0)
    w = uw.weights(losses).detach()
    assert w[0] > w[1] > w[2]  # the larger the loss, the smaller the weight (here w_t = 1 / L_t)


def test_uncertainty_validation():
    for bad in [0, -2, 2.0, True]:
        with pytest.raises(ConfigError, match="uw: num_tasks"):
            UncertaintyWeighting(bad)
    with pytest.raises(ValueError, match="2 tasks"):
        UncertaintyWeighting(2).weights(torch.ones(3))


# --- GradNorm ---------------------------------------------------------------------------------------------------


def gradnorm_loss(w, norms, target):
    return float((w * norms - target).abs().sum())


def test_gradnorm_step_follows_finite_difference_gradient():
    g = torch.Generator().manual_seed(0)
    scales = torch.tensor([[0.5], [1.0], [3.0]], dtype=torch.float64)
    grads = torch.randn(3, 6, generator=g, dtype=torch.float64) * scales
    gram = grads @ grads.T
    first = torch.tensor([2.0, 1.0, 4.0], dtype=torch.float64)
    later = torch.tensor([1.8, 0.4, 3.0], dtype=torch.float64)
    gn = GradNorm(3, alpha=1.5, lr=0.025)
    gn.weights(gram, first)  # records L(0) = first; r = 1 for every task
    w = gn.task_weights.clone()
    returned = gn.weights(gram, later)
    torch.testing.assert_close(returned, w)  # the weights of this step are the ones before the update

    norms = grads.norm(dim=1)
    ratio = later / first
    target = (w * norms).mean() * (ratio / ratio.mean()) ** 1.5  # held constant, as in the paper
    eps = 1e-6
    fd = torch.tensor(
        [
            (gradnorm_loss(w + eps * e, norms, target) - gradnorm_loss(w - eps * e, norms, target)) / (2 * eps)
            for e in torch.eye(3, dtype=torch.float64)
        ],
        dtype=torch.float64,
    )
    loss, grad = gn.loss_and_grad(w, norms, later)
    assert float(loss) == pytest.approx(gradnorm_loss(w, norms, target), abs=1e-12)
    torch.testing.assert_close(grad, fd, atol=1e-8, rtol=0)
    stepped = (w - 0.025 * fd).clamp_min(0)
    torch.testing.assert_close(gn.task_weights, 3 * stepped / stepped.sum(), atol=1e-8, rtol=0)
    assert gradnorm_loss(gn.task_weights * 3 / gn.task_weights.sum(), norms, target) < gradnorm_loss(w, norms, target)


def test_gradnorm_raises_the_slower_task():
    gram = torch.eye(2, dtype=torch.float64) * 4.0  # equal gradient norms
    gn = GradNorm(2)
    for step in range(20):
        w = gn.weights(gram, torch.tensor([1.0, 0.9**step], dtype=torch.float64))
    assert w[0] > 1 > w[1]
    assert float(w.sum()) == pytest.approx(2, abs=1e-12)


def test_gradnorm_weights_stay_positive_and_sum_to_t():
    g = torch.Generator().manual_seed(1)
    gn = GradNorm(4, alpha=3.0, lr=5.0)  # big steps: the clamp must keep the weights positive
    for _ in range(50):
        grads = torch.randn(4, 5, generator=g, dtype=torch.float64) * torch.rand(4, 1, generator=g, dtype=torch.float64)
        w = gn.weights(grads @ grads.T, torch.rand(4, generator=g, dtype=torch.float64) + 0.05)
        assert (w > 0).all() and float(w.sum()) == pytest.approx(4, abs=1e-9)
    assert (gn.task_weights > 0).all() and float(gn.task_weights.sum()) == pytest.approx(4, abs=1e-9)


def test_gradnorm_resumes_identically_and_validates():
    g = torch.Generator().manual_seed(2)
    calls = [
        (torch.randn(3, 4, generator=g, dtype=torch.float64), torch.rand(3, generator=g, dtype=torch.float64) + 0.1)
        for _ in range(6)
    ]
    straight = GradNorm(3)
    expected = [straight.weights(G @ G.T, L) for G, L in calls]
    first = GradNorm(3)
    for G, L in calls[:3]:
        first.weights(G @ G.T, L)
    resumed = roundtrip(first, GradNorm(3))
    for (G, L), want in zip(calls[3:], expected[3:], strict=True):
        torch.testing.assert_close(resumed.weights(G @ G.T, L), want, atol=0, rtol=0)
    for kwargs in [
        {"num_tasks": 0},
        {"num_tasks": 2, "alpha": -0.5},
        {"num_tasks": 2, "lr": 0.0},
        {"num_tasks": 2, "lr": float("nan")},
        {"num_tasks": 2, "alpha": "1"},
    ]:
        with pytest.raises(ConfigError, match="gradnorm: "):
            GradNorm(**kwargs)


# --- DWA --------------------------------------------------------------------------------------------------------


def dwa_reference(history: list[list[float]], step: int, period: int, temperature: float) -> list[float]:
    """The weights of step `step` from the losses of the steps before it (history[:step]), by the paper's formula."""
    k = step // period
    num_tasks = len(history[0])
    history = history[:step]
    if k < 2:
        return [1.0] * num_tasks

    def mean(window: int, t: int) -> float:
        return sum(h[t] for h in history[window * period : (window + 1) * period]) / period

    r = [mean(k - 1, t) / mean(k - 2, t) for t in range(num_tasks)]
    z = sum(math.exp(x / temperature) for x in r)
    return [num_tasks * math.exp(x / temperature) / z for x in r]


def test_dwa_hand_computed_third_window():
    dwa = DynamicWeightAverage(2, temperature=2.0, period=2)
    fed = [[3.0, 1.0], [1.0, 1.0], [1.0, 0.5], [1.0, 1.5]]  # window means: (2, 1) then (1, 1)
    for losses in fed:
        assert dwa.weights(torch.tensor(losses, dtype=torch.float64)).tolist() == [1.0, 1.0]
    w = dwa.weights(torch.tensor([9.0, 9.0], dtype=torch.float64))
    z = math.exp(0.25) + math.exp(0.5)  # r = (1/2, 1/1), divided by the temperature 2
    assert w.tolist() == pytest.approx([2 * math.exp(0.25) / z, 2 * math.exp(0.5) / z], abs=1e-12)


def test_dwa_matches_reference_on_a_sequence():
    g = torch.Generator().manual_seed(3)
    period, temperature = 3, 1.5
    history = (torch.rand(20, 3, generator=g, dtype=torch.float64) * 2 + 0.1).tolist()
    dwa = DynamicWeightAverage(3, temperature=temperature, period=period)
    for step, losses in enumerate(history):
        w = dwa.weights(torch.tensor(losses, dtype=torch.float64))
        assert w.tolist() == pytest.approx(dwa_reference(history, step, period, temperature), abs=1e-12)
        assert float(w.sum()) == pytest.approx(3, abs=1e-12)
        if step < 2 * period:
            assert w.tolist() == [1.0, 1.0, 1.0]


def test_dwa_resumes_mid_window_and_validates():
    g = torch.Generator().manual_seed(4)
    history = torch.rand(17, 2, generator=g, dtype=torch.float64) + 0.2
    straight = DynamicWeightAverage(2, period=4)
    expected = [straight.weights(L) for L in history]
    first = DynamicWeightAverage(2, period=4)
    for L in history[:10]:
        first.weights(L)
    resumed = roundtrip(first, DynamicWeightAverage(2, period=4))
    for L, want in zip(history[10:], expected[10:], strict=True):
        torch.testing.assert_close(resumed.weights(L), want, atol=0, rtol=0)
    for kwargs in [
        {"num_tasks": 1.5},
        {"num_tasks": 2, "temperature": 0},
        {"num_tasks": 2, "period": 0},
        {"num_tasks": 2, "period": 2.0},
    ]:
        with pytest.raises(ConfigError, match="dwa: "):
            DynamicWeightAverage(**kwargs)


# --- RLW --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("distribution,variance", [("normal", 1.0), ("uniform", 1 / 12)])
def test_rlw_weights_are_t_softmax_of_the_named_distribution(distribution, variance):
    rlw = RandomLossWeighting(distribution, seed=5)
    draws = torch.stack([rlw.weights(torch.ones(3, dtype=torch.float64)) for _ in range(4000)])
    assert (draws > 0).all()
    torch.testing.assert_close(draws.sum(1), torch.full((4000,), 3.0, dtype=torch.float64))
    torch.testing.assert_close(draws.mean(0), torch.ones(3, dtype=torch.float64), atol=0.05, rtol=0)
    # log w_s - log w_t = z_s - z_t: the difference of two independent draws, of variance 2 Var(z)
    differences = draws[:, 0].log() - draws[:, 1].log()
    assert float(differences.var()) == pytest.approx(2 * variance, rel=0.1)
    if distribution == "uniform":
        assert float(differences.abs().max()) < 1


def test_rlw_reproducible_across_a_checkpoint():
    rlw = RandomLossWeighting(seed=7)
    losses = torch.ones(4)
    before = [rlw.weights(losses) for _ in range(3)]
    assert not torch.equal(before[0], before[1])
    resumed = roundtrip(rlw, RandomLossWeighting(seed=123))
    after = [rlw.weights(losses) for _ in range(3)]
    assert all(torch.equal(resumed.weights(losses), a) for a in after)
    again = RandomLossWeighting(seed=7)
    assert all(torch.equal(again.weights(losses), b) for b in before)
    for kwargs in [{"distribution": "dirichlet"}, {"seed": -1}, {"seed": 1.0}]:
        with pytest.raises(ConfigError, match="rlw: "):
            RandomLossWeighting(**kwargs)
