"""Reptile (Nichol et al., 2018): adapt to each task by a few first-order steps, then move the
meta-parameters towards the adapted ones, theta += eps * mean_b(phi_b - theta).

The direction theta - mean_b(phi_b) is written into .grad, so an SGD outer optimiser with learning rate
eps (the recipe anneals it linearly to 0) performs exactly Reptile's update, and everything that handles
gradients (checkpoints, distributed all-reduce) works unchanged.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..data.episodes import Support, TaskBatch
from .base import FewShotAlgorithm, Predictor, Steps, task_metrics
from .contract import Contract
from .inner_loop import InnerLoop, SecondMoments, task_loss
from .maml import adapted_predictor

EVAL_SEED = 0
"""The seed of every evaluation task's mini-batch order."""


def _orders(tasks: int, count: int, epochs: int, generator: torch.Generator | None, seeds: Tensor | None) -> Tensor:
    """[B, epochs * count]: each task's examples in `epochs` fresh random orders, drawn from `generator`, or
    from each task's own seed (then independent of the other tasks of the batch)."""
    if seeds is None:
        return torch.cat([torch.rand(tasks, count, generator=generator).argsort(1) for _ in range(epochs)], dim=1)
    keys = [torch.rand(epochs, count, generator=torch.Generator().manual_seed(int(seed))) for seed in seeds]
    return torch.stack(keys).argsort(2).flatten(1)


def minibatches(
    x: Tensor, y: Tensor, size: int, steps: int, generator: torch.Generator | None = None, seeds: Tensor | None = None
) -> list[tuple[Tensor, Tensor]]:
    """`steps` mini-batches of `size` examples per task from x [B, S, ...], y [B, S]: each task's examples
    in a fresh random order, taken in turn and reshuffled once used up (sampling without replacement). The
    orders come from `seeds` (one per task) when given, else from `generator`."""
    tasks, count = y.shape[:2]
    size = min(size, count)
    epochs = -(-steps * size // count)
    order = _orders(tasks, count, epochs, generator, seeds)
    batches = []
    for step in range(steps):
        index = order[:, step * size : (step + 1) * size].to(y.device)
        gather = index.view(tasks, size, *([1] * (x.dim() - 2))).expand(-1, -1, *x.shape[2:])
        batches.append((x.gather(1, gather), y.gather(1, index)))
    return batches


class Reptile(FewShotAlgorithm):
    """Reptile over the inner-loop engine: `inner_steps` Adam (beta1 = 0) or SGD steps on mini-batches of
    `inner_batch` examples drawn from each task's support and query examples together.

    Evaluation adapts with `eval_steps` steps on mini-batches of `eval_batch` support examples; with
    `transductive` the query set is normalised with its own batch statistics (the paper's "transduction").
    With `shared_moments` (Adam only), the inner Adam's second moments run on across tasks and outer steps, as
    in the paper's code, and each evaluation task starts from its own copy of them (the paper's code restores
    the whole trained state, optimiser included, after each evaluation task).
    """

    #: every task's inner loop normalises with its own batch statistics: nothing to synchronise across ranks
    contract = Contract(output_layer=True, regression=True, adaptation_steps=True, per_task_batch_norm=True)

    def __init__(
        self,
        backbone: nn.Module,
        inner_lr: float = 1e-3,
        inner_steps: Steps = 5,
        inner_batch: int = 10,
        eval_steps: Steps = 50,
        eval_batch: int = 5,
        inner_optimizer: str = "adam",
        transductive: bool = True,
        shared_moments: bool = True,
    ) -> None:
        super().__init__()
        if min(inner_steps, inner_batch, eval_batch) < 1 or eval_steps < 0:
            raise ValueError("Reptile needs inner_steps, inner_batch, eval_batch >= 1 and eval_steps >= 0")
        self.inner = InnerLoop(
            backbone, steps=inner_steps, lr=inner_lr, first_order=True, optimizer=inner_optimizer, betas=(0.0, 0.999)
        )
        self.inner_batch, self.eval_steps, self.eval_batch = inner_batch, eval_steps, eval_batch
        self.transductive = transductive
        shared = shared_moments and inner_optimizer == "adam"
        self.moments = SecondMoments(self.inner.params()) if shared else None

    @property
    def backbone(self) -> nn.Module:
        return self.inner.model

    def _adapt_batch(self, batch: TaskBatch) -> tuple[dict[str, Tensor], Tensor, Tensor]:
        """Adapted parameters [B, ...] (detached) and the examples they were trained on."""
        x = torch.cat([batch.support_x, batch.query_x], dim=1)
        y = torch.cat([batch.support_y, batch.query_y], dim=1)
        steps = self.inner.steps
        batches = minibatches(x, y, self.inner_batch, steps, seeds=batch.task_seeds)
        params, _ = self.inner.adapted(batches, steps, self.moments)
        return params, x, y

    def meta_loss(self, batch: TaskBatch) -> tuple[Tensor, dict[str, Tensor]]:
        """0.5 * ||theta - mean_b(phi_b)||^2, whose gradient is Reptile's direction theta - mean_b(phi_b)."""
        phi, x, y = self._adapt_batch(batch)
        theta = self.inner.params()
        start = x.new_zeros((), dtype=torch.float32)
        loss = sum((0.5 * (theta[n] - phi[n].mean(0)).pow(2).sum() for n in self.inner.adapt_names), start)
        return loss, self._metrics(phi, x, y)

    def meta_backward(self, batch: TaskBatch) -> dict[str, Tensor]:
        phi, x, y = self._adapt_batch(batch)
        for name, theta in self.inner.params().items():
            direction = theta.detach() - phi[name].mean(0)
            theta.grad = direction if theta.grad is None else theta.grad + direction
        return self._metrics(phi, x, y)

    def _metrics(self, phi: dict[str, Tensor], x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """Loss and accuracy of the adapted networks on the examples they were adapted on."""
        with torch.no_grad():
            outputs = self.inner.forward_tasks(phi, x, set(self.inner.adapt_names))
            loss = torch.vmap(task_loss)(outputs, y).mean()
        return task_metrics(loss, outputs, y)

    def _eval_moments(self, tasks: int) -> SecondMoments | None:
        """A copy of the running moments for each of `tasks` evaluation tasks (made outside inference mode: they
        are updated), so that every task adapts alone from the trained state, as in the paper's code."""
        if self.moments is None:
            return None
        with torch.inference_mode(False):
            return self.moments.copy(tasks)

    def _eval_batches(self, x: Tensor, y: Tensor, steps: int) -> list[tuple[Tensor, Tensor]]:
        """Evaluation mini-batches, each task's order drawn from one fixed seed: reproducible, independent of
        the training stream, and the same for a task whatever the other tasks of its batch."""
        return minibatches(x, y, self.eval_batch, steps, seeds=torch.full((y.shape[0],), EVAL_SEED))

    def predict(self, batch: TaskBatch, steps: int | None = None) -> Tensor:
        """Query outputs after `steps` inner steps (None: `eval_steps`), every task adapted by itself."""
        steps = self.resolve_steps(steps, self.eval_steps)
        data = self._eval_batches(batch.support_x, batch.support_y, steps)
        params, batched = self.inner.adapted(data, steps, self._eval_moments(len(batch)))
        return self.inner.query_outputs(params, batched, batch.support_x, batch.query_x, self.transductive).detach()

    def adapt(self, support: Support, steps: int | None = None) -> Predictor:
        steps = self.resolve_steps(steps, self.eval_steps)
        data = self._eval_batches(support.x.unsqueeze(0), support.y.unsqueeze(0), steps)
        return adapted_predictor(self.inner, support, steps, self.transductive, data, self._eval_moments(1))
