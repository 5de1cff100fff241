"""The multi-task backward pass: every path leaves the same gradients as per-task backward passes done one by one."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from torch import nn

import polyskill.mtl
from polyskill.mtl.base import Aggregator, LossWeighting, MultiTaskModel
from polyskill.mtl.step import multitask_backward


class TwoLayer(MultiTaskModel):
    """A shared tanh layer and one linear head per task: small enough to differentiate by hand."""

    def __init__(self, tasks: tuple[str, ...], inputs: int = 5, hidden: int = 4, outputs: int = 1) -> None:
        super().__init__()
        self.tasks = tasks
        self.trunk = nn.Sequential(nn.Linear(inputs, hidden), nn.Tanh())
        self.heads = nn.ModuleDict({t: nn.Linear(hidden, outputs) for t in tasks})

    def forward_with_representation(self, x):
        rep = self.trunk(x)
        return rep, {t: h(rep) for t, h in self.heads.items()}

    def forward(self, x):
        return self.forward_with_representation(x)[1]

    def shared_parameters(self):
        return list(self.trunk.parameters())

    def shared_trunk(self):
        return self.trunk

    def task_parameters(self, task):
        return list(self.heads[task].parameters())


class NoTrunk(TwoLayer):
    """The same model without the trunk shortcut: partitioned batches take the whole-model vmap path."""

    def shared_trunk(self):
        return None


class InverseNorm(Aggregator):
    """w_t = 1 / ||g_t||: depends on the Gram matrix, so a wrong matrix shows."""

    def weights(self, gram, losses):
        return gram.diagonal().clamp_min(1e-12).rsqrt()


class Fixed(LossWeighting):
    def __init__(self, w):
        super().__init__()
        self.w = torch.tensor(w)

    def weights(self, losses):
        return self.w


def _one_by_one(model, x, y, partitioned):
    """Per-task gradients of the shared parameters, and the heads' gradients, by T separate backward passes."""
    t = len(model.tasks)
    grads, heads = [], {}
    for i, name in enumerate(model.tasks):
        model.zero_grad(set_to_none=True)
        if partitioned:
            n = len(x) // t
            rows = slice(i * n, (i + 1) * n)
            loss = nn.functional.mse_loss(model(x[rows])[name].squeeze(-1), y[rows])
        else:
            loss = nn.functional.mse_loss(model(x)[name].squeeze(-1), y[:, i])
        loss.backward()
        grads.append(torch.cat([p.grad.reshape(-1) for p in model.shared_parameters()]))
        heads[name] = [p.grad.clone() for p in model.task_parameters(name)]
    model.zero_grad(set_to_none=True)
    return torch.stack(grads), heads


def _shared_grad(model):
    return torch.cat([p.grad.reshape(-1) for p in model.shared_parameters()])


@pytest.mark.parametrize(
    "partitioned,cls,count",
    [(False, TwoLayer, 3), (False, TwoLayer, 10), (False, NoTrunk, 3), (True, TwoLayer, 3), (True, NoTrunk, 3)],
)
def test_gradient_aggregation_matches_one_pass_per_task(partitioned, cls, count):
    """Every path (trunk or whole model; a backward per task, vmapped, or grouped rows) gives the same."""
    torch.manual_seed(0)
    tasks = tuple(f"t{i}" for i in range(count))
    model = cls(tasks).double()
    rows = 4 * count
    x = torch.randn(rows, 5, dtype=torch.float64)
    y = torch.randn(rows, dtype=torch.float64) if partitioned else torch.randn(rows, count, dtype=torch.float64)
    jac, heads = _one_by_one(model, x, y, partitioned)
    info = multitask_backward(model, InverseNorm(), x, y, (0,) * count, partitioned=partitioned)
    w = jac.norm(dim=1).reciprocal()
    torch.testing.assert_close(info.gram, jac @ jac.T)
    torch.testing.assert_close(info.weights, w)
    torch.testing.assert_close(_shared_grad(model), w @ jac)
    for name in tasks:  # heads get their own task's plain gradient
        for p, g in zip(model.task_parameters(name), heads[name], strict=True):
            torch.testing.assert_close(p.grad, g)


@pytest.mark.parametrize("partitioned", [False, True])
def test_representation_gradients_weight_the_loss(partitioned):
    torch.manual_seed(1)
    model = TwoLayer(("a", "b")).double()
    x = torch.randn(8, 5, dtype=torch.float64)
    y = torch.randn(8, dtype=torch.float64) if partitioned else torch.randn(8, 2, dtype=torch.float64)
    rep = model.trunk(x)
    if partitioned:  # task a owns rows 0-3, task b rows 4-7
        losses = torch.stack(
            [
                nn.functional.mse_loss(model.heads[t](rep[4 * i : 4 * i + 4]).squeeze(-1), y[4 * i : 4 * i + 4])
                for i, t in enumerate(model.tasks)
            ]
        )
    else:
        losses = torch.stack(
            [nn.functional.mse_loss(model.heads[t](rep).squeeze(-1), y[:, i]) for i, t in enumerate(model.tasks)]
        )
    jrep = torch.stack([torch.autograd.grad(loss, rep, retain_graph=True)[0].reshape(-1) for loss in losses])
    w = jrep.norm(dim=1).reciprocal().detach()
    expected = torch.autograd.grad((w * losses).sum(), model.shared_parameters())
    info = multitask_backward(model, InverseNorm(), x, y, (0, 0), rep_grad=True, partitioned=partitioned)
    torch.testing.assert_close(info.gram, jrep @ jrep.T)
    torch.testing.assert_close(info.weights, w)
    torch.testing.assert_close(_shared_grad(model), torch.cat([g.reshape(-1) for g in expected]))


def test_loss_weighting_is_one_weighted_backward_and_can_report_the_gram():
    torch.manual_seed(2)
    model = TwoLayer(("a", "b")).double()
    x, y = torch.randn(8, 5, dtype=torch.float64), torch.randn(8, 2, dtype=torch.float64)
    jac, _ = _one_by_one(model, x, y, False)
    info = multitask_backward(model, Fixed([0.25, 2.0]).double(), x, y, (0, 0), want_gram=True)
    torch.testing.assert_close(_shared_grad(model), torch.tensor([0.25, 2.0], dtype=torch.float64) @ jac)
    torch.testing.assert_close(info.gram, jac @ jac.T)


def test_the_step_does_not_import_distributed():
    """mtl states what it needs from other processes (`Reduction`); training passes the implementation."""
    root = Path(polyskill.mtl.__file__).parent
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert "distributed" not in (node.module or ""), path
            elif isinstance(node, ast.Import):
                assert not any("distributed" in alias.name for alias in node.names), path
