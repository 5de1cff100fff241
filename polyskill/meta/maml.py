"""MAML (Finn et al., 2017) and its family as options of one class over the inner-loop engine:
FOMAML (`first_order`), ANIL (`head_only`, Raghu et al., 2020; `adapt` names any other modules that adapt, e.g.
the last block and the head of a ResNet-12), Meta-SGD (`learn_lr='per_parameter'`,
Li et al., 2017) and MAML++'s per-step rates and multi-step loss (`learn_lr='per_step'`, `multi_step_loss`,
Antoniou et al., 2019). With `inner_steps=0` it is the pretrained baseline: trained on every task's data
as one supervised problem, fine-tuned by `eval_steps` gradient steps on a new task's support set.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..data.episodes import Support, TaskBatch
from .base import FewShotAlgorithm, Predictor, Steps, task_metrics
from .contract import Contract
from .inner_loop import LEARN_LR, InnerLoop, Params, SecondMoments, task_loss

QUERY_PASSES = ("auto", "loop", "vmap")


def head_names(model: nn.Module) -> list[str]:
    """The parameters of `model.head` if it has one, else those of its last module holding parameters."""
    head = getattr(model, "head", None)
    if isinstance(head, nn.Module) and any(True for _ in head.parameters()):
        return [f"head.{name}" for name, _ in head.named_parameters()]
    owners = [name for name, module in model.named_modules() if any(True for _ in module.parameters(recurse=False))]
    if not owners:
        raise ValueError("the model has no parameters")
    prefix = f"{owners[-1]}." if owners[-1] else ""
    return [name for name, _ in model.named_parameters() if name.startswith(prefix) and "." not in name[len(prefix) :]]


def named_parameters_under(model: nn.Module, prefixes: Sequence[str]) -> list[str]:
    """The parameters of the sub-modules (or single parameters) that `prefixes` name, e.g. `["blocks.3", "head"]`
    for the last residual block and the head; a prefix that names nothing is a ValueError listing the top-level
    modules to choose from."""
    names = [name for name, _ in model.named_parameters()]
    chosen = []
    for prefix in prefixes:
        prefix = str(prefix).rstrip(".")
        matched = [n for n in names if n == prefix or n.startswith(prefix + ".")]
        if not matched:
            tops = sorted({n.split(".")[0] for n in names})
            raise ValueError(f"adapt: {prefix!r} names no parameters of the network (its modules: {', '.join(tops)})")
        chosen += [n for n in matched if n not in chosen]
    return chosen


class MAML(FewShotAlgorithm):
    """Model-agnostic meta-learning: the outer loss is the query loss after `inner_steps` support steps.

    `backbone` maps inputs to outputs (logits of `way` classes, or regression values). Evaluation adapts
    with `eval_steps` steps (default: `inner_steps`) and, `transductive` like the MAML paper, normalises
    the query set with its own batch statistics; otherwise each query example is normalised together with
    the support set. `vectorize` chooses how inner gradients are computed (see InnerLoop); `query_pass` how
    the query losses are: one vmapped pass, or a loop over tasks (`auto`: a loop for a convolutional
    network on CPU, vmap otherwise). `meta_backward` takes `task_chunk` tasks at a time, so the memory it
    holds does not grow with the meta-batch.
    """

    #: every task's inner loop normalises with its own batch statistics: nothing to synchronise across ranks
    contract = Contract(output_layer=True, regression=True, adaptation_steps=True, per_task_batch_norm=True)
    meta_steps: Tensor

    def __init__(
        self,
        backbone: nn.Module,
        inner_lr: float = 0.4,
        inner_steps: Steps = 1,
        eval_steps: Steps | None = None,
        first_order: bool = False,
        head_only: bool = False,
        adapt: Sequence[str] | None = None,
        learn_lr: str = "none",
        multi_step_loss: bool = False,
        msl_anneal_steps: int = 0,
        transductive: bool = True,
        vectorize: str = "auto",
        query_pass: str = "auto",
        task_chunk: int = 8,
    ) -> None:
        super().__init__()
        if learn_lr not in LEARN_LR:
            raise ValueError(f"learn_lr must be one of {', '.join(LEARN_LR)}, got {learn_lr!r}")
        if (eval_steps is not None and eval_steps < 0) or msl_anneal_steps < 0 or task_chunk < 1:
            raise ValueError("eval_steps and msl_anneal_steps must be >= 0 and task_chunk >= 1")
        if query_pass not in QUERY_PASSES:
            raise ValueError(f"query_pass must be one of {', '.join(QUERY_PASSES)}, got {query_pass!r}")
        if head_only and adapt is not None:
            raise ValueError("give head_only or adapt, not both (adapt: [head] is head_only)")
        if adapt is not None and (isinstance(adapt, str) or not adapt):
            raise ValueError(f"adapt must be a non-empty list of module names, e.g. [blocks.3, head], got {adapt!r}")
        names = head_names(backbone) if head_only else None
        if adapt is not None:
            names = named_parameters_under(backbone, adapt)
        self.inner = InnerLoop(
            backbone,
            steps=inner_steps,
            lr=inner_lr,
            first_order=first_order,
            adapt_names=names,
            learn_lr=learn_lr,
            vectorize=vectorize,
        )
        self.eval_steps = inner_steps if eval_steps is None else eval_steps
        self.multi_step_loss, self.msl_anneal_steps = multi_step_loss, msl_anneal_steps
        self.transductive, self.query_pass, self.task_chunk = transductive, query_pass, task_chunk
        self.register_buffer("meta_steps", torch.zeros((), dtype=torch.long))

    @property
    def backbone(self) -> nn.Module:
        return self.inner.model

    # -- the outer objective ------------------------------------------------------------------------
    def step_weights(self) -> list[float]:
        """Weight of the query loss after each inner step: the last only, or MAML++'s annealed multi-step loss."""
        n = self.inner.steps
        if n == 0 or not self.multi_step_loss:
            return [0.0] * max(n - 1, 0) + [1.0]
        progress = min(1.0, float(self.meta_steps) / self.msl_anneal_steps) if self.msl_anneal_steps else 1.0
        early = max((1.0 - progress) / n, 0.03 / n)
        return [early] * (n - 1) + [1.0 - early * (n - 1)]

    def _trajectory(self, batch: TaskBatch) -> tuple[list[Params], set[str]]:
        """Parameters after each inner step (just the meta-parameters when there are no inner steps)."""
        params = self.inner.params()
        trajectory = self.inner.adapt(params, (batch.support_x, batch.support_y))
        if not trajectory:
            return [params], set()
        return trajectory, set(self.inner.adapt_names)

    def _weighted_query_loss(self, batch: TaskBatch) -> tuple[Tensor, Tensor]:
        """The step-weighted mean query loss of the batch (one graph) and the final query outputs."""
        trajectory, batched = self._trajectory(batch)
        loss = batch.query_x.new_zeros((), dtype=torch.float32)
        for weight, params in zip(self.step_weights(), trajectory, strict=True):
            if weight:
                outputs = self.inner.forward_tasks(params, batch.query_x, batched)
                loss = loss + weight * torch.vmap(task_loss)(outputs, batch.query_y).mean()
        return loss, outputs

    def meta_loss(self, batch: TaskBatch) -> tuple[Tensor, dict[str, Tensor]]:
        """The weighted query loss, as one graph through every task (see `meta_backward` for the lean path)."""
        loss, outputs = self._weighted_query_loss(batch)
        return loss, task_metrics(loss.detach(), outputs.detach(), batch.query_y)

    def _query_loop(self) -> bool:
        if self.query_pass != "auto":
            return self.query_pass == "loop"
        return self.inner.convolves_on_cpu()

    def meta_backward(self, batch: TaskBatch) -> dict[str, Tensor]:
        """Accumulate the meta-gradient into .grad, `task_chunk` tasks at a time, and return the metrics.

        With the query loop, each task's query loss is differentiated with respect to that task's adapted
        parameters (detached, so its graph is freed at once), and the cotangents of a chunk are pushed
        through its inner loop in one backward pass.
        """
        self.meta_steps += 1
        tasks = len(batch)
        metrics: dict[str, Tensor] = {}
        for start in range(0, tasks, self.task_chunk):
            chunk = batch.slice(start, min(start + self.task_chunk, tasks))
            if self._query_loop():
                loss, outputs = self._chunk_backward(chunk, tasks)
            else:
                loss, outputs = self._weighted_query_loss(chunk)
                (loss * len(chunk) / tasks).backward()
                loss, outputs = loss.detach() * len(chunk) / tasks, outputs.detach()
            for key, value in task_metrics(loss, outputs, chunk.query_y).items():
                share = value if key == "loss" else value * len(chunk) / tasks
                metrics[key] = metrics[key] + share if key in metrics else share
        return metrics

    def _chunk_backward(self, chunk: TaskBatch, tasks: int) -> tuple[Tensor, Tensor]:
        """Backward of the chunk's share of the meta-loss (its tasks' losses / `tasks`) by the query loop."""
        trajectory, batched = self._trajectory(chunk)
        surrogate = loss_sum = chunk.query_x.new_zeros((), dtype=torch.float32)
        for weight, params in zip(self.step_weights(), trajectory, strict=True):
            if not weight:
                continue
            names = list(params)
            cotangents: dict[str, list[Tensor]] = {name: [] for name in names}
            outputs = []
            for b in range(len(chunk)):
                leaves = {n: (params[n][b] if n in batched else params[n]).detach().requires_grad_() for n in names}
                out = torch.func.functional_call(self.backbone, leaves, (chunk.query_x[b],))
                loss = task_loss(out, chunk.query_y[b])
                grads = torch.autograd.grad(weight * loss / tasks, list(leaves.values()), allow_unused=True)
                for n, g in zip(names, grads, strict=True):
                    cotangents[n].append(torch.zeros_like(leaves[n]) if g is None else g)
                outputs.append(out.detach())
                loss_sum = loss_sum + weight * loss.detach() / tasks
            for n in names:
                stacked = torch.stack(cotangents[n])
                surrogate = surrogate + (params[n] * (stacked if n in batched else stacked.sum(0))).sum()
        surrogate.backward()
        return loss_sum, torch.stack(outputs)

    # -- a new task ----------------------------------------------------------------------------------
    def adapted_params(self, support_x: Tensor, support_y: Tensor, steps: int) -> tuple[Params, set[str]]:
        """Detached parameters of each task after `steps` support steps, and the names that carry a task axis."""
        return self.inner.adapted((support_x, support_y), steps)

    def predict(self, batch: TaskBatch, steps: int | None = None) -> Tensor:
        """Query outputs after `steps` support steps (None: `eval_steps`) from the meta-parameters."""
        steps = self.resolve_steps(steps, self.eval_steps)
        params, batched = self.adapted_params(batch.support_x, batch.support_y, steps)
        return self.inner.query_outputs(params, batched, batch.support_x, batch.query_x, self.transductive).detach()

    def adapt(self, support: Support, steps: int | None = None) -> Predictor:
        steps = self.resolve_steps(steps, self.eval_steps)
        sx, sy = support.x.unsqueeze(0), support.y.unsqueeze(0)
        params, batched = self.adapted_params(sx, sy, steps)
        return task_predictor(self.inner, params, batched, sx, self.transductive)


def task_predictor(
    inner: InnerLoop, params: Params, batched: set[str], support_x: Tensor, transductive: bool
) -> Predictor:
    """The function from one task's query inputs to outputs, given its adapted `params` (a batch of one)."""

    def predictor(x: Tensor) -> Tensor:
        return inner.query_outputs(params, batched, support_x, x.unsqueeze(0), transductive)[0].detach()

    return predictor


def adapted_predictor(
    inner: InnerLoop,
    support: Support,
    steps: int,
    transductive: bool,
    data: Sequence[tuple[Tensor, Tensor]] | None = None,
    second_moments: SecondMoments | None = None,
) -> Predictor:
    """Adapt `inner`'s network to one task (on `data`, default the whole support set at every step) and
    return the function from query inputs to outputs."""
    sx, sy = support.x.unsqueeze(0), support.y.unsqueeze(0)
    params, batched = inner.adapted(data if data is not None else (sx, sy), steps, second_moments)
    return task_predictor(inner, params, batched, sx, transductive)
