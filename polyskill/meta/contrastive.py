"""Contrastive metric learning: an embedding trained with a pairwise (Hadsell et al., 2006) or triplet
(Schroff et al., 2015; Hermans et al., 2017) loss, then used for nearest-prototype few-shot classification.

The losses are means, not the sums of the papers: over the pairs (or triplets) of all tasks together, so the
loss and its gradient keep their scale whatever the batch size (a sum grows with its square). The sum of the
issue, sum_same d + lambda * sum_diff max(0, m - d), is each mean times its pair count.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.episodes import TaskBatch
from ..errors import ConfigError
from ..nn.backbone import Backbone
from .base import accuracy
from .distances import euclidean_distances, squared_distances
from .protonet import PrototypicalNetworks

LOSSES = ("pairwise", "triplet")
MININGS = ("all", "hard")


def _batched(z: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Give a single set z [M, D], labels [M] a task axis; batched sets pass through."""
    return (z.unsqueeze(0), labels.unsqueeze(0)) if z.dim() == 2 else (z, labels)


def _masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of values where mask holds (0 when it holds nowhere, with the graph kept)."""
    return (values * mask).sum() / mask.sum().clamp_min(1)


def pairwise_contrastive_loss(
    z: Tensor, labels: Tensor, margin: float = 1.0, weight: float = 1.0, squared: bool = False
) -> Tensor:
    """mean_{same, i<j} d(z_i, z_j) + weight * mean_{different, i<j} max(0, margin - d(z_i, z_j)).

    z [M, D] or [B, M, D] with labels [M] or [B, M]; pairs are formed within each task. d is Euclidean;
    `squared` uses d^2 and the squared hinge, as Hadsell et al.
    """
    z, labels = _batched(z, labels)
    d = euclidean_distances(z, z)
    same = labels.unsqueeze(2) == labels.unsqueeze(1)
    upper = torch.ones_like(same).triu(diagonal=1)
    pull, push = d, F.relu(margin - d)
    if squared:
        pull, push = squared_distances(z, z), push.pow(2)
    return _masked_mean(pull, same & upper) + weight * _masked_mean(push, ~same & upper)


def triplet_loss(z: Tensor, labels: Tensor, margin: float = 1.0, mining: str = "all") -> Tensor:
    """Triplet margin loss max(0, d(a, p) - d(a, n) + margin) with Euclidean d, within each task.

    `all`: the mean over the valid triplets (a != p of one class, n of another) whose loss is positive
    (Hermans et al.'s batch-all; easy triplets would dilute it). `hard`: per anchor the farthest positive and
    the nearest negative (batch-hard), averaged over the anchors that have both.
    """
    if mining not in MININGS:
        raise ValueError(f"mining must be one of {MININGS}, got {mining!r}")
    z, labels = _batched(z, labels)
    d = euclidean_distances(z, z)
    same = labels.unsqueeze(2) == labels.unsqueeze(1)
    positive = same & ~torch.eye(same.shape[-1], dtype=torch.bool, device=same.device)
    negative = ~same
    if mining == "hard":
        hardest_positive = d.masked_fill(~positive, float("-inf")).amax(-1)
        hardest_negative = d.masked_fill(~negative, float("inf")).amin(-1)
        valid = positive.any(-1) & negative.any(-1)
        losses = F.relu(hardest_positive - hardest_negative + margin)
        return _masked_mean(losses.masked_fill(~valid, 0.0), valid)
    losses = F.relu(d.unsqueeze(3) - d.unsqueeze(2) + margin)  # [B, anchor, positive, negative]
    valid = positive.unsqueeze(3) & negative.unsqueeze(2)
    return _masked_mean(losses, valid & (losses > 0))


class ContrastiveEmbedding(PrototypicalNetworks):
    """An embedding trained with a contrastive loss on episodes or class batches; classifies by prototypes.

    `meta_loss` embeds each task's support and query and applies the `loss` to their pairs within the task (a
    ClassBatchSampler batch has an empty support and globally labelled queries). `adapt` / `predict` are
    ProtoNet's: negative squared Euclidean distance to the support class means. `margin` and `weight` are the
    pairwise loss's m and lambda (`margin` is also the triplet margin), `squared` its Hadsell et al. form;
    `mining` selects the triplets.
    """

    def __init__(
        self,
        backbone: Backbone,
        loss: str = "pairwise",
        margin: float = 1.0,
        weight: float = 1.0,
        mining: str = "all",
        squared: bool = False,
    ) -> None:
        super().__init__(backbone)
        if loss not in LOSSES:
            raise ConfigError(f"contrastive loss must be one of {', '.join(LOSSES)}, got {loss!r}")
        if mining not in MININGS:
            raise ConfigError(f"triplet mining must be one of {', '.join(MININGS)}, got {mining!r}")
        if margin <= 0 or weight < 0:
            raise ConfigError(f"the margin must be > 0 and the weight >= 0, got {margin} and {weight}")
        self.loss_kind, self.margin, self.pair_weight, self.mining = loss, margin, weight, mining
        self.squared = squared

    def embedding_loss(self, z: Tensor, labels: Tensor) -> Tensor:
        """The configured loss of embeddings z [B, M, D] with labels [B, M]."""
        if self.loss_kind == "triplet":
            return triplet_loss(z, labels, self.margin, self.mining)
        return pairwise_contrastive_loss(z, labels, self.margin, self.pair_weight, self.squared)

    def meta_loss(self, batch: TaskBatch) -> tuple[Tensor, dict[str, Tensor]]:
        n_support = batch.support_x.shape[1]
        z = self.embed(torch.cat([batch.support_x, batch.query_x], dim=1))
        loss = self.embedding_loss(z, torch.cat([batch.support_y, batch.query_y], dim=1))
        metrics = {"loss": loss.detach()}
        if n_support:
            with torch.no_grad():
                logits = self.score(z[:, n_support:], self.fit_support(z[:, :n_support], batch.support_y, batch.way))
            metrics["acc"] = accuracy(logits, batch.query_y).mean()
        return loss, metrics
