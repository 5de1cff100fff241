"""The policy-gradient mathematics of meta-RL against independent computations: a closed-form linear-Gaussian
gradient, GAE and returns by hand, an explicit ridge solve, torch.linalg.solve, an explicit Hessian, the Gaussian
KL formula, and TRPO's trust region checked by closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.distributions import Normal

from polyskill.errors import ConfigError
from polyskill.meta.conjugate_gradient import conjugate_gradient
from polyskill.rl.baseline import linear_baseline
from polyskill.rl.losses import clipped_surrogate_loss, gaussian_kl, masked_mean, reinforce_loss, surrogate_loss
from polyskill.rl.policy import GaussianPolicy
from polyskill.rl.returns import discounted_returns, gae, normalize
from polyskill.rl.trpo import TRPOConfig, fisher_vector_product, trpo_step

# --- the policy ----------------------------------------------------------------------------------------------------


def test_policy_initialisation_shapes_and_log_prob():
    torch.manual_seed(0)
    policy = GaussianPolicy(3, 2, widths=(5,), init_std=0.5)
    names = dict(policy.named_parameters())
    assert set(names) == {"mean_net.0.weight", "mean_net.0.bias", "mean_net.2.weight", "mean_net.2.bias", "log_std"}
    for name, p in names.items():
        if name.endswith("bias"):
            assert torch.equal(p, torch.zeros_like(p))
        if name.endswith("weight"):  # xavier-uniform: |w| <= sqrt(6 / (fan_in + fan_out))
            assert p.abs().max() <= math.sqrt(6 / sum(p.shape)) and p.abs().max() > 0
    assert torch.allclose(policy.log_std, torch.full((2,), math.log(0.5)))
    obs, actions = torch.randn(4, 6, 7, 3), torch.randn(4, 6, 7, 2)
    d = policy.distribution(obs)
    assert d.loc.shape == (4, 6, 7, 2) and d.scale.shape == (4, 6, 7, 2)
    mean = policy.mean_net[2](torch.tanh(policy.mean_net[0](obs)))
    by_hand = (-((actions - mean) ** 2) / (2 * 0.25) - math.log(0.5) - 0.5 * math.log(2 * math.pi)).sum(-1)
    assert torch.allclose(policy.log_prob(obs, actions), by_hand, atol=1e-5)
    assert torch.allclose(policy.mean_action(obs), mean)


def test_policy_functional_params_carry_the_gradient_and_min_std():
    torch.manual_seed(0)
    policy = GaussianPolicy(2, 1, widths=(4,), min_std=0.3)
    obs, actions = torch.randn(5, 2), torch.randn(5, 1)
    params = dict(policy.named_parameters())
    assert torch.equal(policy.log_prob(obs, actions, params), policy.log_prob(obs, actions))
    # MAML's adapted parameters: one SGD step, then the outer gradient flows back through it to the originals
    grads = torch.autograd.grad(-policy.log_prob(obs, actions).mean(), list(params.values()), create_graph=True)
    adapted = {k: v - 0.1 * g for (k, v), g in zip(params.items(), grads, strict=True)}
    out = policy.log_prob(obs, actions, adapted).sum()
    outer = torch.autograd.grad(out, policy.mean_net[0].weight)[0]
    assert outer.abs().sum() > 0
    with torch.no_grad():
        policy.log_std.fill_(math.log(0.01))  # below min_std: the std is floored at 0.3
    assert torch.allclose(policy.distribution(obs).scale, torch.full((5, 1), 0.3))
    with pytest.raises(RuntimeError):  # a partial dict is a bug (a mistyped name would silently use the originals)
        policy.log_prob(obs, actions, {"log_std": policy.log_std})


def test_policy_sample_reproducible_and_distributed():
    policy = GaussianPolicy(2, 3, widths=(), init_std=2.0)
    obs = torch.zeros(20000, 2)
    a = policy.sample(obs, generator=torch.Generator().manual_seed(5))
    b = policy.sample(obs, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and not a.requires_grad and a.shape == (20000, 3)
    # mean 0 (zero biases), std 2: the sample mean is within 4 standard errors (2 / sqrt(20000) = 0.014)
    assert a.mean(0).abs().max() < 0.06 and (a.std(0) - 2).abs().max() < 0.05


@pytest.mark.parametrize(
    "kwargs", [{"obs_dim": 0, "act_dim": 1}, {"widths": (0,)}, {"init_std": 0.0}, {"min_std": -1.0}]
)
def test_policy_bad_configuration(kwargs):
    with pytest.raises(ConfigError):
        GaussianPolicy(**{"obs_dim": 2, "act_dim": 1, **kwargs})


# --- the policy-gradient estimator against a closed form ---------------------------------------------------------


def test_reinforce_gradient_matches_the_linear_gaussian_closed_form(float64):
    """One-step problem: s uniform over a fixed set, a ~ N(W s + b, sigma^2), r = -(a - c.s)^2. With
    d(s) = W s + b - c.s: E[r | s] = -d(s)^2 - sigma^2, so dJ/dW = -2 E[d(s) s], dJ/db = -2 E[d(s)], and
    dJ/dlog sigma = -2 sigma^2."""
    g = torch.Generator().manual_seed(0)
    states = torch.randn(8, 3, generator=g)
    c = torch.tensor([0.5, -1.0, 2.0])
    policy = GaussianPolicy(3, 1, widths=(), init_std=0.7)
    with torch.no_grad():
        policy.mean_net[0].weight.copy_(torch.tensor([[0.2, 0.3, -0.4]]))
        policy.mean_net[0].bias.fill_(0.1)
    w, b, sigma = policy.mean_net[0].weight[0].detach(), 0.1, 0.7
    d = states @ w + b - states @ c
    true = torch.cat([-2 * (d[:, None] * states).mean(0), (-2 * d.mean()).view(1), torch.tensor([-2 * sigma**2])])

    n = 200_000
    s = states[torch.randint(0, 8, (n,), generator=g)]
    # two steps per episode, the second masked out and full of garbage: the estimate must ignore it
    obs = torch.stack([s, torch.full_like(s, 1e3)], dim=1)
    mask = torch.tensor([1.0, 0.0]).expand(n, 2)
    actions = policy.sample(obs, generator=g)
    mu = (s @ w + b)[:, None]
    rewards = torch.stack([-((actions[:, 0, 0] - s @ c) ** 2), torch.full((n,), 1e6)], dim=1)
    advantages = rewards - torch.stack([-((s @ w + b - s @ c) ** 2) - sigma**2, torch.zeros(n)], dim=1)  # E[r | s]
    loss = reinforce_loss(policy.log_prob(obs, actions), advantages, mask)
    grads = torch.autograd.grad(loss, [policy.mean_net[0].weight, policy.mean_net[0].bias, policy.log_std])
    estimate = -torch.cat([grad.reshape(-1) for grad in grads])

    # the per-sample terms of the same estimator, by hand (the score of a Gaussian), give its standard error
    a0, adv = actions[:, 0, :], advantages[:, 0:1]
    score = torch.cat([(a0 - mu) / sigma**2 * s, (a0 - mu) / sigma**2, ((a0 - mu) ** 2 / sigma**2 - 1)], dim=1)
    terms = score * adv
    se = terms.std(0) / math.sqrt(n)
    assert torch.allclose(estimate, terms.mean(0), rtol=1e-9, atol=1e-9)
    # the estimate is an unbiased mean of n i.i.d. terms: at a fixed seed it lies within 4 standard errors of the
    # truth (a wrong estimator, e.g. a sign or a missing 1/sigma^2, would be off by many), and the truth is at least
    # 10 standard errors from zero, so the comparison has power
    assert ((estimate - true).abs() < 4 * se).all(), (estimate, true, se)
    assert (true.abs() > 10 * se).all()


# --- returns, GAE, normalization by hand ---------------------------------------------------------------------------


def test_discounted_returns_and_gae_by_hand():
    rewards = torch.tensor([[1.0, 2.0, 3.0, 99.0], [1.0, 1.0, 1.0, 1.0]])
    values = torch.tensor([[0.5, 1.0, 1.5, 77.0], [1.0, 1.0, 1.0, 1.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    # gamma 0.9: R2 = 3, R1 = 2 + 0.9 * 3 = 4.7, R0 = 1 + 0.9 * 4.7 = 5.23; row 2: 3.439, 2.71, 1.9, 1
    expected_returns = torch.tensor([[5.23, 4.7, 3.0, 0.0], [3.439, 2.71, 1.9, 1.0]])
    assert torch.allclose(discounted_returns(rewards, mask, 0.9), expected_returns)
    # row 1, gamma 0.9, lam 0.8 (gamma lam = 0.72), V = 0 after the last valid step:
    #   delta0 = 1 + 0.9 * 1.0 - 0.5 = 1.4, delta1 = 2 + 0.9 * 1.5 - 1.0 = 2.35, delta2 = 3 + 0 - 1.5 = 1.5
    #   A2 = 1.5, A1 = 2.35 + 0.72 * 1.5 = 3.43, A0 = 1.4 + 0.72 * 3.43 = 3.8696
    # row 2: delta = 0.9, 0.9, 0.9, 0 (the horizon end is terminal); A3 = 0, A2 = 0.9, A1 = 0.9 + 0.72 * 0.9 = 1.548,
    #   A0 = 0.9 + 0.72 * 1.548 = 2.01456
    expected_gae = torch.tensor([[3.8696, 3.43, 1.5, 0.0], [2.01456, 1.548, 0.9, 0.0]])
    assert torch.allclose(gae(rewards, values, mask, 0.9, 0.8), expected_gae)


def test_gae_identities_at_lambda_one_and_zero(float64):
    g = torch.Generator().manual_seed(0)
    rewards, values = torch.randn(3, 4, 10, generator=g), torch.randn(3, 4, 10, generator=g)
    lengths = torch.randint(1, 11, (3, 4, 1), generator=g)
    mask = (torch.arange(10) < lengths).double()
    returns = discounted_returns(rewards, mask, 0.95)
    assert torch.allclose(gae(rewards, values, mask, 0.95, 1.0), (returns - values) * mask)
    next_values = torch.cat([values[..., 1:] * mask[..., 1:], torch.zeros(3, 4, 1)], dim=-1)
    assert torch.allclose(gae(rewards, values, mask, 0.95, 0.0), (rewards + 0.95 * next_values - values) * mask)
    # brute force of the definition R_t = sum_k gamma^k r_{t+k} over valid steps
    brute = torch.zeros_like(rewards)
    for i in range(3):
        for j in range(4):
            n = int(lengths[i, j])
            for t in range(n):
                brute[i, j, t] = sum(0.95 ** (k - t) * rewards[i, j, k] for k in range(t, n))
    assert torch.allclose(returns, brute)


def test_normalize_by_hand():
    x = torch.tensor([1.0, 2.0, 3.0, 100.0])
    mask = torch.tensor([1.0, 1.0, 1.0, 0.0])
    std = math.sqrt(2 / 3)  # the population std of 1, 2, 3
    expected = torch.tensor([-1 / std, 0.0, 1 / std, 0.0])
    assert torch.allclose(normalize(x, mask), expected, atol=1e-6)


def test_returns_bad_input():
    r, m = torch.zeros(2, 3), torch.ones(2, 3)
    with pytest.raises(ConfigError):
        discounted_returns(r, m, 1.5)
    with pytest.raises(ConfigError):
        gae(r, r, m, 0.99, -0.1)
    with pytest.raises(ValueError, match="does not match"):
        gae(r, torch.zeros(2, 4), m, 0.99, 0.95)


# --- the linear feature baseline -----------------------------------------------------------------------------------


def _features(obs: np.ndarray) -> np.ndarray:
    o = np.clip(obs, -10, 10)
    t = (np.arange(obs.shape[-2]) / 100.0)[:, None].repeat(1, 0)
    t = np.broadcast_to(t, (*obs.shape[:-1], 1))
    return np.concatenate([o, o**2, t, t**2, t**3, np.ones_like(t)], axis=-1)


def test_linear_baseline_matches_an_explicit_ridge_solve():
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(5, 30, 3)) * 4  # some beyond +-10 after the scale: the clip matters
    obs[0, 0, 0] = 50.0
    returns = rng.normal(size=(5, 30)) + obs[..., 0]
    lengths = np.array([30, 12, 25, 3, 30])
    mask = (np.arange(30)[None, :] < lengths[:, None]).astype(np.float32)
    returns_padded = np.where(mask > 0, returns, np.nan)  # garbage where masked must not matter
    fitted = linear_baseline(
        torch.tensor(obs, dtype=torch.float32), torch.tensor(returns_padded, dtype=torch.float32), torch.tensor(mask)
    )
    x = _features(obs.astype(np.float32).astype(np.float64))[mask > 0]
    y = returns.astype(np.float32).astype(np.float64)[mask > 0]
    coeffs = np.linalg.solve(x.T @ x + 1e-5 * np.eye(x.shape[1]), x.T @ y)
    expected = np.where(mask > 0, _features(obs.astype(np.float32).astype(np.float64)) @ coeffs, 0.0)
    assert fitted.dtype == torch.float32 and fitted.shape == (5, 30)
    np.testing.assert_allclose(fitted.numpy(), expected, rtol=1e-5, atol=1e-5)
    # the same ridge problem as least squares on the augmented system [X; sqrt(reg) I] w = [y; 0]
    augmented = np.concatenate([x, math.sqrt(1e-5) * np.eye(x.shape[1])])
    lstsq = np.linalg.lstsq(augmented, np.concatenate([y, np.zeros(x.shape[1])]), rcond=None)[0]
    np.testing.assert_allclose(fitted.numpy()[mask > 0], x @ lstsq, rtol=1e-5, atol=1e-5)


def test_linear_baseline_any_leading_dims_no_gradient_and_degenerate_features():
    g = torch.Generator().manual_seed(0)
    obs = torch.zeros(2, 3, 8, 2, requires_grad=True)  # constant observations: o and o^2 columns are all zero
    returns = torch.randn(2, 3, 8, generator=g)
    mask = torch.ones(2, 3, 8)
    fitted = linear_baseline(obs, returns, mask)
    assert fitted.shape == (2, 3, 8) and not fitted.requires_grad and torch.isfinite(fitted).all()
    # only the time polynomial is left: the fit is the least-squares cubic in t through the per-step returns
    t = np.arange(8) / 100
    x = np.stack([t, t**2, t**3, np.ones(8)], axis=1)
    x = np.tile(x, (6, 1))
    y = returns.reshape(6, 8).double().numpy().reshape(-1)
    coeffs = np.linalg.solve(x.T @ x + 1e-5 * np.eye(4), x.T @ y)
    np.testing.assert_allclose(fitted.reshape(6, 8).numpy()[0], x[:8] @ coeffs, rtol=1e-4, atol=1e-4)
    with pytest.raises(ConfigError):
        linear_baseline(obs, returns, mask, reg=0.0)


# --- conjugate gradient, Fisher-vector products, the Gaussian KL -------------------------------------------------


def test_conjugate_gradient_solves_an_spd_system(float64):
    g = torch.Generator().manual_seed(0)
    m = torch.randn(12, 12, generator=g)
    a = m @ m.T + 0.5 * torch.eye(12)
    b = torch.randn(12, generator=g)
    x = conjugate_gradient(lambda v: a @ v, b, 40, tol=1e-10)
    assert torch.allclose(x, torch.linalg.solve(a, b), atol=1e-8)
    few = conjugate_gradient(lambda v: a @ v, b, 2, tol=1e-10)  # steps bound the work: two steps are not converged
    assert not torch.allclose(few, torch.linalg.solve(a, b), atol=1e-3)


def _flat_params(policy: GaussianPolicy) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in policy.parameters()])


def _unflatten(policy: GaussianPolicy, flat: torch.Tensor) -> dict[str, torch.Tensor]:
    out, offset = {}, 0
    for name, p in policy.named_parameters():
        out[name] = flat[offset : offset + p.numel()].view_as(p)
        offset += p.numel()
    return out


@pytest.mark.parametrize("perturbed", [False, True])
def test_fisher_vector_product_matches_the_explicit_hessian(float64, perturbed):
    torch.manual_seed(0)
    policy = GaussianPolicy(2, 2, widths=(3,), init_std=0.8)
    obs = torch.randn(4, 5, 2)
    mask = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0]).expand(4, 5)
    old = policy.distribution(obs)
    old = Normal(old.loc.detach(), old.scale.detach())
    if perturbed:  # away from the old policy the product is still the Hessian of kl(), no longer only the Fisher
        with torch.no_grad():
            for p in policy.parameters():
                p.add_(0.3 * torch.randn_like(p))
    params = list(policy.parameters())
    fvp = fisher_vector_product(lambda: gaussian_kl(old, policy.distribution(obs), mask), params, damping=0.1)
    hessian = torch.autograd.functional.hessian(
        lambda flat: gaussian_kl(old, policy.distribution(obs, _unflatten(policy, flat)), mask), _flat_params(policy)
    )
    for seed in range(3):
        v = torch.randn(hessian.shape[0], generator=torch.Generator().manual_seed(seed))
        assert torch.allclose(fvp(v), hessian @ v + 0.1 * v, atol=1e-10)


def test_gaussian_kl_matches_the_closed_form():
    g = torch.Generator().manual_seed(0)
    m0, m1 = torch.randn(3, 6, 2, generator=g), torch.randn(3, 6, 2, generator=g)
    s0, s1 = torch.rand(3, 6, 2, generator=g) + 0.2, torch.rand(3, 6, 2, generator=g) + 0.2
    mask = (torch.arange(6) < torch.tensor([[6], [2], [4]])).float()
    m0.requires_grad_(True)
    kl = gaussian_kl(Normal(m0, s0), Normal(m1, s1), mask)
    per_step = (torch.log(s1 / s0) + (s0**2 + (m0 - m1) ** 2) / (2 * s1**2) - 0.5).sum(-1)
    expected = (per_step * mask).sum() / mask.sum()
    assert torch.allclose(kl, expected.detach(), atol=1e-6)
    assert not kl.requires_grad  # old is a constant


# --- surrogate and clipped surrogate ------------------------------------------------------------------------------


def test_surrogate_gradient_equals_reinforce_at_ratio_one():
    g = torch.Generator().manual_seed(0)
    logp = torch.randn(4, 7, generator=g).requires_grad_(True)
    adv = torch.randn(4, 7, generator=g)
    mask = (torch.arange(7) < torch.tensor([[7], [3], [5], [1]])).float()
    sur = surrogate_loss(logp, logp.detach(), adv, mask)
    rein = reinforce_loss(logp, adv, mask)
    assert torch.allclose(sur, -masked_mean(adv, mask))
    (g_sur,) = torch.autograd.grad(sur, logp)
    (g_rein,) = torch.autograd.grad(rein, logp)
    assert torch.allclose(g_sur, g_rein) and torch.allclose(g_rein, -adv * mask / mask.sum())
    clipped = clipped_surrogate_loss(logp, logp.detach(), adv, mask, clip=0.2)
    assert torch.allclose(clipped, sur)


def test_clipped_surrogate_values_and_zero_gradient_outside_the_band():
    ratios = torch.tensor([0.5, 1.5, 0.5, 1.5, 1.1, 1.0])
    adv = torch.tensor([1.0, 1.0, -1.0, -1.0, 2.0, 5.0])
    mask = torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0, 0.0])
    old = torch.zeros(6)
    logp = ratios.log().clone()
    logp[5] = 1000.0  # a padded step with an absurd ratio: no inf, no NaN
    logp.requires_grad_(True)
    loss = clipped_surrogate_loss(logp, old, adv, mask, clip=0.2)
    # min(r A, clip(r) A): 0.5 (unclipped), 1.2 (clipped), -0.8 (clipped), -1.5 (unclipped), 2.2 (inside the band)
    assert torch.allclose(loss, -torch.tensor((0.5 + 1.2 - 0.8 - 1.5 + 2.2) / 5))
    (grad,) = torch.autograd.grad(loss, logp)
    # d(-r A / 5) / dlogp = -r A / 5 where unclipped; 0 where clipping is active or masked
    assert torch.allclose(grad, torch.tensor([-0.1, 0.0, 0.0, 0.3, -0.44, 0.0]))
    with pytest.raises(ConfigError):
        clipped_surrogate_loss(logp, old, adv, mask, clip=0.0)


# --- TRPO ----------------------------------------------------------------------------------------------------------


def test_trpo_step_honours_the_trust_region_and_improves(float64):
    """The linear-Gaussian problem above, one TRPO step on the surrogate from 4000 samples: the KL between the old
    and the new policy (closed form, from the parameters) is within max_kl and both the surrogate and the true
    expected reward improve."""
    g = torch.Generator().manual_seed(1)
    states = torch.randn(8, 3, generator=g)
    c = torch.tensor([0.5, -1.0, 2.0])
    policy = GaussianPolicy(3, 1, widths=(), init_std=0.7)
    n = 4000
    s = states[torch.randint(0, 8, (n,), generator=g)].unsqueeze(1)
    mask = torch.ones(n, 1)
    actions = policy.sample(s, generator=g)
    rewards = -((actions[..., 0] - s @ c) ** 2)
    advantages = normalize(rewards - rewards.mean(), mask)
    old_logp = policy.log_prob(s, actions).detach()
    old_dist = policy.distribution(s)
    old_dist = Normal(old_dist.loc.detach(), old_dist.scale.detach())

    def expected_reward() -> float:
        w, b = policy.mean_net[0].weight[0].detach(), policy.mean_net[0].bias[0].detach()
        sigma = policy.log_std.exp()[0].detach()
        return float((-((states @ w + b - states @ c) ** 2) - sigma**2).mean())

    before_w, before_std = policy.mean_net[0].weight.detach().clone(), policy.log_std.exp().detach().clone()
    before_b, reward_before = policy.mean_net[0].bias.detach().clone(), expected_reward()
    config = TRPOConfig(max_kl=0.01)
    stats = trpo_step(
        list(policy.parameters()),
        lambda: surrogate_loss(policy.log_prob(s, actions), old_logp, advantages, mask),
        lambda: gaussian_kl(old_dist, policy.distribution(s), mask),
        config,
    )
    # the KL by closed form over the sampled states, from the old and the new parameters
    w, b, std = policy.mean_net[0].weight.detach(), policy.mean_net[0].bias.detach(), policy.log_std.exp().detach()
    m0, m1 = s[:, 0] @ before_w[0] + before_b, s[:, 0] @ w[0] + b
    kl = (torch.log(std / before_std) + (before_std**2 + (m0 - m1) ** 2) / (2 * std**2) - 0.5).mean()
    assert stats["step_fraction"] > 0
    assert float(kl) <= config.max_kl * (1 + 1e-9) and math.isclose(float(kl), stats["kl"], rel_tol=1e-9)
    assert float(kl) > 0.2 * config.max_kl  # a real step, not a vanishing one
    assert stats["loss_after"] < stats["loss_before"]
    assert expected_reward() > reward_before


def test_trpo_step_is_the_natural_gradient_step_on_a_quadratic_kl(float64):
    """A linear loss g.x and a quadratic KL 0.5 x^T M x: the full TRPO step is the closed form
    -sqrt(2 max_kl / g^T F^-1 g) F^-1 g with F = M + damping I (CG is exact in 6 dims); it lands just inside the KL
    bound (the damping keeps it from rounding over) and is accepted at once."""
    gen = torch.Generator().manual_seed(3)
    root = torch.randn(6, 6, generator=gen)
    m = root @ root.T + torch.eye(6)
    g = torch.randn(6, generator=gen)
    x = torch.nn.Parameter(torch.zeros(6))
    config = TRPOConfig(max_kl=0.02, damping=1e-4, cg_iters=20)
    stats = trpo_step([x], lambda: g @ x, lambda: 0.5 * x @ m @ x, config)
    natural = torch.linalg.solve(m + 1e-4 * torch.eye(6), g)
    expected = -math.sqrt(2 * 0.02 / float(g @ natural)) * natural
    assert stats["step_fraction"] == 1.0
    assert torch.allclose(x.detach(), expected, atol=1e-10)
    assert 0.02 * (1 - 1e-3) < stats["kl"] <= 0.02
    assert math.isclose(stats["kl"], float(0.5 * expected @ m @ expected), rel_tol=1e-9)
    assert math.isclose(stats["loss_after"], float(g @ expected), rel_tol=1e-9) and stats["loss_before"] == 0.0


def test_trpo_step_restores_the_parameters_when_no_step_is_accepted(float64):
    torch.manual_seed(0)
    policy = GaussianPolicy(2, 1, widths=(3,))
    params = list(policy.parameters())
    start = [p.detach().clone() for p in params]

    def offset() -> torch.Tensor:
        return torch.cat([(p - p0).reshape(-1) for p, p0 in zip(params, start, strict=True)])

    # a descent direction at the start, but a curvature so steep that every step on the line search overshoots
    def loss() -> torch.Tensor:
        return 1e-3 * offset().sum() + 1e6 * (offset() ** 2).sum()

    def kl() -> torch.Tensor:
        return 0.5 * (offset() ** 2).sum()

    stats = trpo_step(params, loss, kl, TRPOConfig())
    assert stats["step_fraction"] == 0.0 and stats["loss_after"] == stats["loss_before"]
    assert all(torch.equal(p, p0) for p, p0 in zip(params, start, strict=True))

    # the loss always falls along the step, but the KL is far over the bound for every step
    def steep_kl() -> torch.Tensor:
        return 0.5 * (offset() ** 2).sum() + 1e12 * (offset() ** 2).sum() ** 2

    stats = trpo_step(params, lambda: offset().sum(), steep_kl, TRPOConfig())
    assert stats["step_fraction"] == 0.0
    assert all(torch.equal(p, p0) for p, p0 in zip(params, start, strict=True))


@pytest.mark.parametrize(
    "kwargs", [{"max_kl": 0.0}, {"damping": -1.0}, {"cg_iters": 0}, {"backtrack_ratio": 1.0}, {"max_backtracks": 0}]
)
def test_trpo_bad_configuration(kwargs):
    with pytest.raises(ConfigError):
        TRPOConfig(**kwargs)
