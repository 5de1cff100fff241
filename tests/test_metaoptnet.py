"""MetaOptNet: the ridge and SVM heads against independent solvers, their gradients, and real learning."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import predict_and_adapt
from scipy.optimize import minimize
from torch import Tensor

from polyskill.data import EpisodeSampler
from polyskill.eval import few_shot
from polyskill.meta.metaoptnet import MetaOptNet, smoothed_cross_entropy
from polyskill.meta.ridge import ridge_head
from polyskill.meta.svm import project_rows, svm_dual, svm_head
from polyskill.nn import Conv4
from polyskill.train import fit

DOUBLE = torch.float64


# -- ridge ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("samples, dim", [(6, 16), (40, 8)])  # the dual (S < D) and the primal (S > D) forms
def test_ridge_head_solves_the_normal_equations(samples, dim):
    torch.manual_seed(0)
    x, labels = torch.randn(3, samples, dim, dtype=DOUBLE), torch.randint(0, 4, (3, samples))
    y = F.one_hot(labels, 4).to(DOUBLE)
    expected = torch.linalg.solve(x.transpose(1, 2) @ x + 0.7 * torch.eye(dim, dtype=DOUBLE), x.transpose(1, 2) @ y)
    assert torch.allclose(ridge_head(x, labels, 4, 0.7), expected, atol=1e-10)
    assert torch.allclose(ridge_head(x.float(), labels, 4, 0.7), expected.float(), atol=1e-4)


@pytest.mark.parametrize("samples, dim", [(5, 7), (9, 4)])
def test_ridge_head_gradient_matches_finite_differences(samples, dim):
    torch.manual_seed(0)
    x = torch.randn(2, samples, dim, dtype=DOUBLE, requires_grad=True)
    lam = torch.tensor(0.5, dtype=DOUBLE, requires_grad=True)
    labels = torch.randint(0, 3, (2, samples))
    assert torch.autograd.gradcheck(lambda x, lam: ridge_head(x, labels, 3, lam), (x, lam))


# -- the Crammer-Singer SVM -----------------------------------------------------------------------------------
def primal_objective(
    x: np.ndarray, labels: np.ndarray, C: float, eps: float, w: np.ndarray, extra: np.ndarray
) -> float:
    """1/2 ||W||^2 + 1/2 ||V||^2 + C sum_i max(0, 1 + max_{m != y_i} s_im - s_iy_i), scores s = x W + sqrt(eps) V:
    the Crammer-Singer SVM on features [x_i, sqrt(eps) e_i] (each point with a private feature)."""
    rows = np.arange(len(labels))
    scores = x @ w + np.sqrt(eps) * extra
    violations = 1 + scores - scores[rows, labels][:, None]
    violations[rows, labels] = 0
    return 0.5 * (w**2).sum() + 0.5 * (extra**2).sum() + C * violations.max(1).clip(min=0).sum()


def primal_svm(x: np.ndarray, labels: np.ndarray, way: int, C: float, eps: float) -> tuple[np.ndarray, float]:
    """W [D, N] and the optimal value of that primal, as a QP in (W, V, slacks) solved by SLSQP."""
    samples, dim = x.shape
    sizes = (dim * way, samples * way, samples)

    def split(v):
        w, rest = v[: sizes[0]].reshape(dim, way), v[sizes[0] :]
        return w, rest[: sizes[1]].reshape(samples, way), rest[sizes[1] :]

    def margins(v):
        w, extra, slack = split(v)
        scores = x @ w + np.sqrt(eps) * extra
        true = scores[np.arange(samples), labels][:, None]
        other = np.ones((samples, way), bool)
        other[np.arange(samples), labels] = False
        return np.concatenate([(true - scores - 1 + slack[:, None])[other], slack])

    def objective(v):
        w, extra, slack = split(v)
        return 0.5 * (w**2).sum() + 0.5 * (extra**2).sum() + C * slack.sum()

    def gradient(v):
        return np.concatenate([v[: sizes[0] + sizes[1]], np.full(samples, C)])

    offset = margins(np.zeros(sum(sizes)))
    jacobian = np.stack([margins(e) - offset for e in np.eye(sum(sizes))], 1)  # the constraints are linear
    start = np.concatenate([np.zeros(sizes[0] + sizes[1]), np.ones(samples)])  # W = V = 0, slack 1: feasible
    result = minimize(
        objective,
        start,
        jac=gradient,
        method="SLSQP",
        constraints=[{"type": "ineq", "fun": margins, "jac": lambda v: jacobian}],
        options={"ftol": 1e-12, "maxiter": 2000},
    )
    # status 8 ("positive directional derivative") is SLSQP stalling at machine precision near the optimum;
    # accept it when the point is feasible: the comparison with our head then decides
    assert result.success or (result.status == 8 and margins(result.x).min() > -1e-9), result.message
    return split(result.x)[0], result.fun


@pytest.mark.parametrize(
    "samples, way, dim, C, eps", [(6, 3, 4, 0.1, 1.0), (6, 3, 8, 1.0, 0.0), (4, 4, 3, 0.5, 0.3), (9, 3, 2, 5.0, 0.5)]
)
def test_svm_head_matches_an_independent_primal_solver(samples, way, dim, C, eps):
    """The dual solution, mapped to the primal, is at least as good as SLSQP's primal optimum, and close to it."""
    torch.manual_seed(samples + dim)
    x, labels = torch.randn(2, samples, dim, dtype=DOUBLE), torch.randint(0, way, (2, samples))
    labels[:, :way] = torch.arange(way)  # every class present (the 4-sample case is 1-shot, S = way)
    alpha = svm_dual(x @ x.transpose(1, 2) + eps * torch.eye(samples, dtype=DOUBLE), labels, way, C=C)
    weights = svm_head(x, labels, way, C=C, eps=eps)
    assert torch.allclose(weights, x.transpose(1, 2) @ alpha, atol=1e-12)
    for b in range(2):
        expected, optimum = primal_svm(x[b].numpy(), labels[b].numpy(), way, C, eps)
        value = primal_objective(
            x[b].numpy(), labels[b].numpy(), C, eps, weights[b].numpy(), np.sqrt(eps) * alpha[b].numpy()
        )
        # SLSQP may end a hair infeasible, so a hair below; the last digits of both depend on the BLAS thread
        # count (at one thread the C = 5 case is 1.4e-9 above, relatively), hence 1e-8
        assert value <= optimum * (1 + 1e-8)
        assert np.abs(weights[b].numpy() - expected).max() < 1e-6


def test_svm_separates_a_separable_set_with_margin_one():
    """Hard margin (large C, no eps): every support point beats every other class by >= 1, the closest by 1."""
    torch.manual_seed(0)
    centres = 3 * torch.randn(4, 16, dtype=DOUBLE)
    labels = torch.arange(4).repeat_interleave(3).expand(2, -1)
    x = centres[labels] + 0.5 * torch.randn(2, 12, 16, dtype=DOUBLE)
    kernel = x @ x.transpose(1, 2)
    alpha = svm_dual(kernel, labels, 4, C=1e4)
    assert (kkt_violation(kernel, labels, 4, 1e4, alpha) < 1e-9).all()
    assert (alpha < 1e4 - 1).all()  # no point reaches C: the margin is hard
    scores = x @ svm_head(x, labels, 4, C=1e4, eps=0.0)
    true = scores.gather(-1, labels.unsqueeze(-1))
    margins = (true - scores)[F.one_hot(labels, 4) == 0].view(2, -1)
    assert margins.min() > 1 - 1e-7
    assert torch.allclose(margins.amin(1), torch.ones(2, dtype=DOUBLE), atol=1e-7)


def kkt_violation(kernel: Tensor, labels: Tensor, way: int, C: float, alpha: Tensor) -> Tensor:
    """Largest violation of the dual's KKT conditions, per task: feasibility, and a multiplier mu_i per row
    with gradient + mu_i = 0 on the coordinates below their bound and <= 0 on those at it."""
    onehot = F.one_hot(labels, way).to(alpha.dtype)
    gradient = kernel @ alpha - onehot
    below = alpha < C * onehot - 1e-12
    mu = -(gradient * below).sum(-1, keepdim=True) / below.sum(-1, keepdim=True)
    stationarity = torch.where(below, (gradient + mu).abs(), (gradient + mu).clamp_min(0))
    feasibility = torch.cat([alpha.sum(-1).abs(), (alpha - C * onehot).clamp_min(0).flatten(1)], 1)
    return torch.maximum(stationarity.flatten(1).amax(1), feasibility.amax(1))


@pytest.mark.parametrize("way, shot", [(5, 5), (20, 1)])
def test_svm_solver_converges_in_few_steps_on_embedding_like_problems(way, shot):
    """Correlated non-negative features (like ReLU embeddings): optimal to rounding within 20 steps (it takes
    12 to 15 here; an interior-point step with a wrong Newton direction takes more than 20)."""
    torch.manual_seed(0)
    x = 2 * torch.randn(8, way * shot, 64, dtype=DOUBLE).relu() + torch.randn(8, 1, 64, dtype=DOUBLE).relu()
    labels = torch.arange(way).repeat_interleave(shot).expand(8, -1)
    kernel = x @ x.transpose(1, 2) + torch.eye(way * shot, dtype=DOUBLE)
    for C in (0.1, 1.0, 10.0):
        alpha = svm_dual(kernel, labels, way, C=C, iterations=20)
        assert (kkt_violation(kernel, labels, way, C, alpha) < 1e-9).all()


def test_svm_solver_survives_an_unreachable_tolerance():
    """Run to the end (complementarity near underflow) without dividing by zero, and still optimal."""
    torch.manual_seed(0)
    x = 2 * torch.randn(8, 4, 64, dtype=DOUBLE).relu() + torch.randn(8, 1, 64, dtype=DOUBLE).relu()
    labels = torch.arange(4).expand(8, -1)
    kernel = x @ x.transpose(1, 2) + torch.eye(4, dtype=DOUBLE)
    alpha = svm_dual(kernel, labels, 4, C=0.1, iterations=400, tol=1e-300)
    assert (kkt_violation(kernel, labels, 4, 0.1, alpha) < 1e-9).all()


def test_svm_gradient_matches_finite_differences():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 5, dtype=DOUBLE, requires_grad=True)
    labels = torch.tensor([[0, 0, 1, 1, 2, 2, 3, 3], [0, 1, 2, 3, 0, 1, 2, 3]])
    kernel = x.detach() @ x.detach().transpose(1, 2) + 0.2 * torch.eye(8, dtype=DOUBLE)
    alpha = svm_dual(kernel, labels, 4, C=0.3)
    at_cost = alpha.gather(-1, labels.unsqueeze(-1)) > 0.3 - 1e-9
    assert at_cost.any() and not at_cost.all()  # both kinds of active set are differentiated through
    assert torch.autograd.gradcheck(lambda x: svm_head(x, labels, 4, C=0.3, eps=0.2), (x,))


def test_svm_dual_satisfies_its_constraints_and_duplicates_share_their_weights():
    torch.manual_seed(0)
    x = torch.randn(1, 6, 3, dtype=DOUBLE)
    x[0, 5] = x[0, 4]  # a duplicate point, and S > D: the kernel is singular without eps
    labels = torch.tensor([[0, 1, 2, 0, 1, 1]])
    kernel = x @ x.transpose(1, 2)
    alpha = svm_dual(kernel + 0.5 * torch.eye(6, dtype=DOUBLE), labels, 3, C=0.2)
    assert torch.allclose(alpha.sum(-1), torch.zeros(1, 6, dtype=DOUBLE), atol=1e-12)
    assert (alpha <= 0.2 * F.one_hot(labels, 3) + 1e-12).all()
    assert torch.allclose(alpha[0, 4], alpha[0, 5], atol=1e-10)
    with pytest.raises(ValueError, match="eps > 0"):
        svm_dual(kernel, labels, 3, C=0.2)


def test_row_projection_matches_bisection():
    torch.manual_seed(0)
    v, labels = 2 * torch.randn(50, 6, dtype=DOUBLE), torch.randint(0, 6, (50,))
    onehot = F.one_hot(labels, 6).to(DOUBLE)
    upper = 0.7 * onehot
    projected, free = project_rows(v, onehot, 0.7)
    low, high = (v - upper).amin(-1) - 1, (v - upper).amax(-1) + 1  # the sum of min(v - t, upper) falls in t
    for _ in range(200):
        mid = (low + high) / 2
        positive = torch.minimum(v - mid.unsqueeze(-1), upper).sum(-1) > 0
        low, high = torch.where(positive, mid, low), torch.where(positive, high, mid)
    assert torch.allclose(projected, torch.minimum(v - low.unsqueeze(-1), upper), atol=1e-10)
    assert torch.equal(free, projected < upper)


# -- the algorithm --------------------------------------------------------------------------------------------
def test_options_are_validated():
    for options in (
        {"head": "lasso"},
        {"C": 0.0},
        {"lam": -1.0},
        {"label_smoothing": 1.0},
        {"svm_eps": -1.0},
        {"svm_iterations": 0},
    ):
        with pytest.raises(ValueError, match="must be"):
            MetaOptNet(Conv4(hidden=4), **options)


@pytest.mark.parametrize("head", ["svm", "ridge"])
def test_predict_matches_adapt_per_task(omniglot_val, head):
    torch.manual_seed(0)
    algo = MetaOptNet(Conv4(hidden=16), head=head).eval()
    batch = EpisodeSampler(omniglot_val, 5, 2, 3, seed=0).sample(3)
    batched, per_task = predict_and_adapt(algo, batch)
    assert batched.shape == (3, 15, 5)
    assert torch.allclose(batched, per_task, atol=1e-4)


def test_meta_loss_is_cross_entropy_of_the_scaled_ridge_logits(omniglot_val):
    torch.manual_seed(0)
    algo = MetaOptNet(Conv4(hidden=8), head="ridge", lam=2.0, scale=3.0).eval()
    batch = EpisodeSampler(omniglot_val, 4, 2, 2, seed=0).sample(2)
    loss, metrics = algo.meta_loss(batch)
    z_s = algo.backbone(batch.support_x.flatten(0, 1)).view(2, 8, -1).double()
    z_q = algo.backbone(batch.query_x.flatten(0, 1)).view(2, 8, -1).double()
    y = F.one_hot(batch.support_y, 4).double()
    weights = torch.linalg.solve(
        z_s.transpose(1, 2) @ z_s + 2.0 * torch.eye(z_s.shape[2], dtype=DOUBLE), z_s.transpose(1, 2) @ y
    )
    expected = F.cross_entropy(3.0 * (z_q @ weights).flatten(0, 1), batch.query_y.flatten())
    assert abs(loss.item() - expected.item()) < 1e-4 and 0 <= metrics["acc"] <= 1


def test_label_smoothing_spreads_over_the_other_classes():
    logits, labels = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]]), torch.tensor([0, 1])
    targets = torch.tensor([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1]])
    expected = -(targets * logits.log_softmax(-1)).sum(-1).mean()
    assert torch.allclose(smoothed_cross_entropy(logits, labels, 0.2), expected)
    assert torch.allclose(smoothed_cross_entropy(logits, labels, 0.0), F.cross_entropy(logits, labels))


@pytest.mark.parametrize("head", ["svm", "ridge"])
def test_the_scale_learns_and_bf16_autocast_runs(omniglot_val, head):
    torch.manual_seed(0)
    batch = EpisodeSampler(omniglot_val, 5, 1, 2, seed=0).sample(2)
    algo = MetaOptNet(Conv4(hidden=8), head=head)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _ = algo.meta_loss(batch)
    loss.backward()
    assert torch.isfinite(loss) and algo.log_scale.grad is not None and algo.log_scale.grad.abs() > 0
    fixed = MetaOptNet(Conv4(hidden=8), head=head, learn_scale=False)
    assert "log_scale" not in dict(fixed.named_parameters()) and "log_scale" in fixed.state_dict()


def test_the_scale_is_learned_as_its_logarithm_and_old_checkpoints_load():
    """One Adam step of 0.1 moves the scale by a factor e^0.1 (it would move a scale learned as itself by 0.1), and
    a state dict that stored the scale itself loads into the logarithm."""
    algo = MetaOptNet(Conv4(hidden=8), head="ridge", scale=5.0)
    assert torch.isclose(algo.scale, torch.tensor(5.0))
    optimizer = torch.optim.Adam([algo.log_scale], lr=0.1)
    (-algo.scale).backward()  # a loss that wants a larger scale
    optimizer.step()
    assert torch.isclose(algo.scale, torch.tensor(5.0 * math.exp(0.1)), rtol=1e-5)
    old = {k: v for k, v in algo.state_dict().items() if k != "log_scale"} | {"scale": torch.tensor(7.0)}
    fresh = MetaOptNet(Conv4(hidden=8), head="ridge")
    fresh.load_state_dict(old)
    assert torch.isclose(fresh.scale, torch.tensor(7.0))


@pytest.mark.parametrize("head", ["svm", "ridge"])
def test_metaoptnet_learns_omniglot_well_above_chance(omniglot_train, omniglot_val, head):
    """A short real training run on a subset of the train classes, judged on unseen validation characters."""
    torch.manual_seed(0)
    subset = omniglot_train.subset(range(0, 4112, 4))  # 1028 classes
    algo = MetaOptNet(Conv4(hidden=32), head=head)
    untrained = few_shot(algo, omniglot_val, way=5, shot=1, query=5, episodes=100, seed=0).accuracy
    fit(algo, EpisodeSampler(subset, way=20, shot=1, query=5, seed=0), steps=100, lr=2e-3, progress=False)
    trained = few_shot(algo, omniglot_val, way=5, shot=1, query=5, episodes=100, seed=0)
    assert trained.accuracy > 0.75, trained  # chance is 20%; observed 0.799 svm, 0.864 ridge on 2026-12-03
    assert trained.accuracy > untrained + 0.1
