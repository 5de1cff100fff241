"""Prototypical Networks (Snell et al., 2017): classify by squared Euclidean distance to class means."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.episodes import Support, TaskBatch
from .base import FewShotAlgorithm, Predictor, embed_episode, task_metrics
from .distances import prototypes, squared_distances


class PrototypePredictor:
    """A learned task: the embedding network and the class prototypes of the support set."""

    def __init__(self, backbone: nn.Module, protos: Tensor) -> None:
        self.backbone, self.prototypes = backbone, protos

    def __call__(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            z = self.backbone(x).float()
        return -squared_distances(z.unsqueeze(0), self.prototypes.unsqueeze(0)).squeeze(0)


class PrototypicalNetworks(FewShotAlgorithm):
    """Embed support and query with one backbone pass; logits are negative squared distances to prototypes."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def _logits(self, batch: TaskBatch) -> Tensor:
        support, query = embed_episode(self.backbone, batch)
        return -squared_distances(query, prototypes(support, batch.support_y, batch.way))

    def meta_loss(self, batch: TaskBatch) -> tuple[Tensor, dict[str, Tensor]]:
        logits = self._logits(batch)
        loss = F.cross_entropy(logits.flatten(0, 1), batch.query_y.flatten())
        return loss, task_metrics(loss.detach(), logits.detach(), batch.query_y)

    def predict(self, batch: TaskBatch) -> Tensor:
        return self._logits(batch)

    def adapt(self, support: Support) -> Predictor:
        with torch.no_grad():
            z = self.backbone(support.x).float().unsqueeze(0)
            protos = prototypes(z, support.y.unsqueeze(0), support.num_classes).squeeze(0)
        return PrototypePredictor(self.backbone, protos)
