"""GLS, STCH, FAMO, IMTL (hybrid), DB-MTL, MoCo, GradDrop and ExcessMTL against their papers' update equations,
written out here on explicit losses and gradient vectors; stateful rules resume bit-identically from a checkpoint."""

from __future__ import annotations

import io
from typing import TypeVar

import pytest
import torch

from polyskill.errors import ConfigError
from polyskill.mtl.base import Aggregator, LossWeighting
from polyskill.mtl.weighting.dbmtl import DBMTL
from polyskill.mtl.weighting.excessmtl import ExcessMTL
from polyskill.mtl.weighting.famo import FAMO
from polyskill.mtl.weighting.gls import GeometricLossStrategy
from polyskill.mtl.weighting.graddrop import GradDrop
from polyskill.mtl.weighting.imtl import IMTLG
from polyskill.mtl.weighting.imtl_hybrid import IMTLHybrid
from polyskill.mtl.weighting.moco import MoCo
from polyskill.mtl.weighting.stch import SmoothTchebycheff

F64 = torch.float64
M = TypeVar("M", bound=torch.nn.Module)


def roundtrip(module: torch.nn.Module, fresh: M) -> M:
    """Load `module`'s state, saved and read back as a checkpoint is (weights_only), into `fresh`."""
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    buffer.seek(0)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    return fresh


def autograd_weights(objective, losses: torch.Tensor) -> torch.Tensor:
    """d objective / d L at `losses`: the weights of the sum_t w_t L_t with the objective's gradient."""
    leaf = losses.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(objective(leaf), leaf)
    return grad


# --- GLS --------------------------------------------------------------------------------------------------------


def test_gls_weights_give_the_geometric_means_gradient():
    gen = torch.Generator().manual_seed(0)
    gls = GeometricLossStrategy()
    assert isinstance(gls, LossWeighting)
    for t in (1, 2, 5):
        losses = torch.rand(t, generator=gen, dtype=F64) * 4 + 0.01
        expected = autograd_weights(lambda l: l.prod() ** (1.0 / l.numel()), losses)
        torch.testing.assert_close(gls.weights(losses), expected, rtol=1e-12, atol=0)


def test_gls_many_tasks_and_a_zero_loss_stay_finite():
    losses = torch.full((139,), 1e-3)
    w = GeometricLossStrategy().weights(losses)
    assert w.dtype == torch.float32
    torch.testing.assert_close(w, torch.full((139,), 1.0 / 139))  # equal losses: GLS / (T L) = 1 / T
    assert torch.isfinite(GeometricLossStrategy().weights(torch.tensor([0.0, 1.0, 2.0]))).all()
    with pytest.raises(ValueError, match="non-negative"):
        GeometricLossStrategy().weights(torch.tensor([-0.1, 1.0]))


# --- STCH -------------------------------------------------------------------------------------------------------


def stch_objective(losses: torch.Tensor, nadir: torch.Tensor, mu: float) -> torch.Tensor:
    """T mu log sum_t exp(log(L_t / z_t) / mu)."""
    return losses.numel() * mu * torch.logsumexp(torch.log(losses / nadir) / mu, dim=0)


def test_stch_warms_up_on_log_losses_then_follows_the_smooth_tchebycheff_gradient():
    gen = torch.Generator().manual_seed(1)
    stch = SmoothTchebycheff(3, mu=0.3, warmup_steps=4)
    seen = []
    for _ in range(4):
        losses = torch.rand(3, generator=gen, dtype=F64) * 3 + 0.1
        seen.append(losses)
        expected = autograd_weights(lambda l: torch.log(l).sum(), losses)
        torch.testing.assert_close(stch.weights(losses), expected, rtol=1e-12, atol=0)
    nadir = torch.stack(seen).mean(0)
    for _ in range(3):
        losses = torch.rand(3, generator=gen, dtype=F64) * 3 + 0.1
        expected = autograd_weights(lambda l: stch_objective(l, nadir, 0.3), losses)
        torch.testing.assert_close(stch.weights(losses), expected, rtol=1e-12, atol=0)


def test_stch_without_warmup_uses_a_unit_nadir_and_tends_to_the_maximum():
    losses = torch.tensor([0.5, 2.0, 1.0], dtype=F64)
    stch = SmoothTchebycheff(3, mu=0.01, warmup_steps=0)
    w = stch.weights(losses)
    torch.testing.assert_close(w, autograd_weights(lambda l: stch_objective(l, torch.ones(3, dtype=F64), 0.01), losses))
    # a small mu is nearly the maximum: all the weight (T / L_t of log(L_t)'s gradient) on the largest loss
    torch.testing.assert_close(w, torch.tensor([0.0, 3.0 / 2.0, 0.0], dtype=F64), atol=1e-12, rtol=1e-12)


def test_stch_resumes_mid_warmup():
    gen = torch.Generator().manual_seed(2)
    batches = [torch.rand(4, generator=gen) + 0.2 for _ in range(8)]
    straight = SmoothTchebycheff(4, warmup_steps=5)
    expected = [straight.weights(b) for b in batches]
    first = SmoothTchebycheff(4, warmup_steps=5)
    for b in batches[:3]:
        first.weights(b)
    resumed = roundtrip(first, SmoothTchebycheff(4, warmup_steps=5))
    for b, e in zip(batches[3:], expected[3:], strict=True):
        assert torch.equal(resumed.weights(b), e)


@pytest.mark.parametrize(
    "kwargs, option",
    [
        ({"mu": 0}, "mu"),
        ({"mu": True}, "mu"),
        ({"mu": float("nan")}, "mu"),
        ({"warmup_steps": -1}, "warmup_steps"),
        ({"warmup_steps": 2.0}, "warmup_steps"),
        ({"num_tasks": 0}, "num_tasks"),
    ],
)
def test_stch_rejects_bad_options(kwargs, option):
    with pytest.raises(ConfigError, match=f"{option} must"):
        SmoothTchebycheff(**{"num_tasks": 3, **kwargs})


# --- FAMO -------------------------------------------------------------------------------------------------------


def test_famo_weights_are_the_gradient_of_its_log_loss_objective():
    famo = FAMO(3)
    with torch.no_grad():
        famo.xi.copy_(torch.tensor([0.3, -1.0, 0.5], dtype=F64))
    losses = torch.tensor([0.2, 1.5, 3.0], dtype=F64)
    z = torch.softmax(famo.xi.clone(), 0)
    c = (z / (losses + 1e-8)).sum()
    expected = autograd_weights(lambda l: (z * torch.log(l + 1e-8)).sum() / c, losses)
    w = famo.weights(losses)
    torch.testing.assert_close(w, expected, rtol=1e-12, atol=0)
    torch.testing.assert_close(w.sum(), torch.tensor(1.0, dtype=F64))


def test_famo_logits_follow_torch_adam_on_the_softmax_jacobian_of_the_improvements():
    gen = torch.Generator().manual_seed(3)
    famo = FAMO(4, w_lr=0.05, gamma=0.01)
    xi = torch.zeros(4, dtype=F64, requires_grad=True)
    adam = torch.optim.Adam([xi], lr=0.05, weight_decay=0.01)
    for _ in range(6):
        before = torch.rand(4, generator=gen, dtype=F64) + 0.5
        after = before * (0.6 + 0.5 * torch.rand(4, generator=gen, dtype=F64))
        z = torch.softmax(xi.detach(), 0)
        expected = (z / (before + 1e-8)) / (z / (before + 1e-8)).sum()
        torch.testing.assert_close(famo.weights(before), expected, rtol=1e-12, atol=0)
        famo.after_step(after)
        delta = torch.log(before + 1e-8) - torch.log(after + 1e-8)
        (xi.grad,) = torch.autograd.grad(torch.softmax(xi, 0), xi, grad_outputs=delta)
        adam.step()
        torch.testing.assert_close(famo.xi, xi.detach(), rtol=1e-12, atol=1e-15)


def test_famo_raises_the_weight_of_the_task_that_does_not_improve():
    famo = FAMO(3, w_lr=0.1)
    losses = torch.ones(3)
    for _ in range(20):
        famo.weights(losses)
        famo.after_step(losses * torch.tensor([0.9, 0.9, 1.0]))  # the third task's loss never goes down
    w = famo.weights(losses)
    assert w[2] > 0.5 and w.dtype == torch.float32
    assert not any(p is famo.xi for p in famo.parameters())


def test_famo_resumes_exactly_even_between_the_weights_and_the_step():
    gen = torch.Generator().manual_seed(4)
    batches = [(torch.rand(3, generator=gen) + 0.5, torch.rand(3, generator=gen) + 0.4) for _ in range(6)]

    def run(famo: FAMO, pairs) -> list[torch.Tensor]:
        out = []
        for before, after in pairs:
            out.append(famo.weights(before))
            famo.after_step(after)
        return out

    expected = run(FAMO(3), batches)
    first = FAMO(3)
    run(first, batches[:3])
    first.weights(batches[3][0])
    resumed = roundtrip(first, FAMO(3))
    resumed.after_step(batches[3][1])
    for got, want in zip(run(resumed, batches[4:]), expected[4:], strict=True):
        assert torch.equal(got, want)
    with pytest.raises(RuntimeError, match="after_step"):
        resumed.after_step(batches[0][1])


@pytest.mark.parametrize(
    "kwargs, option",
    [
        ({"w_lr": 0}, "w_lr"),
        ({"w_lr": "0.1"}, "w_lr"),
        ({"gamma": -1e-3}, "gamma"),
        ({"gamma": float("inf")}, "gamma"),
        ({"num_tasks": True}, "num_tasks"),
    ],
)
def test_famo_rejects_bad_options(kwargs, option):
    with pytest.raises(ConfigError, match=f"{option} must"):
        FAMO(**{"num_tasks": 3, **kwargs})


# --- IMTL (hybrid) ----------------------------------------------------------------------------------------------


def test_imtl_hybrid_is_imtl_g_on_the_scaled_gradients():
    gen = torch.Generator().manual_seed(5)
    imtl = IMTLHybrid(3)
    assert isinstance(imtl, Aggregator)
    with torch.no_grad():
        imtl.loss_scale.copy_(torch.tensor([0.7, -0.4, 0.1]))
    g = torch.randn(3, 6, generator=gen, dtype=F64)
    losses = torch.rand(3, generator=gen, dtype=F64) + 0.5
    out = imtl.aggregate(g, losses)
    scaled = torch.exp(imtl.loss_scale.detach().to(F64))[:, None] * g
    # the paper's IMTL-G on the scaled vectors: alpha_{2:T} = g_1 U^T (D U^T)^-1, D = [g_1 - g_t], U = [u_1 - u_t]
    unit = scaled / scaled.norm(dim=1, keepdim=True)
    d, u = scaled[0] - scaled[1:], unit[0] - unit[1:]
    rest = scaled[0] @ u.T @ torch.linalg.inv(d @ u.T)
    alpha = torch.cat([(1 - rest.sum()).unsqueeze(0), rest])
    torch.testing.assert_close(out.direction, alpha @ scaled, rtol=1e-10, atol=1e-12)
    projections = unit @ out.direction
    torch.testing.assert_close(projections, projections[:1].expand(3), rtol=1e-10, atol=1e-12)


def test_imtl_hybrid_scale_gradient_and_starting_point():
    imtl = IMTLHybrid(3)
    gram = torch.tensor([[2.0, 0.3, -0.5], [0.3, 1.0, 0.2], [-0.5, 0.2, 3.0]], dtype=F64)
    ones = torch.ones(3, dtype=F64)
    torch.testing.assert_close(imtl.weights(gram, ones), IMTLG().weights(gram, ones))  # s = 0: IMTL-G itself
    with torch.no_grad():
        imtl.loss_scale.copy_(torch.tensor([-1.0, 0.0, 0.5]))
    losses = torch.tensor([0.2, 1.0, 3.0])
    (grad,) = torch.autograd.grad(imtl.regularizer(losses), imtl.loss_scale)
    torch.testing.assert_close(grad, torch.exp(imtl.loss_scale.detach()) * losses - 1)
    assert [n for n, _ in imtl.named_parameters()] == ["loss_scale"]


# --- Jacobian aggregators: shared checks -----------------------------------------------------------------------


def jacobian_steps(gen: torch.Generator, steps: int, t: int = 3, p: int = 7) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """`steps` random (per-task gradients [T, P], losses [T]) pairs, in float64."""
    return [
        (torch.randn(t, p, generator=gen, dtype=F64), torch.rand(t, generator=gen, dtype=F64) + 0.3)
        for _ in range(steps)
    ]


def check_resumes_exactly(make, batches, split: int) -> None:
    """`make()` run over `batches` straight, and stopped after `split`, checkpointed and resumed into a fresh one,
    gives identical directions and weights; a checkpoint taken before the first step empties a used state."""
    straight = make()
    expected = [straight.combine(j, l) for j, l in batches]
    first = make()
    for j, l in batches[:split]:
        first.combine(j, l)
    resumed = roundtrip(first, make())
    for (j, l), want in zip(batches[split:], expected[split:], strict=True):
        got = resumed.combine(j, l)
        assert torch.equal(got.direction, want.direction) and torch.equal(got.weights, want.weights)
    reset = roundtrip(make(), resumed)
    got = reset.combine(*batches[0])
    assert torch.equal(got.direction, expected[0].direction)


def check_float32_state_round_trips(make) -> None:
    """A float32 Jacobian keeps float32 state, and a checkpoint of it loads into a fresh aggregator."""
    gen = torch.Generator().manual_seed(9)
    jac, losses = torch.randn(3, 5, generator=gen), torch.rand(3, generator=gen) + 0.5
    agg = make()
    out = agg.combine(jac, losses)
    assert out.direction.dtype == torch.float32 and out.weights.dtype == torch.float32
    assert torch.isfinite(out.direction).all() and torch.isfinite(out.weights).all()
    twin = roundtrip(agg, make())
    assert torch.equal(twin.combine(jac, losses).direction, agg.combine(jac, losses).direction)


# --- DB-MTL -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("beta, beta_sigma", [(0.9, 0.0), (0.6, 0.5)])
def test_dbmtl_follows_its_update_equations(beta, beta_sigma):
    gen = torch.Generator().manual_seed(6)
    db = DBMTL(3, beta=beta, beta_sigma=beta_sigma)
    ema = torch.zeros(3, 7, dtype=F64)
    for k, (jac, losses) in enumerate(jacobian_steps(gen, 5), start=1):
        log_grads = torch.stack([jac[t] / (losses[t] + 1e-8) for t in range(3)])  # gradient of log(L_t + 1e-8)
        rate = beta / k**beta_sigma
        ema = rate * ema + (1 - rate) * log_grads
        norms = torch.stack([ema[t].norm() for t in range(3)])
        alpha = norms.max() / norms
        out = db.combine(jac, losses)
        torch.testing.assert_close(out.weights, alpha, rtol=1e-12, atol=0)
        torch.testing.assert_close(out.direction, sum(alpha[t] * ema[t] for t in range(3)), rtol=1e-10, atol=1e-12)
        rescaled = torch.stack([alpha[t] * ema[t] for t in range(3)]).norm(dim=1)
        torch.testing.assert_close(rescaled, rescaled.max().expand(3))  # every averaged gradient at the largest norm


def test_dbmtl_resumes_exactly_and_keeps_float32_state():
    check_resumes_exactly(lambda: DBMTL(3, beta_sigma=0.5), jacobian_steps(torch.Generator().manual_seed(7), 6), 2)
    check_float32_state_round_trips(lambda: DBMTL(3))
    db = DBMTL(3)
    db.combine(torch.randn(3, 5), torch.ones(3))
    assert db.grad_ema.shape == (3, 5) and db.grad_ema.dtype == torch.float32
    with pytest.raises(ValueError, match="shape"):
        db.combine(torch.randn(3, 6), torch.ones(3))
    zero = DBMTL(2).combine(torch.tensor([[1.0, 2.0], [0.0, 0.0]]), torch.ones(2))
    assert zero.weights.tolist() == [1.0, 0.0]


@pytest.mark.parametrize(
    "kwargs, option",
    [
        ({"beta": 1.0}, "beta"),
        ({"beta": -0.1}, "beta"),
        ({"beta_sigma": -1}, "beta_sigma"),
        ({"beta_sigma": False}, "beta_sigma"),
        ({"num_tasks": 2.5}, "num_tasks"),
    ],
)
def test_dbmtl_rejects_bad_options(kwargs, option):
    with pytest.raises(ConfigError, match=f"{option} must"):
        DBMTL(**{"num_tasks": 3, **kwargs})


# --- MoCo -------------------------------------------------------------------------------------------------------


def simplex_projection_by_bisection(v: torch.Tensor) -> torch.Tensor:
    """argmin_{x in simplex} ||x - v||: x = max(v - theta, 0) with theta found by bisection so that sum x = 1."""
    low, high = float(v.min()) - 1.0, float(v.max())
    for _ in range(200):
        theta = 0.5 * (low + high)
        if float((v - theta).clamp_min(0).sum()) > 1.0:
            low = theta
        else:
            high = theta
    return (v - 0.5 * (low + high)).clamp_min(0)


@pytest.mark.parametrize("rho", [0.0, 0.3])
def test_moco_follows_its_update_equations(rho):
    gen = torch.Generator().manual_seed(8)
    beta, beta_sigma, gamma, gamma_sigma = 0.5, 0.5, 0.8, 0.5
    moco = MoCo(3, beta=beta, beta_sigma=beta_sigma, gamma=gamma, gamma_sigma=gamma_sigma, rho=rho)
    y, lambd = torch.zeros(3, 7, dtype=F64), torch.full((3,), 1 / 3, dtype=F64)
    for k, (jac, losses) in enumerate(jacobian_steps(gen, 6), start=1):
        h = torch.stack([losses[t] * jac[t] / (jac[t].norm() + 1e-8) for t in range(3)])
        y = y - beta / k**beta_sigma * (y - h)
        step = gamma / k**gamma_sigma * (y @ y.T + rho * torch.eye(3, dtype=F64)) @ lambd
        lambd = simplex_projection_by_bisection(lambd - step)
        out = moco.combine(jac, losses)
        torch.testing.assert_close(out.weights, lambd, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(out.direction, y.T @ lambd, rtol=1e-9, atol=1e-12)


def test_moco_resumes_exactly_and_keeps_float32_state():
    check_resumes_exactly(lambda: MoCo(3), jacobian_steps(torch.Generator().manual_seed(10), 6), 3)
    check_float32_state_round_trips(lambda: MoCo(3))


@pytest.mark.parametrize(
    "kwargs, option",
    [
        ({"beta": 0}, "beta"),
        ({"beta": 1.5}, "beta"),
        ({"beta_sigma": -0.5}, "beta_sigma"),
        ({"gamma": 0}, "gamma"),
        ({"gamma_sigma": float("nan")}, "gamma_sigma"),
        ({"rho": -1}, "rho"),
        ({"rho": True}, "rho"),
        ({"num_tasks": 0}, "num_tasks"),
    ],
)
def test_moco_rejects_bad_options(kwargs, option):
    with pytest.raises(ConfigError, match=f"{option} must"):
        MoCo(**{"num_tasks": 3, **kwargs})


# --- GradDrop ---------------------------------------------------------------------------------------------------


def explicit_graddrop(g: torch.Tensor, uniform: torch.Tensor, leak: float) -> torch.Tensor:
    """The paper's rule coordinate by coordinate: purity P, masks I[P > U] I[g > 0] + I[P < U] I[g < 0]."""
    out = torch.zeros(g.shape[1], dtype=g.dtype)
    for i in range(g.shape[1]):
        column = g[:, i]
        purity = 0.5 * (1 + column.sum() / column.abs().sum()) if column.abs().sum() > 0 else 0.5
        for t in range(g.shape[0]):
            mask = float((purity > uniform[i] and column[t] > 0) or (purity < uniform[i] and column[t] < 0))
            out[i] += (leak + (1 - leak) * mask) * column[t]
    return out


@pytest.mark.parametrize("leak", [0.0, 0.25])
def test_graddrop_masks_each_coordinate_by_the_sign_it_draws(leak):
    gen = torch.Generator().manual_seed(11)
    drop = GradDrop(leak=leak, seed=3)
    assert GradDrop.acts_per_coordinate
    uniforms = torch.Generator().manual_seed(3)  # the same stream as the aggregator's generator
    for _ in range(3):
        g = torch.randn(4, 50, generator=gen, dtype=F64)
        g[:, 0] = 0.0  # a coordinate no task moves
        out = drop.combine(g, torch.ones(4, dtype=F64))
        uniform = torch.rand(50, generator=uniforms, dtype=F64)
        torch.testing.assert_close(out.direction, explicit_graddrop(g, uniform, leak), rtol=1e-12, atol=1e-15)
        assert out.weights.tolist() == [1.0] * 4


def test_graddrop_keeps_everything_when_signs_agree_and_resumes_exactly():
    gen = torch.Generator().manual_seed(12)
    signs = torch.where(torch.rand(9, generator=gen) < 0.5, -1.0, 1.0).to(F64)
    g = torch.rand(3, 9, generator=gen, dtype=F64) * signs  # every task agrees on each coordinate's sign
    torch.testing.assert_close(GradDrop().combine(g, torch.ones(3, dtype=F64)).direction, g.sum(0))
    batches = [(torch.randn(3, 20, generator=gen, dtype=F64), torch.ones(3, dtype=F64)) for _ in range(5)]
    check_resumes_exactly(lambda: GradDrop(seed=5), batches, 2)


@pytest.mark.parametrize(
    "kwargs, option", [({"leak": -0.1}, "leak"), ({"leak": 2}, "leak"), ({"seed": -1}, "seed"), ({"seed": 1.0}, "seed")]
)
def test_graddrop_rejects_bad_options(kwargs, option):
    with pytest.raises(ConfigError, match=f"{option} must"):
        GradDrop(**kwargs)


# --- ExcessMTL --------------------------------------------------------------------------------------------------


def test_excessmtl_follows_its_update_equations():
    gen = torch.Generator().manual_seed(13)
    eta = 0.5
    excess = ExcessMTL(3, robust_step_size=eta)
    h, w, first = torch.zeros(3, 7, dtype=F64), torch.ones(3, dtype=F64), torch.ones(3, dtype=F64)
    for step, (jac, losses) in enumerate(jacobian_steps(gen, 6)):
        h = h + jac**2
        risk = torch.stack([jac[t] @ (jac[t] / torch.sqrt(h[t] + 1e-7)) for t in range(3)])
        if step == 0:
            first = risk
        else:
            w = w * torch.exp(eta * risk / first)
            w = w / w.sum() * 3
        out = excess.combine(jac, losses)
        torch.testing.assert_close(out.weights, w, rtol=1e-12, atol=0)
        torch.testing.assert_close(out.direction, w @ jac, rtol=1e-12, atol=1e-15)


def test_excessmtl_waits_for_a_non_zero_gradient_and_favours_the_larger_excess_risk():
    excess = ExcessMTL(2, robust_step_size=0.5)
    assert excess.combine(torch.tensor([[1.0, 0.0], [0.0, 0.0]]), torch.ones(2)).weights.tolist() == [1.0, 1.0]
    excess.combine(torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.ones(2))  # the second task's first estimate
    assert excess.initial_risk[1] > 0 and torch.isfinite(excess.task_weights).all()
    w = excess.task_weights.clone()
    # the first task's gradient keeps its size (its risk falls as H grows: sum 1/sqrt(k)); the second's grows
    out = excess.combine(torch.tensor([[1.0, 0.0], [0.0, 20.0]]), torch.ones(2))
    assert out.weights[1] / out.weights[0] > w[1] / w[0]


def test_excessmtl_resumes_exactly_and_keeps_float32_state():
    check_resumes_exactly(lambda: ExcessMTL(3), jacobian_steps(torch.Generator().manual_seed(14), 6), 3)
    check_float32_state_round_trips(lambda: ExcessMTL(3))


@pytest.mark.parametrize(
    "kwargs, option",
    [
        ({"robust_step_size": 0}, "robust_step_size"),
        ({"robust_step_size": float("inf")}, "robust_step_size"),
        ({"num_tasks": -2}, "num_tasks"),
    ],
)
def test_excessmtl_rejects_bad_options(kwargs, option):
    with pytest.raises(ConfigError, match=f"{option} must"):
        ExcessMTL(**{"num_tasks": 3, **kwargs})


# --- many tasks -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [DBMTL, MoCo, ExcessMTL], ids=["dbmtl", "moco", "excessmtl"])
def test_139_tasks_keep_one_state_row_per_task_and_stay_finite(make):
    gen = torch.Generator().manual_seed(15)
    agg = make(139)
    for _ in range(3):
        out = agg.combine(torch.randn(139, 40, generator=gen), torch.rand(139, generator=gen) + 0.1)
        assert torch.isfinite(out.direction).all() and torch.isfinite(out.weights).all()
    assert [tuple(agg.get_buffer(name).shape) for name in agg.lazy_buffers] == [(139, 40)]
