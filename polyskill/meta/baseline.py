"""Baseline and Baseline++ (Chen et al., 2019, "A Closer Look at Few-shot Classification").

Pretraining is ordinary classification over all the training classes (batches from a ClassBatchSampler);
a new task is learned by freezing the backbone and fitting a fresh head on the support embeddings.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.episodes import Support, TaskBatch
from ..errors import ConfigError
from .base import FewShotAlgorithm, Predictor, embed, embed_episode, task_metrics
from .distances import cosine_similarity
from .linear_probe import LinearHead, fit_linear_head


def chen_scale(num_classes: int) -> float:
    """Baseline++'s cosine temperature in Chen et al.'s code: 2 for up to 200 classes, else 10."""
    return 2.0 if num_classes <= 200 else 10.0


class CosineClassifier(nn.Module):
    """Logits scale * cos(z, w_c) with one learned weight vector per class (Baseline++'s head)."""

    def __init__(self, in_features: int, num_classes: int, scale: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(nn.Linear(in_features, num_classes, bias=False).weight.detach())
        self.scale = scale

    def forward(self, z: Tensor) -> Tensor:
        return self.scale * cosine_similarity(z.unsqueeze(0), self.weight.unsqueeze(0)).squeeze(0)


class HeadPredictor:
    """A learned task: the frozen backbone and a fitted head (a task axis of 1)."""

    def __init__(self, backbone: nn.Module, head: LinearHead) -> None:
        self.backbone, self.head = backbone, head

    def __call__(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            z = self.backbone(x).float()
        return self.head(z.unsqueeze(0)).squeeze(0)


class Baseline(FewShotAlgorithm):
    """Chen et al.'s Baseline (linear head) or, with `cosine`, Baseline++ (scaled cosine head).

    `num_classes`: the training classes of the pretraining head. `scale`: the cosine temperature, of both the
    pretraining head and the test-time heads; None follows Chen et al. (2 for <= 200 classes else 10, by
    each head's own class count). `batch_size`: examples per pretraining batch, read by the recipe builder
    for its ClassBatchSampler. `finetune_*`: the test-time fit (Chen et al.: SGD, momentum 0.9, lr 0.01,
    weight decay 1e-3; here full-batch over the support set, `finetune_steps` steps).
    """

    batch_source = "classes"  # trained on ClassBatchSampler batches over all training classes, not episodes

    def __init__(self, backbone: nn.Module, num_classes: int, cosine: bool = False, scale: float | None = None,
                 batch_size: int = 128, finetune_steps: int = 100, finetune_lr: float = 0.01,
                 finetune_weight_decay: float = 1e-3, finetune_momentum: float = 0.9) -> None:
        super().__init__()
        if num_classes < 2 or batch_size < 1 or finetune_steps < 0 or finetune_lr <= 0:
            raise ConfigError("baseline needs num_classes >= 2, batch_size >= 1, finetune_steps >= 0 and "
                              "finetune_lr > 0")
        if scale is not None and scale <= 0:
            raise ConfigError(f"the cosine scale must be > 0, got {scale}")
        self.backbone, self.num_classes, self.cosine, self.scale = backbone, num_classes, cosine, scale
        self.batch_size = batch_size
        self.finetune_steps, self.finetune_lr = finetune_steps, finetune_lr
        self.finetune_weight_decay, self.finetune_momentum = finetune_weight_decay, finetune_momentum
        dim = backbone.embedding_dim
        self.classifier = (CosineClassifier(dim, num_classes, self._scale(num_classes)) if cosine
                           else nn.Linear(dim, num_classes))

    def _scale(self, way: int) -> float | None:
        """The cosine temperature of a head over `way` classes, None for a linear head."""
        if not self.cosine:
            return None
        return self.scale if self.scale is not None else chen_scale(way)

    def meta_loss(self, batch: TaskBatch) -> tuple[Tensor, dict[str, Tensor]]:
        """Cross-entropy over all the training classes of a class batch (support empty, global labels)."""
        if batch.support_y.shape[1]:
            raise ValueError("Baseline pretrains on class batches with global labels (a ClassBatchSampler), "
                             "not on episodes: this batch has a support set")
        if batch.way != self.num_classes:
            raise ValueError(f"the batch has {batch.way} classes but the classifier {self.num_classes}")
        logits = self.classifier(embed(self.backbone, batch.query_x).flatten(0, 1)).float()
        labels = batch.query_y.flatten()
        loss = F.cross_entropy(logits, labels)
        return loss, task_metrics(loss.detach(), logits.detach(), labels)

    def fit_heads(self, z: Tensor, y: Tensor, way: int) -> LinearHead:
        """Fresh heads [B tasks] fitted on support embeddings z [B, S, D] (the backbone stays frozen)."""
        return fit_linear_head(z, y, way, self._scale(way), self.finetune_steps, self.finetune_lr,
                               self.finetune_weight_decay, self.finetune_momentum)

    def predict(self, batch: TaskBatch) -> Tensor:
        with torch.no_grad():
            support, query = embed_episode(self.backbone, batch)
        return self.fit_heads(support, batch.support_y, batch.way)(query)

    def adapt(self, support: Support) -> Predictor:
        with torch.no_grad():
            z = self.backbone(support.x).float().unsqueeze(0)
        return HeadPredictor(self.backbone, self.fit_heads(z, support.y.unsqueeze(0), support.num_classes))
