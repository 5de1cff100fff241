"""iMAML against independent computations: the closed-form proximal solution of linear regression differentiated by
autograd, an explicit Hessian and a dense solve, backpropagation through a long unrolled proximal inner loop; the
conjugate-gradient solver against torch.linalg.solve; the inner loop's graph-free memory; learning a recipe."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call

from polyskill.data.episodes import TaskBatch
from polyskill.errors import ConfigError
from polyskill.meta import ALGORITHMS, IMAML, MAML
from polyskill.meta.conjugate_gradient import conjugate_gradient, flatten, unflatten
from polyskill.meta.inner_loop import task_loss
from polyskill.nn import MLP, Conv4
from polyskill.recipes import kind_of, load


def regression_batch(tasks: int = 3, dim: int = 2, support: int = 8, query: int = 6, seed: int = 0) -> TaskBatch:
    """Noisy tasks y = sin(x . w) (a tanh network cannot fit them exactly, so query gradients do not vanish)."""
    g = torch.Generator().manual_seed(seed)
    xs, xq = torch.randn(tasks, support, dim, generator=g), torch.randn(tasks, query, dim, generator=g)
    w = torch.randn(tasks, dim, 1, generator=g)
    ys = torch.sin(xs @ w).squeeze(-1) + 0.1 * torch.randn(tasks, support, generator=g)
    return TaskBatch(xs, ys, xq, torch.sin(xq @ w).squeeze(-1), way=1)


def tanh_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1))


def implicit_gradient(algo: IMAML, batch: TaskBatch) -> torch.Tensor:
    """The learner's meta-gradient (through meta_backward, as the trainer takes it), flattened."""
    algo.zero_grad(set_to_none=True)
    algo.meta_backward(batch)
    return torch.cat([p.grad.reshape(-1) for p in algo.parameters()])


def task_loss_of(model: nn.Module, flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The loss of `model` with its parameters taken from the vector `flat`."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    params = dict(zip(names, unflatten(flat, shapes, batch_dims=0), strict=True))
    return task_loss(functional_call(model, params, (x,)), y)


# -- the meta-gradient ------------------------------------------------------------------------------


def test_meta_gradient_is_the_derivative_of_the_closed_form_proximal_solution(float64):
    """Linear regression: phi*(theta) = (2 X'X/n + lam I)^-1 (2 X'y/n + lam theta) exactly; differentiating the
    query loss at phi*(theta) by autograd gives the true meta-gradient, which CG reaches in as many steps as there
    are parameters, its error falling at every step."""
    lam, batch = 1.0, regression_batch(dim=3)
    model = nn.Linear(3, 1)
    theta = torch.cat([model.weight.detach().reshape(-1), model.bias.detach()]).requires_grad_()
    meta = 0.0
    for b in range(len(batch)):
        xs = torch.cat([batch.support_x[b], torch.ones(8, 1)], 1)
        xq = torch.cat([batch.query_x[b], torch.ones(6, 1)], 1)
        ys = batch.support_y[b]
        phi = torch.linalg.solve(2 * xs.T @ xs / 8 + lam * torch.eye(4), 2 * xs.T @ ys / 8 + lam * theta)
        meta = meta + ((xq @ phi - batch.query_y[b]) ** 2).mean() / len(batch)
    (expected,) = torch.autograd.grad(meta, theta)
    errors = []
    for cg_steps in (1, 2, 3, 4):
        algo = IMAML(model, inner_lr=0.2, inner_steps=150, lam=lam, cg_steps=cg_steps)
        errors.append(float((implicit_gradient(algo, batch) - expected).norm() / expected.norm()))
    assert errors[-1] < 1e-9, errors  # exact after 4 CG steps (4 parameters): observed 2e-16
    assert errors[0] > errors[1] > errors[2] > errors[3], errors  # observed 0.33, 0.13, 0.016, 2e-16


@pytest.mark.parametrize("damping", [0.0, 0.5])
def test_meta_gradient_solves_the_implicit_system_with_the_explicit_hessian(float64, damping):
    """A tanh network: phi* is a stationary point of the proximal objective; (I + (H + damping I)/lam)^-1
    grad L_query(phi*), with H from torch.autograd.functional.hessian and a dense solve, is what CG converges to."""
    lam, batch = 2.0, regression_batch()
    model = tanh_net()
    algo = IMAML(model, inner_lr=0.1, inner_steps=150, lam=lam, cg_steps=17, cg_damping=damping)
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    phi, _ = algo.solve(batch.support_x, batch.support_y, 150)
    phi_flat = flatten(list(phi.values()))
    expected = torch.zeros(17)
    for b in range(len(batch)):
        xs, ys = batch.support_x[b], batch.support_y[b]
        point = phi_flat[b].clone().requires_grad_()
        (g,) = torch.autograd.grad(task_loss_of(model, point, xs, ys) + lam / 2 * (point - theta).pow(2).sum(), point)
        assert g.norm() < 1e-10  # the inner problem is solved
        hessian = torch.autograd.functional.hessian(lambda p, xs=xs, ys=ys: task_loss_of(model, p, xs, ys), phi_flat[b])
        system = torch.eye(17) + (hessian + damping * torch.eye(17)) / lam
        assert torch.linalg.eigvalsh(system).min() > 0.1  # positive definite: CG's premise holds here
        (query,) = torch.autograd.grad(task_loss_of(model, point, batch.query_x[b], batch.query_y[b]), point)
        expected += torch.linalg.solve(system, query) / len(batch)
    got = implicit_gradient(algo, batch)
    torch.testing.assert_close(got, expected, rtol=1e-8, atol=1e-10)
    if damping == 0:
        errors = []
        for cg_steps in (1, 3, 9):
            algo.cg_steps = cg_steps
            errors.append(float((implicit_gradient(algo, batch) - expected).norm() / expected.norm()))
        exact = float((got - expected).norm() / expected.norm())
        assert errors[0] > errors[1] > errors[2] > exact, errors  # observed 0.30, 0.026, 1.7e-6 and 2e-16 (17 steps)


def test_implicit_gradient_equals_backprop_through_a_converged_unrolled_inner_loop(float64):
    """Second-order MAML through many small steps of the proximal objective, written out here, converges to the
    implicit gradient; after three steps it does not (the comparison can fail)."""
    lam, alpha, batch = 2.0, 0.1, regression_batch(seed=1)
    model = tanh_net()
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).requires_grad_()

    def unrolled(steps: int) -> torch.Tensor:
        meta = 0.0
        for b in range(len(batch)):
            phi = theta
            for _ in range(steps):
                loss = task_loss_of(model, phi, batch.support_x[b], batch.support_y[b])
                (g,) = torch.autograd.grad(loss, phi, create_graph=True)
                phi = phi - alpha * (g + lam * (phi - theta))
            meta = meta + task_loss_of(model, phi, batch.query_x[b], batch.query_y[b]) / len(batch)
        return torch.autograd.grad(meta, theta)[0]

    implicit = implicit_gradient(IMAML(model, alpha, 200, lam=lam, cg_steps=17), batch)
    assert (implicit - unrolled(200)).norm() / implicit.norm() < 1e-8  # observed 6e-13
    assert (implicit - unrolled(3)).norm() / implicit.norm() > 0.1  # observed 0.18


# -- the solver ---------------------------------------------------------------------------------------


def test_conjugate_gradient_matches_a_dense_solve(float64):
    g = torch.Generator().manual_seed(0)
    m = torch.randn(3, 6, 6, generator=g)
    a = m @ m.transpose(1, 2) + 0.5 * torch.eye(6)  # three SPD systems
    b = torch.randn(3, 6, generator=g)
    expected = torch.linalg.solve(a, b)

    def matvec(v):
        return (a @ v.unsqueeze(-1)).squeeze(-1)

    torch.testing.assert_close(conjugate_gradient(matvec, b, 6), expected, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(conjugate_gradient(matvec, b, 6, x0=torch.ones(3, 6)), expected, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(conjugate_gradient(matvec, b, 20), expected, rtol=1e-8, atol=1e-10)  # stays put
    one = conjugate_gradient(matvec, b, 1)  # one step: the exact line search along b
    step = (b * b).sum(-1, keepdim=True) / (b * matvec(b)).sum(-1, keepdim=True)
    torch.testing.assert_close(one, step * b)
    with pytest.raises(ValueError, match="steps >= 1"):
        conjugate_gradient(matvec, b, 0)
    parts = [torch.randn(3, 2, 2), torch.randn(3, 5)]
    back = unflatten(flatten(parts), [p.shape[1:] for p in parts])
    assert all(torch.equal(x, y) for x, y in zip(parts, back, strict=True))


# -- memory ---------------------------------------------------------------------------------------------


def peak_saved_bytes(run) -> int:
    """The most bytes held at once by tensors autograd saved for a backward pass while `run()` ran."""
    state = {"live": 0, "peak": 0}

    class Held:
        def __init__(self, tensor: torch.Tensor) -> None:
            self.tensor, self.size = tensor, tensor.numel() * tensor.element_size()
            state["live"] += self.size
            state["peak"] = max(state["peak"], state["live"])

        def __del__(self) -> None:
            state["live"] -= self.size

    with torch.autograd.graph.saved_tensors_hooks(Held, lambda held: held.tensor):
        run()
    return state["peak"]


def test_the_inner_loop_keeps_no_graph_so_memory_does_not_grow_with_inner_steps():
    batch = regression_batch(tasks=4, dim=1, support=10, query=10)
    torch.manual_seed(0)
    algo = IMAML(MLP([1, 40, 40, 1]), inner_lr=0.01, inner_steps=2, vectorize="loop")
    phi, batched = algo.solve(batch.support_x, batch.support_y, 5)
    assert batched == set(phi) and all(t.grad_fn is None and not t.requires_grad for t in phi.values())
    peaks = {}
    for steps in (1, 8):
        imaml = IMAML(MLP([1, 40, 40, 1]), inner_lr=0.01, inner_steps=steps, vectorize="loop")
        maml = MAML(MLP([1, 40, 40, 1]), inner_lr=0.01, inner_steps=steps, vectorize="loop")
        peaks[steps] = (
            peak_saved_bytes(lambda a=imaml: a.meta_backward(batch)),
            peak_saved_bytes(lambda a=maml: a.meta_backward(batch)),
        )
    assert peaks[1][0] == peaks[8][0] > 0, peaks  # iMAML: one support-gradient graph whatever the steps
    assert peaks[8][1] > 4 * peaks[1][1], peaks  # second-order MAML keeps every step's graph


# -- learning and recipes -----------------------------------------------------------------------------


def test_batch_norm_hessian_products_agree_between_the_fused_kernel_and_elementary_ops(float64):
    """Conv4's per-task batch norm: a loop over tasks runs PyTorch's fused kernel, vmap the engine's elementary ops;
    the implicit gradients (double backward through batch norm) must be the same."""
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(3).repeat_interleave(2).repeat(2, 1)
    batch = TaskBatch(
        torch.randn(2, 6, 1, 16, 16, generator=g), labels, torch.randn(2, 6, 1, 16, 16, generator=g), labels, 3
    )
    grads = []
    for vectorize in ("loop", "vmap"):
        torch.manual_seed(0)
        algo = IMAML(Conv4(hidden=4, image_size=16, out_features=3), inner_steps=1, cg_steps=2, vectorize=vectorize)
        grads.append(implicit_gradient(algo, batch))
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-9, atol=1e-12)
    assert grads[0].norm() > 0


def test_predict_and_adapt_agree_with_per_task_batch_norm():
    from conftest import predict_and_adapt

    torch.manual_seed(0)
    algo = IMAML(Conv4(hidden=4, image_size=16, out_features=3), inner_steps=3).eval()
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(3).repeat_interleave(2).repeat(2, 1)
    batch = TaskBatch(
        torch.randn(2, 6, 1, 16, 16, generator=g), labels, torch.randn(2, 6, 1, 16, 16, generator=g), labels, 3
    )
    batched, per_task = predict_and_adapt(algo, batch)
    torch.testing.assert_close(batched, per_task, rtol=1e-5, atol=1e-5)
    assert ALGORITHMS["imaml"] is IMAML


def test_the_sinusoid_recipe_learns_to_adapt(tmp_path):
    """The shipped recipe, shortened (120 meta-steps of 8 tasks, 8 inner steps), trained and tested in-process:
    after 8 proximal steps the query MSE must be well under the unadapted network's."""
    from polyskill.recipes.runner import train_run

    recipe = load(
        "sinusoid-imaml",
        [
            "train.steps=120",
            "train.meta_batch=8",
            "train.lr=0.005",
            "train.log_every=1000",
            "algo.inner_steps=8",
            "eval.steps=[0, 8]",
            "eval.episodes=100",
            "eval.query=20",
        ],
    )
    summary = train_run(recipe, tmp_path / "run", progress=False, echo=lambda _: None)
    mse = {result["steps"]: result["mse"] for result in summary["test"]}
    # a sinusoid's variance is A^2/2 (about 4.2 on average): the unadapted network cannot do much better
    assert mse[0] > 2.5, mse  # observed 3.073 on 2026-12-03
    assert mse[8] < 0.5 * mse[0], mse  # observed 1.306 on 2026-12-03


@pytest.mark.parametrize(
    "override, message",
    [
        ("algo.lam=0", "lam (the proximal regularisation) must be a finite number > 0, got 0"),
        ("algo.lam=-1", "must be a finite number > 0"),
        ("algo.cg_steps=0", "cg_steps must be an integer >= 1, got 0"),
        ("algo.cg_damping=-0.5", "cg_damping must be a finite number >= 0"),
        ("algo.cg_damping=1e300", "cg_damping must be <= 1e+06 * lam"),
        ("algo.inner_lr=0.5", "inner_lr * lam must be < 2"),
    ],
)
def test_bad_options_are_one_config_error_line(override, message):
    recipe = load("sinusoid-imaml", [override])
    with pytest.raises(ConfigError) as err:
        kind_of(recipe).model(recipe)
    assert message in str(err.value) and "\n" not in str(err.value)
