"""The inner-loop engine and MAML's family against independent computations: a closed form, finite
differences, per-task autograd loops, and Reptile's reduction to SGD."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from polyskill.data.episodes import TaskBatch
from polyskill.meta import MAML, InnerLoop, Reptile
from polyskill.meta.inner_loop import TaskBatchNorm
from polyskill.meta.reptile import minibatches
from polyskill.nn import MLP, Conv4


def regression_batch(tasks: int = 3, dim: int = 4, support: int = 6, query: int = 5, seed: int = 0) -> TaskBatch:
    g = torch.Generator().manual_seed(seed)
    xs, xq = torch.randn(tasks, support, dim, generator=g), torch.randn(tasks, query, dim, generator=g)
    w = torch.randn(tasks, dim, 1, generator=g)
    return TaskBatch(
        xs, (xs @ w).squeeze(-1) + 0.1 * torch.randn(tasks, support, generator=g), xq, (xq @ w).squeeze(-1), way=1
    )


def image_batch(
    tasks: int = 3, way: int = 3, shot: int = 2, query: int = 2, side: int = 16, seed: int = 0
) -> TaskBatch:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(way)
    return TaskBatch(
        torch.randn(tasks, way * shot, 1, side, side, generator=g),
        labels.repeat_interleave(shot).repeat(tasks, 1),
        torch.randn(tasks, way * query, 1, side, side, generator=g),
        labels.repeat_interleave(query).repeat(tasks, 1),
        way,
    )


def gradients(algo: nn.Module, backward) -> dict[str, torch.Tensor]:
    algo.zero_grad(set_to_none=True)
    backward()
    return {n: p.grad.clone() for n, p in algo.named_parameters() if p.grad is not None}


def meta_loss_gradients(algo, batch):
    return gradients(algo, lambda: algo.meta_loss(batch)[0].backward())


def meta_backward_gradients(algo, batch):
    return gradients(algo, lambda: algo.meta_backward(batch))


@pytest.mark.parametrize("lean", [False, True])
def test_second_order_maml_matches_the_closed_form_for_linear_regression(float64, lean):
    batch, lr = regression_batch(), 0.1
    algo = MAML(nn.Linear(4, 1, bias=False), inner_lr=lr, query_pass="loop" if lean else "vmap")
    got = (meta_backward_gradients if lean else meta_loss_gradients)(algo, batch)["inner.model.weight"]
    w = algo.backbone.weight.detach().reshape(-1, 1)
    expected = torch.zeros_like(w)
    for b in range(len(batch)):
        xs, ys, xq, yq = batch.support_x[b], batch.support_y[b, :, None], batch.query_x[b], batch.query_y[b, :, None]
        n, m = len(xs), len(xq)
        adapted = w - lr * 2 / n * xs.T @ (xs @ w - ys)
        jacobian = torch.eye(4) - lr * 2 / n * xs.T @ xs  # d adapted / d w
        expected += jacobian.T @ (2 / m * xq.T @ (xq @ adapted - yq)) / len(batch)
    torch.testing.assert_close(got.reshape(-1, 1), expected, rtol=1e-10, atol=1e-12)


def smooth_net() -> nn.Module:
    """Convolution, batch norm and tanh: smooth, so finite differences are exact to O(eps^2)."""
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.Tanh(),
        nn.Conv2d(4, 4, 3, stride=2),
        nn.BatchNorm2d(4),
        nn.Tanh(),
        nn.Flatten(),
        nn.Linear(4 * 7 * 7, 3),
    )


def maml_objective(
    algo: MAML, batch: TaskBatch, params: dict[str, torch.Tensor], steps: int, create_graph: bool = False
) -> torch.Tensor:
    """The MAML objective by a plain per-task loop of autograd.grad calls (no vmap, no torch.func.grad)."""
    total = torch.zeros(())
    model = algo.backbone
    for b in range(len(batch)):
        current = dict(params)
        for _ in range(steps):
            loss = F.cross_entropy(functional_call(model, current, (batch.support_x[b],)), batch.support_y[b])
            grads = torch.autograd.grad(loss, list(current.values()), create_graph=create_graph)
            current = {n: t - algo.inner.lr * g for (n, t), g in zip(current.items(), grads, strict=True)}
        total = total + F.cross_entropy(functional_call(model, current, (batch.query_x[b],)), batch.query_y[b])
    return total / len(batch)


@pytest.mark.parametrize("steps", [1, 2])
def test_second_order_maml_matches_finite_differences(float64, steps):
    """Batch norm under vmap: PyTorch's fused kernel would miss second-order terms here."""
    torch.manual_seed(0)
    algo = MAML(smooth_net(), inner_lr=0.1, inner_steps=steps)
    batch = image_batch()
    params = {n: t.detach().requires_grad_() for n, t in algo.backbone.named_parameters()}
    direction = {n: torch.randn_like(t) for n, t in params.items()}

    def at(scale: float) -> float:
        return float(
            maml_objective(
                algo, batch, {n: (t + scale * direction[n]).detach().requires_grad_() for n, t in params.items()}, steps
            ).detach()
        )

    finite = (at(1e-6) - at(-1e-6)) / 2e-6
    for grads in (meta_loss_gradients(algo, batch), meta_backward_gradients(algo, batch)):
        analytic = sum(float((grads[f"inner.model.{n}"] * direction[n]).sum()) for n in params)
        assert analytic == pytest.approx(finite, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("steps", [1, 2])
def test_second_order_maml_on_conv4_matches_a_per_task_autograd_loop(float64, steps):
    torch.manual_seed(0)
    algo = MAML(Conv4(hidden=4, out_features=3, image_size=16), inner_lr=0.1, inner_steps=steps)
    batch = image_batch()
    reference = gradients(
        algo, lambda: maml_objective(algo, batch, algo.inner.params(), steps, create_graph=True).backward()
    )
    for grads in (meta_loss_gradients(algo, batch), meta_backward_gradients(algo, batch)):
        for name in reference:
            torch.testing.assert_close(grads[name], reference[name], rtol=1e-9, atol=1e-12)


def test_lean_meta_backward_equals_the_full_graph(float64):
    torch.manual_seed(1)
    for options in (
        {},
        {"first_order": True},
        {"inner_steps": 2, "multi_step_loss": True},
        {"learn_lr": "per_step", "inner_steps": 2},
    ):
        algo = MAML(
            Conv4(hidden=4, out_features=3, image_size=16), inner_lr=0.1, query_pass="loop", task_chunk=2, **options
        )
        full, lean = meta_loss_gradients(algo, image_batch()), meta_backward_gradients(algo, image_batch())
        assert full.keys() == lean.keys()
        for name in full:
            torch.testing.assert_close(lean[name], full[name], rtol=1e-9, atol=1e-12)


def test_vmap_and_loop_over_tasks_give_the_same_meta_gradient_and_predictions(float64):
    torch.manual_seed(3)
    batch, results = image_batch(), []
    for vectorize in ("vmap", "loop", "auto"):
        torch.manual_seed(3)
        algo = MAML(Conv4(hidden=4, out_features=3, image_size=16), inner_lr=0.1, inner_steps=2, vectorize=vectorize)
        results.append((meta_loss_gradients(algo, batch), meta_backward_gradients(algo, batch), algo.predict(batch)))
    for full, lean, predictions in results[1:]:
        for name in full:
            torch.testing.assert_close(full[name], results[0][0][name], rtol=1e-9, atol=1e-12)
            torch.testing.assert_close(lean[name], results[0][0][name], rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(predictions, results[0][2], rtol=1e-9, atol=1e-12)


def test_auto_loops_over_tasks_for_convolutional_networks_on_cpu_and_vmaps_the_rest():
    """ANIL adapts only a linear head, but its Conv4 still runs faster per task on CPU (benchmarks/
    inner_loop_batching.py); an MLP runs vmapped."""
    for options in ({}, {"head_only": True}, {"adapt": ["head"]}):
        algo = MAML(Conv4(hidden=4, out_features=3, image_size=16), **options)
        assert algo.inner._loop() and algo._query_loop(), options
    mlp = MAML(MLP([4, 8, 3]))
    assert not mlp.inner._loop() and not mlp._query_loop()
    assert MAML(Conv4(hidden=4, out_features=3), vectorize="vmap", query_pass="vmap")._query_loop() is False


def test_first_order_gradient_is_the_query_gradient_at_the_adapted_parameters(float64):
    torch.manual_seed(2)
    algo = MAML(Conv4(hidden=4, out_features=3, image_size=16), inner_lr=0.1, first_order=True)
    batch, model = image_batch(), algo.backbone
    theta = {n: t.detach() for n, t in model.named_parameters()}
    expected = {n: torch.zeros_like(t) for n, t in theta.items()}
    for b in range(len(batch)):
        p = {n: t.clone().requires_grad_() for n, t in theta.items()}
        grads = torch.autograd.grad(
            F.cross_entropy(functional_call(model, p, (batch.support_x[b],)), batch.support_y[b]), list(p.values())
        )
        phi = {n: (t - 0.1 * g).requires_grad_() for (n, t), g in zip(theta.items(), grads, strict=True)}
        outer = torch.autograd.grad(
            F.cross_entropy(functional_call(model, phi, (batch.query_x[b],)), batch.query_y[b]), list(phi.values())
        )
        for n, g in zip(phi, outer, strict=True):
            expected[n] += g / len(batch)
    for grads in (meta_loss_gradients(algo, batch), meta_backward_gradients(algo, batch)):
        for n in theta:
            torch.testing.assert_close(grads[f"inner.model.{n}"], expected[n], rtol=1e-9, atol=1e-12)


def test_reptile_with_one_step_and_one_task_is_sgd_on_that_task(float64):
    torch.manual_seed(3)
    reptile = Reptile(
        Conv4(hidden=4, out_features=3, image_size=16),
        inner_lr=0.05,
        inner_steps=1,
        inner_batch=100,
        inner_optimizer="sgd",
    )
    plain = Conv4(hidden=4, out_features=3, image_size=16)
    plain.load_state_dict(reptile.backbone.state_dict(), strict=False)
    batch = image_batch(tasks=1)
    outer = torch.optim.SGD(reptile.parameters(), lr=1.0)  # eps = 1: theta moves all the way to phi
    outer.zero_grad()
    reptile.meta_backward(batch)
    outer.step()
    sgd = torch.optim.SGD(plain.parameters(), lr=0.05)
    x, y = torch.cat([batch.support_x[0], batch.query_x[0]]), torch.cat([batch.support_y[0], batch.query_y[0]])
    sgd.zero_grad()
    F.cross_entropy(functional_call(plain, dict(plain.named_parameters()), (x,)), y).backward()
    sgd.step()
    for (name, got), expected in zip(reptile.backbone.named_parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12, msg=name)


def test_reptile_direction_is_theta_minus_the_mean_adapted_parameters(float64):
    torch.manual_seed(4)
    reptile = Reptile(
        Conv4(hidden=4, out_features=3, image_size=16), inner_steps=3, inner_batch=4, shared_moments=False
    )
    batch = image_batch(tasks=4)
    torch.manual_seed(9)
    grads = meta_backward_gradients(reptile, batch)
    torch.manual_seed(9)
    surrogate = meta_loss_gradients(reptile, batch)
    for name in grads:
        torch.testing.assert_close(grads[name], surrogate[name])
    assert all(float(g.abs().max()) > 0 for g in grads.values())


def test_reptile_keeps_adams_second_moments_across_tasks_and_leaves_them_alone_in_evaluation():
    torch.manual_seed(5)
    reptile = Reptile(Conv4(hidden=4, out_features=3, image_size=16), inner_steps=2, inner_batch=4, eval_steps=2)
    state = {k: v.clone() for k, v in reptile.state_dict().items() if k.startswith("moments.")}
    assert state["moments.count"] == 0 and all(float(v.abs().sum()) == 0 for v in state.values())
    reptile.meta_backward(image_batch(tasks=2))
    after = {k: v.clone() for k, v in reptile.state_dict().items() if k.startswith("moments.")}
    assert after["moments.count"] == 2 and all(float(v.abs().sum()) > 0 for v in after.values())
    first = reptile.predict(image_batch(tasks=2, seed=1))
    for k, v in reptile.state_dict().items():
        if k.startswith("moments."):
            assert torch.equal(v, after[k]), k  # evaluation adapted from a copy
    torch.testing.assert_close(reptile.predict(image_batch(tasks=2, seed=1)), first)


@pytest.mark.parametrize("shared_moments", [True, False])
def test_reptile_evaluates_each_task_alone_from_the_trained_state(shared_moments):
    """As in the paper's code (which restores the whole trained state, inner Adam included, after each
    evaluation task): a task's prediction depends neither on the other tasks of its batch nor on its size."""
    torch.manual_seed(5)
    reptile = Reptile(
        Conv4(hidden=4, out_features=3, image_size=16),
        inner_steps=2,
        inner_batch=4,
        eval_steps=7,
        eval_batch=4,
        shared_moments=shared_moments,
    )  # 28 draws from 6 examples: several passes
    reptile.meta_backward(image_batch(tasks=2))  # trained second moments that are not zero
    batch = image_batch(tasks=4, seed=1)
    batched = reptile.predict(batch)
    per_task = torch.stack([reptile.adapt(batch.support(i))(batch.query_x[i]) for i in range(4)])
    torch.testing.assert_close(batched, per_task, rtol=1e-5, atol=1e-5)  # 0.2 apart when the tasks shared Adam
    alone = reptile.predict(batch.slice(0, 1))[0]
    last = reptile.predict(TaskBatch.cat([batch.slice(1, 4), batch.slice(0, 1)]))[-1]
    torch.testing.assert_close(batched[0], alone, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(last, alone, rtol=1e-5, atol=1e-5)


def test_minibatches_sample_each_example_once_per_pass():
    x = torch.arange(2 * 10, dtype=torch.float32).view(2, 10, 1)
    y = torch.arange(2 * 10).view(2, 10)
    batches = minibatches(x, y, size=4, steps=5)  # 20 draws: two full passes over 10 examples
    drawn = torch.cat([b[1] for b in batches], dim=1)
    for task in range(2):
        assert sorted(drawn[task, :10].tolist()) == y[task].tolist()
        assert sorted(drawn[task, 10:].tolist()) == y[task].tolist()
    assert torch.equal(torch.cat([b[0] for b in batches], dim=1).squeeze(-1), drawn.float())


@pytest.mark.parametrize("learn_lr", ["per_parameter", "per_step"])
def test_learned_inner_rates_receive_the_finite_difference_gradient(float64, learn_lr):
    torch.manual_seed(5)
    batch = regression_batch()
    algo = MAML(
        nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1)), inner_lr=0.05, inner_steps=2, learn_lr=learn_lr
    )
    grads = meta_loss_gradients(algo, batch)
    rates = {n: p for n, p in algo.named_parameters() if n.startswith("inner.rates")}
    assert rates and all(float(grads[n].abs().max()) > 0 for n in rates)
    name, rate = next(iter(rates.items()))
    direction = torch.randn_like(rate)
    with torch.no_grad():
        rate += 1e-6 * direction
        plus = float(algo.meta_loss(batch)[0])
        rate -= 2e-6 * direction
        minus = float(algo.meta_loss(batch)[0])
        rate += 1e-6 * direction
    assert float((grads[name] * direction).sum()) == pytest.approx((plus - minus) / 2e-6, rel=1e-5)


def test_anil_adapts_only_the_head():
    algo = MAML(Conv4(hidden=8, out_features=3, image_size=16), head_only=True, inner_steps=2)
    assert algo.inner.adapt_names == ["head.weight", "head.bias"]
    batch = image_batch()
    theta = algo.inner.params()
    for step in algo.inner.adapt(theta, (batch.support_x, batch.support_y)):
        for name, tensor in step.items():
            if name.startswith("head."):
                assert tensor.shape[0] == len(batch) and not torch.allclose(tensor, theta[name].expand_as(tensor))
            else:
                assert tensor is theta[name]
    body = [n for n, p in algo.named_parameters() if not n.startswith("inner.model.head")]
    assert all(float(g.abs().max()) > 0 for n, g in meta_loss_gradients(algo, batch).items() if n in body)


def test_tasks_do_not_leak_through_batch_norm():
    torch.manual_seed(6)
    algo = MAML(Conv4(hidden=8, out_features=3, image_size=16), inner_steps=1)
    assert not list(algo.buffers()) or all(b.dim() == 0 for b in algo.buffers())  # no running statistics
    assert any(isinstance(m, TaskBatchNorm) for m in algo.modules())
    batch = image_batch(tasks=3)
    together = algo.predict(batch)
    alone = torch.cat([algo.predict(batch.slice(i, i + 1)) for i in range(3)])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)
    algo.predict(image_batch(tasks=2, seed=7))  # another task in between changes nothing
    torch.testing.assert_close(algo.predict(batch.slice(0, 1)), alone[:1])


def test_non_transductive_predictions_do_not_depend_on_the_other_queries():
    torch.manual_seed(7)
    algo = MAML(Conv4(hidden=8, out_features=3, image_size=16), transductive=False)
    batch = image_batch(tasks=1, query=3)
    full = algo.predict(batch)
    fewer = algo.predict(TaskBatch(batch.support_x, batch.support_y, batch.query_x[:, :2], batch.query_y[:, :2], 3))
    torch.testing.assert_close(full[:, :2], fewer, rtol=1e-5, atol=1e-5)
    transductive = MAML(Conv4(hidden=8, out_features=3, image_size=16))
    transductive.load_state_dict(algo.state_dict())
    assert not torch.allclose(
        transductive.predict(batch)[:, :2],
        transductive.predict(
            TaskBatch(batch.support_x, batch.support_y, batch.query_x[:, :2], batch.query_y[:, :2], 3)
        ),
    )


def test_multi_step_loss_weights_anneal_to_the_last_step():
    algo = MAML(nn.Linear(2, 1), inner_steps=4, multi_step_loss=True, msl_anneal_steps=10)
    first = algo.step_weights()
    assert first == pytest.approx([0.25] * 4)
    algo.meta_steps.fill_(10)
    last = algo.step_weights()
    assert sum(last) == pytest.approx(1) and last[-1] > 0.9 and min(last) > 0


def test_engine_rejects_bad_options():
    with pytest.raises(ValueError, match="learn_lr"):
        InnerLoop(nn.Linear(2, 1), learn_lr="sometimes")
    with pytest.raises(ValueError, match="no parameter"):
        InnerLoop(nn.Linear(2, 1), adapt_names=["head.weight"])
    with pytest.raises(ValueError, match="steps"):
        InnerLoop(nn.Linear(2, 1), steps=-1)
