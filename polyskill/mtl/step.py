"""One multi-task backward pass: the losses, the task weights and the gradients left in `.grad`.

Loss weightings (EW, UW, DWA, RLW) backpropagate `sum_t w_t L_t` once. Gradient aggregators get the
per-task gradients of the shared parameters from one batched pass (or, with `rep_grad`, the per-task
gradients of the shared representation, as MGDA-UB does), turn their Gram matrix into weights, and write
`sum_t w_t g_t` into the shared parameters' `.grad`; task-specific parameters get the gradient of their own
task's loss. The optimiser step is the caller's.

On several processes (`dist`), each rank holds its share of the global batch and every loss is a mean, so the
global batch's per-task gradients are the ranks' mean. Gradient aggregators all-reduce the per-task gradient
matrix [T, P] with the losses [T] before weighting them (with `rep_grad`: the Gram matrix [T, T] of the
representation gradients, whose rows of every rank are a block of the global matrix), so every rank computes
the same weights and the same shared-parameter direction; the remaining gradients (task-specific parameters,
the penalty's, the aggregator's own, and with `rep_grad` the shared ones) are then averaged in buckets. Loss
weightings all-reduce the losses [T] (so stateful weightings, DWA, see the global batch's) and average every
gradient in buckets, as DDP does. Either way `.grad` ends identical on every rank: the caller averages nothing.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import Tensor

from ..distributed import SINGLE, DistContext, average_gradients, sum_across
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


def mean_over_ranks(dist: DistContext, *tensors: Tensor) -> list[Tensor]:
    """The detached `tensors` averaged over the ranks in one all-reduce (in their widest dtype), so that every
    rank holds the same values; returned as they are on a single process."""
    if not dist.active:
        return [t.detach() for t in tensors]
    dtype = functools.reduce(torch.promote_types, [t.dtype for t in tensors])
    flat = torch.cat([t.detach().reshape(-1).to(dtype) for t in tensors])
    flat = sum_across(flat, dist) / dist.world
    out, offset = [], 0
    for t in tensors:
        out.append(flat[offset:offset + t.numel()].view(t.shape).to(t.dtype))
        offset += t.numel()
    return out


def _average_rest(model: MultiTaskModel, aggregator: Aggregator, done: list[Tensor], dist: DistContext) -> None:
    """Average over the ranks the gradients of every parameter of the model and the aggregator but `done`
    (whose gradients are identical on every rank already)."""
    if not dist.active:
        return
    skip = {id(p) for p in done}
    average_gradients([p for p in [*model.parameters(), *aggregator.parameters()] if id(p) not in skip], dist)


def _set_shared(shared: list[Tensor], direction: Tensor) -> None:
    offset = 0
    for p in shared:
        n = p.numel()
        _accumulate([p], [direction[offset:offset + n].view_as(p)])
        offset += n


def multitask_backward(model: MultiTaskModel, aggregator: Aggregator, x: Tensor, y: Tensor,
                       classes: tuple[int, ...], *, partitioned: bool = False, rep_grad: bool = False,
                       want_gram: bool = False, dist: DistContext = SINGLE) -> StepInfo:
    """Compute the step's gradients into `.grad` (which the caller has zeroed).

    `partitioned`: the batch is laid out task by task (`len(x) = T * n`, rows [i*n, (i+1)*n) are task i's)
    and each task's loss reads only its rows; otherwise `y` is [B, T]. `want_gram` asks a loss weighting to
    compute the per-task gradients anyway (for task-affinity tracking); gradient aggregators always do.
    `dist`: this rank's batch is its share of the global one; `.grad`, the losses, the weights and the Gram
    matrix returned are the global batch's, the same on every rank (see the module's docstring).
    """
    tasks = model.tasks
    shared = [p for p in model.shared_parameters() if p.requires_grad]
    losses_of = grouped_losses if partitioned else dense_losses
    if not aggregator.uses_gradients or not shared:
        losses = losses_of(model(x), y, tasks, classes)
        gram = None
        if want_gram and shared:
            jac, mean_losses = mean_over_ranks(dist, task_gradients(losses, shared), losses)
            gram = jac @ jac.T
        else:
            mean_losses, = mean_over_ranks(dist, losses)
        w = aggregator.weights(None, mean_losses) if not aggregator.uses_gradients else torch.ones_like(losses)
        (w * losses).sum().backward()
        _backward_extras(model, aggregator)
        _average_rest(model, aggregator, [], dist)
        return StepInfo(mean_losses, w.detach(), gram)

    if rep_grad:
        return _representation_step(model, aggregator, x, y, classes, shared, partitioned, dist)

    trunk = model.shared_trunk()
    if trunk is not None and {id(p) for p in shared} == {id(p) for p in trunk.parameters() if p.requires_grad}:
        if not partitioned:
            return _dense_trunk_step(model, aggregator, x, y, classes, shared, dist)
        if not has_batch_coupling(model):
            return _partitioned_trunk_step(model, trunk, aggregator, x, y, classes, shared, dist)

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
        w, gram, direction, mean_losses = _aggregate(aggregator, jac, losses, dist)
        _set_shared([names[k] for k in shared_names], direction)
        others = [k for k, p in names.items() if id(p) not in shared_ids and p.requires_grad]
        _accumulate([names[k] for k in others], [grads[k].sum(0) for k in others])
        _backward_extras(model, aggregator)
        _average_rest(model, aggregator, shared, dist)
        return StepInfo(mean_losses, w, gram)

    losses = losses_of(model(x), y, tasks, classes)
    w, gram, direction, mean_losses = _aggregate(aggregator, task_gradients(losses, shared), losses, dist)
    _set_shared(shared, direction)
    task_params = _task_params(model)
    if task_params:
        _accumulate(task_params, torch.autograd.grad(losses.sum(), task_params, allow_unused=True,
                                                     retain_graph=True))
    _backward_extras(model, aggregator)
    _average_rest(model, aggregator, shared, dist)
    return StepInfo(mean_losses, w, gram)


def _representation_step(model: MultiTaskModel, aggregator: Aggregator, x: Tensor, y: Tensor,
                         classes: tuple[int, ...], shared: list[Tensor], partitioned: bool,
                         dist: DistContext) -> StepInfo:
    """MGDA-UB style: the aggregator reads the Gram matrix of the per-task gradients of the shared
    representation, and their weighted sum goes back through the shared layers once. With a partitioned batch
    task i's gradient lives on its own rows only, so one backward gives them all and the Gram matrix is
    diagonal. On several ranks the global representation is the ranks' stacked, and its gradient on a rank's
    rows is that rank's divided by the world size, so the global Gram matrix is the ranks' summed over world^2."""
    rep, outputs = model.forward_with_representation(x)
    t = len(model.tasks)
    losses = (grouped_losses if partitioned else dense_losses)(outputs, y, model.tasks, classes)
    task_params = _task_params(model)
    if partitioned and rep.shape[0] == x.shape[0]:  # rows of the representation are the batch's examples
        grads = torch.autograd.grad(losses.sum(), [rep, *task_params], retain_graph=True, allow_unused=True)
        _accumulate(task_params, list(grads[1:]))
        rows = grads[0].reshape(t, -1)
        gram, mean_losses = mean_over_ranks(dist, torch.diag((rows * rows).sum(1)) / dist.world, losses)
        w = _weights(aggregator, gram, mean_losses)
        cotangent = (w.to(rows.dtype)[:, None] * rows).view_as(rep)
    else:
        if task_params:
            _accumulate(task_params, torch.autograd.grad(losses.sum(), task_params, allow_unused=True,
                                                         retain_graph=True))
        jac = task_gradients(losses, [rep])
        gram, mean_losses = mean_over_ranks(dist, jac @ jac.T / dist.world, losses)
        w = _weights(aggregator, gram, mean_losses)
        cotangent = (w.to(jac.dtype) @ jac).view_as(rep)
    torch.autograd.backward(rep, cotangent, inputs=shared)
    _backward_extras(model, aggregator)
    _average_rest(model, aggregator, [], dist)
    return StepInfo(mean_losses, w, gram)


LOOP_TASKS = 8  # up to this many tasks, one plain backward per task beats a vmapped one through convolutions


def _dense_trunk_step(model: MultiTaskModel, aggregator: Aggregator, x: Tensor, y: Tensor,
                      classes: tuple[int, ...], shared: list[Tensor], dist: DistContext) -> StepInfo:
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
    w, gram, direction, mean_losses = _aggregate(aggregator, jac, losses, dist)
    _set_shared(shared, direction)
    _backward_extras(model, aggregator)
    _average_rest(model, aggregator, shared, dist)
    return StepInfo(mean_losses, w, gram)


def _partitioned_trunk_step(model: MultiTaskModel, trunk: torch.nn.Module, aggregator: Aggregator, x: Tensor,
                            y: Tensor, classes: tuple[int, ...], shared: list[Tensor],
                            dist: DistContext) -> StepInfo:
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
    w, gram, direction, mean_losses = _aggregate(aggregator, jac, losses, dist)
    _set_shared(shared, direction)
    _backward_extras(model, aggregator)
    _average_rest(model, aggregator, shared, dist)
    return StepInfo(mean_losses, w, gram)


def _aggregate(aggregator: Aggregator, jac: Tensor, losses: Tensor,
               dist: DistContext) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(weights [T], Gram matrix [T, T], shared direction [P], losses [T]) of the global batch, from this rank's
    per-task gradients `jac` [T, P] and `losses` [T], both averaged over the ranks first (one all-reduce of
    T * (P + 1) values), so that every rank weights the same matrix and stateful aggregators stay in step."""
    jac, mean_losses = mean_over_ranks(dist, jac, losses)
    gram = jac @ jac.T
    w = _weights(aggregator, gram, mean_losses)
    return w, gram, w.to(jac.dtype) @ jac, mean_losses


def _weights(aggregator: Aggregator, gram: Tensor, losses: Tensor) -> Tensor:
    return aggregator.weights(gram, losses.detach()).detach()
