"""Implicit MAML (Rajeswaran et al., 2019): each task's adapted parameters solve a proximal problem around the
meta-parameters theta,

    phi*(theta) = argmin_phi  L_support(phi) + lam/2 * ||phi - theta||^2,

approximately, by `inner_steps` gradient steps from phi = theta taken without any graph, and the meta-gradient
of a task's query loss comes from the implicit function theorem instead of backpropagation through those steps:

    d L_query(phi*) / d theta = (I + H / lam)^-1 grad L_query(phi*),    H = Hessian of L_support at phi*,

solved by `cg_steps` conjugate-gradient iterations, each one Hessian-vector product (double backward through
one support-gradient graph). The memory held is that of one support gradient and one query gradient per task,
whatever the number of inner steps.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..data.episodes import Support, TaskBatch
from .base import FewShotAlgorithm, Predictor, Steps, task_metrics
from .conjugate_gradient import conjugate_gradient, flatten, unflatten
from .contract import Contract
from .inner_loop import InnerLoop, Params, task_loss
from .maml import task_predictor

#: the largest cg_damping / lam: the implicit gradient shrinks by 1 + cg_damping / lam
MAX_DAMPING_RATIO = 1e6


def _positive_int(name: str, value: object, low: int) -> None:
    """ValueError unless `value` is an integer (not a bool) >= `low`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


class IMAML(FewShotAlgorithm):
    """iMAML over the inner-loop engine: `inner_steps` gradient steps of `inner_lr` on each task's proximal
    objective (support loss + `lam`/2 ||phi - theta||^2), then the implicit meta-gradient by `cg_steps`
    conjugate-gradient steps on (I + (H + `cg_damping` I) / lam) g = grad L_query(phi).

    `meta_loss` returns a surrogate whose value is the mean query loss after adaptation and whose gradient with
    respect to theta is the mean implicit meta-gradient: query loss (detached) + sum(theta * g) - sum(theta * g)
    detached, g being constant. The default `meta_backward` (its backward pass) thus writes the implicit gradient
    into `.grad` for the outer optimiser, distributed all-reduce and checkpoints alike; the graph of each chunk of
    `task_chunk` tasks is freed before the next. Batch norm is per task, as in MAML (TaskBatchNorm). A new task is
    learned by the same regularised inner problem: `eval_steps` steps (default `inner_steps`), and `transductive`
    normalises the query set with its own batch statistics.
    """

    #: every task's inner loop normalises with its own batch statistics: nothing to synchronise across ranks
    contract = Contract(output_layer=True, regression=True, adaptation_steps=True, per_task_batch_norm=True)

    def __init__(
        self,
        backbone: nn.Module,
        inner_lr: float = 0.1,
        inner_steps: Steps = 16,
        eval_steps: Steps | None = None,
        lam: float = 2.0,
        cg_steps: Steps = 5,
        cg_damping: float = 0.0,
        transductive: bool = True,
        vectorize: str = "auto",
        task_chunk: int = 32,
    ) -> None:
        super().__init__()
        if not (isinstance(lam, (int, float)) and math.isfinite(lam) and lam > 0):
            raise ValueError(f"lam (the proximal regularisation) must be a finite number > 0, got {lam!r}")
        _positive_int("cg_steps", cg_steps, 1)
        _positive_int("inner_steps", inner_steps, 0)
        _positive_int("task_chunk", task_chunk, 1)
        if eval_steps is not None:
            _positive_int("eval_steps", eval_steps, 0)
        if not (math.isfinite(cg_damping) and cg_damping >= 0):
            raise ValueError(f"cg_damping must be a finite number >= 0, got {cg_damping!r}")
        if cg_damping > MAX_DAMPING_RATIO * lam:
            raise ValueError(
                f"cg_damping must be <= {MAX_DAMPING_RATIO:g} * lam (got {cg_damping:g} with lam {lam:g}): the "
                "implicit gradient is about the query gradient over 1 + cg_damping / lam, so a larger damping leaves "
                "nothing to learn from and overflows float32"
            )
        if not (math.isfinite(inner_lr) and inner_lr > 0):
            raise ValueError(f"inner_lr must be a finite number > 0, got {inner_lr!r}")
        if inner_lr * lam >= 2:
            raise ValueError(
                f"inner_lr * lam must be < 2 (got {inner_lr:g} * {lam:g}): the proximal term alone would make "
                "the inner gradient steps diverge"
            )
        self.inner = InnerLoop(backbone, steps=inner_steps, lr=inner_lr, first_order=True, vectorize=vectorize)
        self.lam, self.cg_steps, self.cg_damping = float(lam), cg_steps, float(cg_damping)
        self.eval_steps = inner_steps if eval_steps is None else eval_steps
        self.transductive, self.task_chunk = transductive, task_chunk

    @property
    def backbone(self) -> nn.Module:
        return self.inner.model

    # -- the inner problem ---------------------------------------------------------------------------
    def _losses(self, leaves: Params, x: Tensor, y: Tensor) -> Tensor:
        """Each task's loss [B] with its own parameters `leaves` (all [B, ...]), batch norm per task."""
        return torch.vmap(task_loss)(self.inner.forward_tasks(leaves, x, set(leaves)), y)

    def solve(self, support_x: Tensor, support_y: Tensor, steps: int) -> tuple[Params, set[str]]:
        """Each task's parameters after `steps` gradient steps on its proximal objective from theta,
        phi <- phi - inner_lr * (grad L_support(phi) + lam * (phi - theta)), detached, and the names that carry a
        task axis (none after zero steps). Each step's graph is freed before the next: no graph through the loop."""
        tasks = support_x.shape[0]
        with torch.inference_mode(False), torch.enable_grad():
            x, y = (t.clone() if t.is_inference() else t for t in (support_x, support_y))
            theta = {n: (t.clone() if t.is_inference() else t).detach() for n, t in self.inner.params().items()}
            if steps == 0:
                return theta, set()
            phi = {n: t.expand(tasks, *t.shape) for n, t in theta.items()}
            for _ in range(steps):
                leaves = {n: t.detach().requires_grad_() for n, t in phi.items()}
                grads = torch.autograd.grad(self._losses(leaves, x, y).sum(), list(leaves.values()), allow_unused=True)
                with torch.no_grad():
                    phi = {
                        n: leaf - self.inner.lr * ((0 if g is None else g) + self.lam * (leaf - theta[n]))
                        for (n, leaf), g in zip(leaves.items(), grads, strict=True)
                    }
        return phi, set(phi)

    # -- the outer objective -------------------------------------------------------------------------
    def implicit_gradients(self, batch: TaskBatch) -> tuple[Params, Tensor, Tensor]:
        """Each task's implicit meta-gradient [B, ...] per parameter (CG's approximation), its query losses [B]
        after adaptation and its query outputs (both detached)."""
        phi, batched = self.solve(batch.support_x, batch.support_y, self.inner.steps)
        tasks, names = len(batch), list(phi)
        with torch.inference_mode(False), torch.enable_grad():  # evaluation may call it under inference mode
            sx, sy, qx, qy = (
                t.clone() if t.is_inference() else t
                for t in (batch.support_x, batch.support_y, batch.query_x, batch.query_y)
            )
            leaves = {
                n: (t if n in batched else t.expand(tasks, *t.shape)).detach().clone().requires_grad_()
                for n, t in phi.items()
            }
            outputs = self.inner.forward_tasks(leaves, qx, set(leaves))
            losses = torch.vmap(task_loss)(outputs, qy)
            query_grads = torch.autograd.grad(losses.sum(), list(leaves.values()), allow_unused=True)
            support = self._losses(leaves, sx, sy).sum()
            support_grads = torch.autograd.grad(support, list(leaves.values()), create_graph=True, allow_unused=True)
            curved = [i for i, g in enumerate(support_grads) if g is not None and g.requires_grad]
            shapes = [leaf.shape[1:] for leaf in leaves.values()]

            def matvec(v: Tensor) -> Tensor:
                """(I + (H + damping I) / lam) v for every task at once, H v by double backward."""
                parts = unflatten(v, shapes)
                products: tuple[Tensor | None, ...] = (None,) * len(parts)
                if curved:
                    products = torch.autograd.grad(
                        [support_grads[i] for i in curved],
                        list(leaves.values()),
                        grad_outputs=[parts[i] for i in curved],
                        retain_graph=True,
                        allow_unused=True,
                    )
                hv = [torch.zeros_like(p) if h is None else h for p, h in zip(parts, products, strict=True)]
                return v + (flatten(hv) + self.cg_damping * v) / self.lam

            target = flatten(
                [torch.zeros_like(leaves[n]) if g is None else g for n, g in zip(names, query_grads, strict=True)]
            )
            solution = conjugate_gradient(lambda v: matvec(v).detach(), target.detach(), self.cg_steps)
        grads = dict(zip(names, unflatten(solution, shapes), strict=True))
        return grads, losses.detach(), outputs.detach()

    def meta_loss(self, batch: TaskBatch) -> tuple[Tensor, dict[str, Tensor]]:
        """The mean query loss after adaptation, as a surrogate whose gradient is the mean implicit meta-gradient."""
        tasks = len(batch)
        theta = self.inner.params()
        total = {n: torch.zeros_like(t) for n, t in theta.items()}
        losses, outputs = [], []
        for start in range(0, tasks, self.task_chunk):
            grads, chunk_losses, chunk_outputs = self.implicit_gradients(
                batch.slice(start, min(start + self.task_chunk, tasks))
            )
            for n, g in grads.items():
                total[n] += g.sum(0) / tasks
            losses.append(chunk_losses)
            outputs.append(chunk_outputs)
        loss = torch.cat(losses).mean().float()
        surrogate = sum((((t - t.detach()) * total[n]).sum() for n, t in theta.items()), loss.new_zeros(()))
        metrics = task_metrics(loss, torch.cat(outputs), batch.query_y)
        return loss + surrogate, metrics

    # -- a new task ----------------------------------------------------------------------------------
    def predict(self, batch: TaskBatch, steps: int | None = None) -> Tensor:
        """Query outputs after `steps` proximal inner steps (None: `eval_steps`) from the meta-parameters."""
        steps = self.resolve_steps(steps, self.eval_steps)
        params, batched = self.solve(batch.support_x, batch.support_y, steps)
        return self.inner.query_outputs(params, batched, batch.support_x, batch.query_x, self.transductive).detach()

    def adapt(self, support: Support, steps: int | None = None) -> Predictor:
        steps = self.resolve_steps(steps, self.eval_steps)
        sx, sy = support.x.unsqueeze(0), support.y.unsqueeze(0)
        params, batched = self.solve(sx, sy, steps)
        return task_predictor(self.inner, params, batched, sx, self.transductive)
