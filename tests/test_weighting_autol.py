"""Auto-Lambda against its definition: the hypergradient equals autograd through the virtual step written out, the
weight update is torch.optim.Adam's, and a training step reads the weights the meta step produced."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from polyskill.errors import ConfigError
from polyskill.mtl.base import MultiTaskModel
from polyskill.mtl.learner import MultiTaskLearner
from polyskill.mtl.weighting.autol import AutoLambda, autol_hypergradient

F64 = torch.float64
TASKS = 3


class Net(MultiTaskModel):
    def __init__(self) -> None:
        super().__init__()
        self.tasks = tuple(f"t{i}" for i in range(TASKS))
        self.trunk = nn.Sequential(nn.Linear(4, 5), nn.Tanh())
        self.heads = nn.ModuleDict({t: nn.Linear(5, 1) for t in self.tasks})

    def forward(self, x):
        rep = self.trunk(x)
        return {t: h(rep) for t, h in self.heads.items()}

    def shared_parameters(self):
        return list(self.trunk.parameters())

    def task_parameters(self, task):
        return list(self.heads[task].parameters())


def losses_of(model: Net, params: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    out = torch.func.functional_call(model, params, (x,))
    return torch.stack([((out[t].squeeze(-1) - y[:, i]) ** 2).mean() for i, t in enumerate(model.tasks)])


def test_hypergradient_is_autograd_through_the_virtual_step():
    torch.manual_seed(0)
    model = Net().double()
    params = {k: v.detach() for k, v in model.named_parameters()}
    x, y = torch.randn(16, 4, dtype=F64), torch.randn(16, TASKS, dtype=F64)
    xm, ym = torch.randn(16, 4, dtype=F64), torch.randn(16, TASKS, dtype=F64)
    lam = torch.tensor([0.1, 0.7, 0.3], dtype=F64)
    alpha = 0.05
    got = autol_hypergradient(
        params, lam, alpha, lambda p: losses_of(model, p, x, y), lambda p: losses_of(model, p, xm, ym).sum()
    )
    # the virtual step theta' = theta - alpha * d/dtheta sum_t lam_t L_t, differentiated through with create_graph
    lam_var = lam.clone().requires_grad_(True)
    leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    weighted = (lam_var * losses_of(model, leaves, x, y)).sum()
    grads = torch.autograd.grad(weighted, list(leaves.values()), create_graph=True)
    virtual = {k: leaves[k] - alpha * g for k, g in zip(leaves, grads, strict=True)}
    (expected,) = torch.autograd.grad(losses_of(model, virtual, xm, ym).sum(), lam_var)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


def test_weight_update_is_adam():
    weighting = AutoLambda(TASKS, init=0.1, lr=1e-2)
    reference = torch.full((TASKS,), 0.1, dtype=F64, requires_grad=True)
    adam = torch.optim.Adam([reference], lr=1e-2)
    gen = torch.Generator().manual_seed(3)
    for _ in range(5):
        g = torch.randn(TASKS, generator=gen, dtype=F64)
        weighting.adam_update(g)
        reference.grad = g.clone()
        adam.step()
    torch.testing.assert_close(weighting.lam, reference.detach(), rtol=1e-12, atol=1e-14)


def test_learner_step_uses_the_meta_updated_weights_and_resumes_exactly():
    torch.manual_seed(1)
    model = Net()
    learner = MultiTaskLearner(model, AutoLambda(TASKS, lr=1e-2), (0,) * TASKS)
    x, y = torch.randn(12, 4), torch.randn(12, TASKS)
    xm, ym = torch.randn(12, 4), torch.randn(12, TASKS)
    before = learner.aggregator.lam.clone()
    metrics = learner.backward(x, y, meta=(xm, ym))
    after = learner.aggregator.lam
    assert not torch.equal(before, after)
    weights = torch.stack([metrics[f"weight_t{i}"] for i in range(TASKS)])
    torch.testing.assert_close(weights, after.float())
    # the shared gradients are those of sum_t lambda_t L_t
    params = dict(model.named_parameters())
    expected = torch.autograd.grad((after.float() * losses_of(model, params, x, y)).sum(), model.shared_parameters())
    for p, g in zip(model.shared_parameters(), expected, strict=True):
        torch.testing.assert_close(p.grad, g)
    buffer = io.BytesIO()
    torch.save(learner.aggregator.state_dict(), buffer)
    buffer.seek(0)
    twin = AutoLambda(TASKS, lr=1e-2)
    twin.load_state_dict(torch.load(buffer, weights_only=True))
    g = torch.tensor([0.3, -0.2, 0.1], dtype=F64)
    twin.adam_update(g)
    learner.aggregator.adam_update(g)
    assert torch.equal(twin.lam, learner.aggregator.lam)


def test_a_meta_batch_is_required():
    learner = MultiTaskLearner(Net(), AutoLambda(TASKS), (0,) * TASKS)
    with pytest.raises(ValueError, match="meta batch"):
        learner.backward(torch.randn(4, 4), torch.randn(4, TASKS))


@pytest.mark.parametrize(
    "kwargs", [{"init": 0}, {"lr": -1.0}, {"virtual_lr": float("nan")}, {"lr": True}, {"init": "1"}]
)
def test_bad_options_are_one_line(kwargs):
    with pytest.raises(ConfigError, match="autol: "):
        AutoLambda(TASKS, **kwargs)
