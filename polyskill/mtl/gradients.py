"""Per-task gradients: the [T, P] matrix aggregators read, from one batched backward pass rather than T passes."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, grad_and_value, vmap


def flat(tensors: list[Tensor | None], like: list[Tensor], rows: int) -> Tensor:
    """Concatenate per-task gradients ([T, *shape] each, None = zero) into [T, P]."""
    return torch.cat(
        [
            (g if g is not None else torch.zeros(rows, *p.shape, dtype=p.dtype, device=p.device)).reshape(rows, -1)
            for g, p in zip(tensors, like, strict=True)
        ],
        dim=1,
    )


def task_gradients(losses: Tensor, inputs: list[Tensor], retain_graph: bool = True) -> Tensor:
    """Gradients of each of the T `losses` w.r.t. `inputs`, as [T, P]: one backward pass vectorised over the
    T one-hot cotangents (`is_grads_batched`), instead of T passes."""
    t = losses.shape[0]
    eye = torch.eye(t, dtype=losses.dtype, device=losses.device)
    grads = torch.autograd.grad(
        losses, inputs, grad_outputs=eye, is_grads_batched=True, retain_graph=retain_graph, allow_unused=True
    )
    return flat(list(grads), inputs, t)


def has_batch_coupling(model: nn.Module) -> bool:
    """True if some layer mixes the examples of a batch (batch norm in training mode), so that a task's loss
    on its own rows is not the same function as on the whole batch."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training for m in model.modules())


def grouped_task_gradients(
    model: nn.Module, x: Tensor, y: Tensor, loss: Callable[[dict[str, Tensor], Tensor, Tensor], Tensor]
) -> tuple[dict[str, Tensor], Tensor]:
    """Per-task gradients of every parameter when each task owns its rows: `x` [T, n, ...], `y` [T, n].

    `loss(outputs, y_rows, onehot)` is task i's loss on its rows (`onehot` selects task i). Each task's
    backward touches only its own n rows, so the whole Jacobian costs about one backward pass of the batch
    (not T of them, as with dense one-hot cotangents). Returns ({name: [T, *shape]}, losses [T]).
    """
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = dict(model.named_buffers())
    t = x.shape[0]

    def one(p: dict[str, Tensor], xi: Tensor, yi: Tensor, onehot: Tensor) -> Tensor:
        return loss(functional_call(model, (p, buffers), (xi,)), yi, onehot)

    onehots = torch.eye(t, dtype=torch.float32, device=x.device)
    grads, values = vmap(grad_and_value(one), in_dims=(None, 0, 0, 0))(params, x, y, onehots)
    return grads, values


def grouped_vjp(module: nn.Module, x: Tensor, cotangent: Tensor) -> dict[str, Tensor]:
    """Per-group vector-Jacobian products of `module`'s parameters: for each group i, the gradient of
    <module(x[i]), cotangent[i]>, as {name: [T, *shape]}. `x` [T, n, ...] and `cotangent` [T, n, ...] (the
    gradient of the loss w.r.t. the module's output on those rows). One vmapped pass: the module runs once on
    all T * n rows, and each group's weight gradient reduces over its own n rows only."""
    params = {k: v.detach() for k, v in module.named_parameters()}
    buffers = dict(module.named_buffers())

    def inner(p: dict[str, Tensor], xi: Tensor, ci: Tensor) -> Tensor:
        return (functional_call(module, (p, buffers), (xi,)) * ci).sum()

    return vmap(grad(inner), in_dims=(None, 0, 0))(params, x, cotangent)
