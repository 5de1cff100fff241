"""One multi-task backward pass: the losses, the task weights and the gradients left in `.grad`.

Loss weightings (EW, UW, DWA, RLW) backpropagate `sum_t w_t L_t` once. Gradient aggregators get the
per-task gradients of the shared parameters from one batched pass (or, with `rep_grad`, the per-task
gradients of the shared representation, as MGDA-UB does), turn their Gram matrix into weights, and write
`sum_t w_t g_t` into the shared parameters' `.grad`; task-specific parameters get the gradient of their own
task's loss. The optimiser step is the caller's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .base import Aggregator, MultiTaskModel
from .gradients import flat, grouped_task_gradients, grouped_vjp, has_batch_coupling, task_gradients
from .losses import dense_losses, grouped_losses, task_loss


@dataclass
class StepInfo:
    """What one step measured: per-task losses [T], the weights used [T], and the Gram matrix of the per-task
    gradients [T, T] when they were computed (None for a plain weighted-loss step)."""

    losses: Tensor
    weights: Tensor
    gram: Tensor | None = None


def _task_params(model: MultiTaskModel) -> list[Tensor]:
    return [p for t in model.tasks for p in model.task_parameters(t) if p.requires_grad]


def _accumulate(params: list[Tensor], grads: list[Tensor | None]) -> None:
    for p, g in zip(params, grads):
        if g is not None:
            p.grad = g.detach().clone() if p.grad is None else p.grad + g.detach()


def _backward_extras(model: MultiTaskModel, aggregator: Aggregator) -> None:
    """Backpropagate the architecture's penalty and the aggregator's regulariser, if any."""
    extra = [e for e in (model.penalty(), aggregator.regularizer()) if e is not None]
    if extra:
        torch.stack([e.reshape(()) for e in extra]).sum().backward()


def _set_shared(shared: list[Tensor], direction: Tensor) -> None:
    offset = 0
    for p in shared:
        n = p.numel()
        _accumulate([p], [direction[offset:offset + n].view_as(p)])
        offset += n


def multitask_backward(model: MultiTaskModel, aggregator: Aggregator, x: Tensor, y: Tensor,
                       classes: tuple[int, ...], *, partitioned: bool = False, rep_grad: bool = False,
                       want_gram: bool = False) -> StepInfo:
    """Compute the step's gradients into `.grad` (which the caller has zeroed).

    `partitioned`: the batch is laid out task by task (`len(x) = T * n`, rows [i*n, (i+1)*n) are task i's)
    and each task's loss reads only its rows; otherwise `y` is [B, T]. `want_gram` asks a loss weighting to
    compute the per-task gradients anyway (for task-affinity tracking); gradient aggregators always do.
    """
    tasks = model.tasks
    shared = [p for p in model.shared_parameters() if p.requires_grad]
    losses_of = grouped_losses if partitioned else dense_losses
    if not aggregator.uses_gradients or not shared:
        losses = losses_of(model(x), y, tasks, classes)
        gram = None
        if want_gram and shared:
            jac = task_gradients(losses, shared)
            gram = jac @ jac.T
        w = aggregator.weights(None, losses.detach()) if not aggregator.uses_gradients else torch.ones_like(losses)
        (w * losses).sum().backward()
        _backward_extras(model, aggregator)
        return StepInfo(losses.detach(), w.detach(), gram)

    if rep_grad:
        return _representation_step(model, aggregator, x, y, classes, shared, partitioned)

    trunk = model.shared_trunk()
    if trunk is not None and {id(p) for p in shared} == {id(p) for p in trunk.parameters() if p.requires_grad}:
        if not partitioned:
            return _dense_trunk_step(model, aggregator, x, y, classes, shared)
        if not has_batch_coupling(model):
            return _partitioned_trunk_step(model, trunk, aggregator, x, y, classes, shared)

    if partitioned and not has_batch_coupling(model):
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
        gram = jac @ jac.T
        w = _weights(aggregator, gram, losses)
        _set_shared([names[k] for k in shared_names], w.to(jac.dtype) @ jac)
        others = [k for k, p in names.items() if id(p) not in shared_ids and p.requires_grad]
        _accumulate([names[k] for k in others], [grads[k].sum(0) for k in others])
        _backward_extras(model, aggregator)
        return StepInfo(losses.detach(), w, gram)

    losses = losses_of(model(x), y, tasks, classes)
    jac = task_gradients(losses, shared)
    gram = jac @ jac.T
    w = _weights(aggregator, gram, losses)
    _set_shared(shared, w.to(jac.dtype) @ jac)
    task_params = _task_params(model)
    if task_params:
        _accumulate(task_params, torch.autograd.grad(losses.sum(), task_params, allow_unused=True,
                                                     retain_graph=True))
    _backward_extras(model, aggregator)
    return StepInfo(losses.detach(), w, gram)


def _representation_step(model: MultiTaskModel, aggregator: Aggregator, x: Tensor, y: Tensor,
                         classes: tuple[int, ...], shared: list[Tensor], partitioned: bool) -> StepInfo:
    """MGDA-UB style: the aggregator reads the Gram matrix of the per-task gradients of the shared
    representation, and their weighted sum goes back through the shared layers once. With a partitioned batch
    task i's gradient lives on its own rows only, so one backward gives them all and the Gram matrix is
    diagonal."""
    rep, outputs = model.forward_with_representation(x)
    t = len(model.tasks)
    losses = (grouped_losses if partitioned else dense_losses)(outputs, y, model.tasks, classes)
    task_params = _task_params(model)
    if partitioned and rep.shape[0] == x.shape[0]:  # rows of the representation are the batch's examples
        grads = torch.autograd.grad(losses.sum(), [rep, *task_params], retain_graph=True, allow_unused=True)
        _accumulate(task_params, list(grads[1:]))
        rows = grads[0].reshape(t, -1)
        gram = torch.diag((rows * rows).sum(1))
        w = _weights(aggregator, gram, losses)
        cotangent = (w.to(rows.dtype)[:, None] * rows).view_as(rep)
    else:
        if task_params:
            _accumulate(task_params, torch.autograd.grad(losses.sum(), task_params, allow_unused=True,
                                                         retain_graph=True))
        jac = task_gradients(losses, [rep])
        gram = jac @ jac.T
        w = _weights(aggregator, gram, losses)
        cotangent = (w.to(jac.dtype) @ jac).view_as(rep)
    torch.autograd.backward(rep, cotangent, inputs=shared)
    _backward_extras(model, aggregator)
    return StepInfo(losses.detach(), w, gram)


LOOP_TASKS = 8  # up to this many tasks, one plain backward per task beats a vmapped one through convolutions


def _dense_trunk_step(model: MultiTaskModel, aggregator: Aggregator, x: Tensor, y: Tensor,
                      classes: tuple[int, ...], shared: list[Tensor]) -> StepInfo:
    """Every shared parameter in the trunk: each task's cotangent on the representation comes from a cheap pass
    through the heads, then each goes back through the trunk alone (a plain backward per task for few tasks,
    one vmapped backward for many); the heads' own gradients come from one ordinary pass."""
    rep, outputs = model.forward_with_representation(x)
    losses = dense_losses(outputs, y, model.tasks, classes)
    task_params = _task_params(model)
    if task_params:
        _accumulate(task_params, torch.autograd.grad(losses.sum(), task_params, allow_unused=True,
                                                     retain_graph=True))
    cotangents = task_gradients(losses, [rep]).view(len(losses), *rep.shape)
    if len(losses) <= LOOP_TASKS:
        rows = [flat([g[None] if g is not None else None for g in torch.autograd.grad(
            rep, shared, c, retain_graph=i < len(losses) - 1, allow_unused=True)], shared, 1)
            for i, c in enumerate(cotangents)]
        jac = torch.cat(rows)
    else:
        jac = flat(list(torch.autograd.grad(rep, shared, cotangents, is_grads_batched=True, allow_unused=True)),
                   shared, len(losses))
    gram = jac @ jac.T
    w = _weights(aggregator, gram, losses)
    _set_shared(shared, w.to(jac.dtype) @ jac)
    _backward_extras(model, aggregator)
    return StepInfo(losses.detach(), w, gram)


def _partitioned_trunk_step(model: MultiTaskModel, trunk: torch.nn.Module, aggregator: Aggregator, x: Tensor,
                            y: Tensor, classes: tuple[int, ...], shared: list[Tensor]) -> StepInfo:
    """Partitioned batch, every shared parameter in the trunk: one ordinary backward gives the heads' gradients
    and the loss gradient w.r.t. the representation (whose rows of task i are task i's cotangent, since task i's
    loss reads only its rows); then the trunk alone runs once more, vmapped over the tasks' row groups, for the
    per-task gradients of the shared parameters."""
    t = len(model.tasks)
    rep, outputs = model.forward_with_representation(x)
    losses = grouped_losses(outputs, y, model.tasks, classes)
    task_params = _task_params(model)
    grads = torch.autograd.grad(losses.sum(), [rep, *task_params], allow_unused=True)
    _accumulate(task_params, list(grads[1:]))
    per_task = grouped_vjp(trunk, x.reshape(t, -1, *x.shape[1:]), grads[0].reshape(t, -1, *rep.shape[1:]))
    names = {id(p): k for k, p in trunk.named_parameters()}
    jac = flat([per_task[names[id(p)]] for p in shared], shared, t)
    gram = jac @ jac.T
    w = _weights(aggregator, gram, losses)
    _set_shared(shared, w.to(jac.dtype) @ jac)
    _backward_extras(model, aggregator)
    return StepInfo(losses.detach(), w, gram)


def _weights(aggregator: Aggregator, gram: Tensor, losses: Tensor) -> Tensor:
    return aggregator.weights(gram, losses.detach()).detach()
