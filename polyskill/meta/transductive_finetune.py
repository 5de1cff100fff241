"""Transductive fine-tuning (Dhillon et al., 2020, "A Baseline for Few-Shot Image Classification"): a new head
started from the support prototypes, fine-tuned with the backbone (or alone) on the support cross-entropy plus the
Shannon entropy of the query predictions."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from ..data.episodes import Support, TaskBatch
from ..nn.backbone import Backbone
from .base import Predictor, Steps
from .contract import Contract
from .distances import prototypes
from .inner_loop import Params
from .transductive import FeatureLearner, TaskSupport, check_rate, entropy, full_precision

FINETUNE = ("all", "head")

Head = dict[str, Tensor]
"""The new head: `weight` [N, D] and `bias` [N] of logits scale * (z / |z|) . w_k + b_k."""


def initial_head(z: Tensor, y: Tensor, way: int) -> Head:
    """The support-based initialisation: w_k the mean of the unit-length support embeddings of class k, b_k = 0
    (z [S, D], y [S])."""
    weight = prototypes(F.normalize(z, dim=-1).unsqueeze(0), y.unsqueeze(0), way).squeeze(0)
    return {"weight": weight, "bias": z.new_zeros(way)}


def head_logits(head: Head, z: Tensor, scale: float) -> Tensor:
    """Logits [M, N] of embeddings z [M, D]: scale * (z / |z|) . w_k + b_k."""
    return scale * F.normalize(z, dim=-1) @ head["weight"].T + head["bias"]


def finetune_loss(head: Head, zs: Tensor, ys: Tensor, zq: Tensor, scale: float, entropy_weight: float) -> Tensor:
    """The support cross-entropy + entropy_weight * the mean Shannon entropy of the query predictions."""
    support = F.cross_entropy(head_logits(head, zs, scale), ys)
    return support + entropy_weight * entropy(head_logits(head, zq, scale).softmax(-1)).mean()


class TransductiveFinetune(FeatureLearner):
    """Dhillon et al.'s transductive fine-tuning over a ProtoNet-trained embedding: the head of logits
    scale * cos-like (z / |z|) . w_k + b_k started at the unit-length support means, then `steps` (25) Adam steps
    (lr 5e-5, the paper's) on the support cross-entropy + `entropy_weight` (1) * the query entropy. `finetune`
    `all` also fine-tunes the backbone (the paper), `head` the head alone (the embedding is computed once).

    Each task's fine-tuning runs on copies: the backbone is called through `torch.func.functional_call` with a dict
    of cloned parameters and buffers, so no test episode ever changes the model. Transductive: the entropy term
    is over the whole query set.
    """

    contract = Contract(transductive=True)

    def __init__(
        self,
        backbone: Backbone,
        finetune: str = "all",
        steps: Steps = 25,
        lr: float = 5e-5,
        entropy_weight: float = 1.0,
        scale: float = 1.0,
        mean_momentum: float = 0.01,
    ) -> None:
        super().__init__(backbone, "un", mean_momentum)
        if finetune not in FINETUNE:
            raise ValueError(f"finetune must be one of {', '.join(FINETUNE)}, got {finetune!r}")
        if steps < 0 or lr <= 0 or scale <= 0 or entropy_weight < 0:
            raise ValueError(
                f"transductive fine-tuning needs steps >= 0, lr > 0, scale > 0, entropy_weight >= 0; got {steps}, "
                f"{lr}, {scale}, {entropy_weight}"
            )
        check_rate("transductive fine-tuning", lr)
        self.finetune, self.steps, self.lr = finetune, steps, lr
        self.entropy_weight, self.scale = entropy_weight, scale

    def fine_tune(self, embed: Callable[[Params], tuple[Tensor, Tensor]], body: Params, sy: Tensor, way: int) -> Tensor:
        """One task's query logits [M, way] after fine-tuning its new head and the tensors of `body` (none: the head
        alone), `embed(body)` giving the support and query embeddings; sy [S] the support labels."""
        with torch.no_grad():
            head = initial_head(embed(body)[0], sy, way)
        leaves = [*body.values(), *head.values()]
        for t in leaves:
            t.requires_grad_()
        optimizer = torch.optim.Adam(leaves, lr=self.lr)
        for _ in range(self.steps):
            optimizer.zero_grad(set_to_none=True)
            zs, zq = embed(body)
            finetune_loss(head, zs, sy, zq, self.scale, self.entropy_weight).backward()
            optimizer.step()
        with torch.no_grad():
            return head_logits(head, embed(body)[1], self.scale)

    def task_logits(self, sx: Tensor, sy: Tensor, way: int, qx: Tensor) -> Tensor:
        """One task's query logits [M, way], backbone and head fine-tuned on copies (support inputs sx [S, ...] with
        labels sy [S], queries qx [M, ...])."""
        module = cast(nn.Module, self.backbone)
        with torch.inference_mode(False), torch.enable_grad(), full_precision(qx.device):
            inputs = torch.cat([sx, qx]).clone()
            fixed = {n: p.detach() for n, p in module.named_parameters() if not p.requires_grad}
            fixed |= {n: b.clone() for n, b in module.named_buffers()}
            body = {n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad}

            def embed(params: Params) -> tuple[Tensor, Tensor]:
                z = functional_call(module, {**fixed, **params}, (inputs,)).float()
                return z[: len(sx)], z[len(sx) :]

            return self.fine_tune(embed, body, sy.clone(), way)

    def predict(self, batch: TaskBatch, steps: int | None = None) -> Tensor:
        if self.finetune == "head":
            return super().predict(batch, steps)
        self.check_steps(steps)
        return torch.stack(
            [
                self.task_logits(batch.support_x[b], batch.support_y[b], batch.way, batch.query_x[b])
                for b in range(len(batch))
            ]
        )

    def adapt(self, support: Support, steps: int | None = None) -> Predictor:
        """With `finetune: all`, a predictor that fine-tunes on the support set together with the queries it is
        given; with `head`, the metric learners' predictor (the embedding shared, the head fitted per call)."""
        if self.finetune == "head":
            return super().adapt(support, steps)
        self.check_steps(steps)
        way = int(support.num_classes or 0)
        return lambda x: self.task_logits(support.x, support.y, way, x)

    def score(self, zq: Tensor, state: TaskSupport) -> Tensor:
        """The head alone fine-tuned on each task's embeddings (`finetune: head`)."""
        with torch.inference_mode(False), torch.enable_grad(), full_precision(zq.device):
            zs, ys, zq = state.z.clone(), state.y.clone(), zq.clone()
            return torch.stack(
                [self.fine_tune(constant(zs[b], zq[b]), {}, ys[b], state.way) for b in range(zq.shape[0])]
            )


def constant(zs: Tensor, zq: Tensor) -> Callable[[Params], tuple[Tensor, Tensor]]:
    """The embedding function of a head-only fit: the same support and query embeddings whatever the parameters."""
    return lambda _: (zs, zq)


__all__ = ["TransductiveFinetune", "finetune_loss", "head_logits", "initial_head"]
