"""The ways of getting a multi-task batch's per-task gradients, cheapest first; `task_gradients_of` picks one.

Each returns a `TaskGradients` for the step's `combine`: per-task losses, the gradients of each task's own
parameters, and the per-task gradients the weights combine (of the shared parameters, or of the shared
representation), or nothing to combine (a weighted loss).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import LossWeighting, MultiTaskModel, Weighting
from .gradients import flat, grouped_task_gradients, grouped_vjp, has_batch_coupling, task_gradients
from .losses import dense_losses, grouped_losses, task_loss
from .task_gradients import Heads, RepresentationGradients, SharedJacobian, TaskGradients, WeightedLoss

LOOP_TASKS = 8  # up to this many tasks, one plain backward per task beats a vmapped one through convolutions


def task_gradients_of(
    model: MultiTaskModel,
    weighting: Weighting,
    x: Tensor,
    y: Tensor,
    classes: tuple[int, ...],
    *,
    partitioned: bool,
    rep_grad: bool,
    want_gram: bool,
) -> TaskGradients:
    """The strategy for this model, weighting and batch layout, run on (x, y)."""
    shared: list[Tensor] = [p for p in model.shared_parameters() if p.requires_grad]
    if isinstance(weighting, LossWeighting) or not shared:
        return weighted_loss(model, x, y, classes, shared, partitioned, want_gram)
    if rep_grad:
        return representation(model, x, y, classes, shared, partitioned)
    trunk = model.shared_trunk()
    if trunk is not None and {id(p) for p in shared} == {id(p) for p in trunk.parameters() if p.requires_grad}:
        if not partitioned:
            return dense_trunk(model, x, y, classes, shared)
        if not has_batch_coupling(model):
            return partitioned_trunk(model, trunk, x, y, classes, shared)
    if partitioned and not has_batch_coupling(model):
        return partitioned_whole_model(model, x, y, classes, shared)
    return whole_model(model, x, y, classes, shared, partitioned)


def _losses(
    model: MultiTaskModel, outputs: dict[str, Tensor], y: Tensor, classes: tuple[int, ...], partitioned: bool
) -> Tensor:
    return (grouped_losses if partitioned else dense_losses)(outputs, y, model.tasks, classes)


def _task_params(model: MultiTaskModel) -> list[Tensor]:
    return [p for t in model.tasks for p in model.task_parameters(t) if p.requires_grad]


def _own_gradients(losses: Tensor, params: list[Tensor]) -> Heads:
    """Each task-specific parameter's gradient: of the summed losses, which is of its own task's loss."""
    if not params:
        return []
    grads = torch.autograd.grad(losses.sum(), params, allow_unused=True, retain_graph=True)
    return list(zip(params, grads, strict=True))


def weighted_loss(
    model: MultiTaskModel,
    x: Tensor,
    y: Tensor,
    classes: tuple[int, ...],
    shared: list[Tensor],
    partitioned: bool,
    want_gram: bool,
) -> WeightedLoss:
    """One forward pass; the shared parameters' Jacobian only when `want_gram` asks for the Gram matrix."""
    losses = _losses(model, model(x), y, classes, partitioned)
    jac = task_gradients(losses, shared) if want_gram and shared else None
    return WeightedLoss(losses, jac)


def representation(
    model: MultiTaskModel, x: Tensor, y: Tensor, classes: tuple[int, ...], shared: list[Tensor], partitioned: bool
) -> RepresentationGradients:
    """MGDA-UB style: per-task gradients of the shared representation. With a partitioned batch task i's gradient
    lives on its own rows only, so one backward gives them all and the Gram matrix is diagonal."""
    rep, outputs = model.forward_with_representation(x)
    t = len(model.tasks)
    losses = _losses(model, outputs, y, classes, partitioned)
    task_params = _task_params(model)
    if partitioned and rep.shape[0] == x.shape[0]:  # rows of the representation are the batch's examples
        grads = torch.autograd.grad(losses.sum(), [rep, *task_params], retain_graph=True, allow_unused=True)
        rows = grads[0].reshape(t, -1)
        return RepresentationGradients(
            losses,
            rep,
            rows,
            torch.diag((rows * rows).sum(1)),
            shared,
            block_diagonal=True,
            heads=list(zip(task_params, grads[1:], strict=True)),
        )
    heads = _own_gradients(losses, task_params)
    jac = task_gradients(losses, [rep])
    return RepresentationGradients(losses, rep, jac, jac @ jac.T, shared, heads=heads)


def dense_trunk(
    model: MultiTaskModel, x: Tensor, y: Tensor, classes: tuple[int, ...], shared: list[Tensor]
) -> SharedJacobian:
    """Every shared parameter in the trunk: each task's cotangent on the representation comes from a cheap pass
    through the heads, then each goes back through the trunk alone (a plain backward per task for few tasks,
    one vmapped backward for many); the heads' own gradients come from one ordinary pass."""
    rep, outputs = model.forward_with_representation(x)
    losses = dense_losses(outputs, y, model.tasks, classes)
    heads = _own_gradients(losses, _task_params(model))
    cotangents = task_gradients(losses, [rep]).view(len(losses), *rep.shape)
    if len(losses) <= LOOP_TASKS:
        rows = [
            flat(
                [
                    g[None] if g is not None else None
                    for g in torch.autograd.grad(rep, shared, c, retain_graph=i < len(losses) - 1, allow_unused=True)
                ],
                shared,
                1,
            )
            for i, c in enumerate(cotangents)
        ]
        jac = torch.cat(rows)
    else:
        jac = flat(
            list(torch.autograd.grad(rep, shared, cotangents, is_grads_batched=True, allow_unused=True)),
            shared,
            len(losses),
        )
    return SharedJacobian(losses, jac, shared, heads)


def partitioned_trunk(
    model: MultiTaskModel, trunk: nn.Module, x: Tensor, y: Tensor, classes: tuple[int, ...], shared: list[Tensor]
) -> SharedJacobian:
    """Partitioned batch, every shared parameter in the trunk: one ordinary backward gives the heads' gradients
    and the loss gradient w.r.t. the representation (whose rows of task i are task i's cotangent, since task i's
    loss reads only its rows); then the trunk alone runs once more, vmapped over the tasks' row groups, for the
    per-task gradients of the shared parameters."""
    t = len(model.tasks)
    rep, outputs = model.forward_with_representation(x)
    losses = grouped_losses(outputs, y, model.tasks, classes)
    task_params = _task_params(model)
    grads = torch.autograd.grad(losses.sum(), [rep, *task_params], allow_unused=True)
    per_task = grouped_vjp(trunk, x.reshape(t, -1, *x.shape[1:]), grads[0].reshape(t, -1, *rep.shape[1:]))
    names = {id(p): k for k, p in trunk.named_parameters()}
    jac = flat([per_task[names[id(p)]] for p in shared], shared, t)
    return SharedJacobian(losses, jac, shared, list(zip(task_params, grads[1:], strict=True)))


def partitioned_whole_model(
    model: MultiTaskModel, x: Tensor, y: Tensor, classes: tuple[int, ...], shared: list[Tensor]
) -> SharedJacobian:
    """Partitioned batch without a trunk holding every shared parameter: the whole model vmapped over the tasks'
    row groups, task i's loss selected by a one-hot, gives every parameter's per-task gradient in one pass."""
    tasks = model.tasks
    t = len(tasks)
    xs, ys = x.reshape(t, -1, *x.shape[1:]), y.reshape(t, -1)

    def one(outputs: dict[str, Tensor], yi: Tensor, onehot: Tensor) -> Tensor:
        per_head = torch.stack([task_loss(outputs[name], yi, classes[i]) for i, name in enumerate(tasks)])
        return (per_head * onehot).sum()

    grads, losses = grouped_task_gradients(model, xs, ys, one)
    names = dict(model.named_parameters())
    shared_ids = {id(p) for p in shared}
    shared_names = [k for k, p in names.items() if id(p) in shared_ids]
    jac = flat([grads[k] for k in shared_names], [names[k] for k in shared_names], t)
    others: Heads = [(p, grads[k].sum(0)) for k, p in names.items() if id(p) not in shared_ids and p.requires_grad]
    return SharedJacobian(losses, jac, [names[k] for k in shared_names], others)


def whole_model(
    model: MultiTaskModel, x: Tensor, y: Tensor, classes: tuple[int, ...], shared: list[Tensor], partitioned: bool
) -> SharedJacobian:
    """Any model and layout: one forward pass, then one backward pass vectorised over the T one-hot cotangents."""
    losses = _losses(model, model(x), y, classes, partitioned)
    jac = task_gradients(losses, shared)
    return SharedJacobian(losses, jac, shared, _own_gradients(losses, _task_params(model)))
