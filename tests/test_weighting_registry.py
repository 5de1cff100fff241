"""Every registered weighting, found by iterating the registry: one kind each, its declared needs, the one
combination path shared by `aggregate` and training (weights @ G, or a Jacobian aggregator's own direction), and a
checkpoint round trip."""

from __future__ import annotations

import inspect
import io

import pytest
import torch
from torch import nn

from polyskill.mtl import AGGREGATOR_NAMES, aggregator_class
from polyskill.mtl.base import Aggregator, JacobianAggregator, LossWeighting, MultiTaskModel, Weighting
from polyskill.mtl.step import multitask_backward

F64 = torch.float64
TASKS = 3


def build(name: str) -> Weighting:
    """The weighting registered as `name` with its default options (sized for TASKS tasks when it asks)."""
    cls = aggregator_class(name)
    return cls(num_tasks=TASKS) if cls.needs_num_tasks else cls()


def direct(weighting: Weighting, grads: torch.Tensor, losses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(weights, direction) through each kind's own signature: `weights(losses)`, `weights(gram, losses)` (the
    direction is then weights @ grads) or a Jacobian aggregator's `combine(grads, losses)`."""
    if isinstance(weighting, JacobianAggregator):
        out = weighting.combine(grads, losses)
        return out.weights.detach(), out.direction.detach()
    if isinstance(weighting, LossWeighting):
        w = weighting.weights(losses).detach()
    else:
        w = weighting.weights(grads @ grads.T, losses).detach()
    return w, w.to(grads.dtype) @ grads


class Net(MultiTaskModel):
    """A shared tanh layer and a linear regression head per task."""

    def __init__(self) -> None:
        super().__init__()
        self.tasks = tuple(f"t{i}" for i in range(TASKS))
        self.trunk = nn.Sequential(nn.Linear(5, 4), nn.Tanh())
        self.heads = nn.ModuleDict({t: nn.Linear(4, 1) for t in self.tasks})

    def forward(self, x):
        rep = self.trunk(x)
        return {t: h(rep) for t, h in self.heads.items()}

    def shared_parameters(self):
        return list(self.trunk.parameters())

    def task_parameters(self, task):
        return list(self.heads[task].parameters())


def test_every_name_has_its_own_module():
    modules = [aggregator_class(name).__module__ for name in AGGREGATOR_NAMES]
    assert len(set(modules)) == len(AGGREGATOR_NAMES)
    assert all(m.startswith("polyskill.mtl.weighting.") for m in modules)


@pytest.mark.parametrize("name", AGGREGATOR_NAMES)
def test_one_kind_and_declared_needs(name):
    cls = aggregator_class(name)
    assert sum(issubclass(cls, kind) for kind in (LossWeighting, Aggregator, JacobianAggregator)) == 1
    assert cls.needs_num_tasks == ("num_tasks" in inspect.signature(cls).parameters)


@pytest.mark.parametrize("name", AGGREGATOR_NAMES)
def test_aggregate_is_the_weights_times_the_gradients(name):
    gen = torch.Generator().manual_seed(1)
    grads = torch.randn(TASKS, 7, generator=gen, dtype=F64)
    losses = torch.rand(TASKS, generator=gen, dtype=F64) + 0.5
    out = build(name).aggregate(grads, losses)
    weights, direction = direct(build(name).double(), grads, losses)  # a twin in the same initial state
    assert out.weights.shape == (TASKS,) and torch.isfinite(out.weights).all()
    torch.testing.assert_close(out.weights, weights.to(F64), rtol=1e-12, atol=0)
    torch.testing.assert_close(out.direction, direction.to(F64), rtol=1e-12, atol=0)


@pytest.mark.parametrize("name", AGGREGATOR_NAMES)
def test_a_training_step_moves_the_shared_parameters_along_the_weighted_task_gradients(name):
    torch.manual_seed(0)
    model = Net().double()
    weighting, twin = build(name).double(), build(name).double()
    x, y = torch.randn(8, 5, dtype=F64), torch.randn(8, TASKS, dtype=F64)
    jac = []
    for i, task in enumerate(model.tasks):  # per-task gradients of the shared parameters, one backward each
        loss = nn.functional.mse_loss(model(x)[task].squeeze(-1), y[:, i])
        jac.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, model.shared_parameters())]))
    info = multitask_backward(model, weighting, x, y, (0,) * TASKS, want_gram=True)
    shared = torch.cat([p.grad.reshape(-1) for p in model.shared_parameters()])
    if isinstance(weighting, JacobianAggregator):
        expected = twin.combine(torch.stack(jac), info.losses.to(F64)).direction
    else:
        expected = info.weights.to(F64) @ torch.stack(jac)
    torch.testing.assert_close(shared, expected)
    torch.testing.assert_close(info.gram, torch.stack(jac) @ torch.stack(jac).T)


@pytest.mark.parametrize("name", AGGREGATOR_NAMES)
def test_float32_weights_and_state_dict_loads_safely(name):
    gen = torch.Generator().manual_seed(12)
    grads = torch.randn(TASKS, 5, generator=gen)
    weighting = build(name)
    w = weighting.aggregate(grads, torch.rand(TASKS, generator=gen) + 0.5).weights
    assert w.dtype == torch.float32 and w.shape == (TASKS,) and torch.isfinite(w).all()
    buffer = io.BytesIO()
    torch.save(weighting.state_dict(), buffer)
    buffer.seek(0)
    build(name).load_state_dict(torch.load(buffer, weights_only=True))
