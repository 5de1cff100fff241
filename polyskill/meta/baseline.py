"""Baseline and Baseline++ (Chen et al., 2019, "A Closer Look at Few-shot Classification").

Pretraining is ordinary classification over all the training classes (batches from a ClassBatchSampler);
a new task is learned by freezing the backbone and fitting a fresh head on the support embeddings.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from ..data.episodes import TaskBatch
from ..errors import ConfigError
from ..nn.backbone import Backbone
from .base import Steps, task_metrics
from .contract import Contract
from .linear_probe import LinearHead, fit_linear_head, normed_cosine
from .metric import MetricLearner


def chen_scale(num_classes: int) -> float:
    """Baseline++'s cosine temperature in Chen et al.'s code: 2 for up to 200 classes, else 10."""
    return 2.0 if num_classes <= 200 else 10.0


class CosineClassifier(nn.Module):
    """Baseline++'s head as Chen et al.'s `distLinear`: logits scale * z / (|z| + 1e-5) . w_c, with each class
    weight weight-normalised (`WeightNorm.apply(L, 'weight', dim=0)`): w_c = g_c * v_c / |v_c|, the direction
    `weight_v` [N, D] starting as nn.Linear's rows and the class-wise learnable norm `weight_g` [N, 1] as
    their norms, so the logits are scale * g_c * cos(z, v_c) and each class learns its own temperature.
    """

    def __init__(self, in_features: int, num_classes: int, scale: float) -> None:
        super().__init__()
        direction = nn.Linear(in_features, num_classes, bias=False).weight.detach()
        self.weight_v = nn.Parameter(direction.clone())
        self.weight_g = nn.Parameter(direction.norm(dim=1, keepdim=True))
        self.scale = scale

    @property
    def weight(self) -> Tensor:
        """The effective class weights g_c * v_c / |v_c| [N, D]."""
        return self.weight_v * (self.weight_g / self.weight_v.norm(dim=1, keepdim=True))

    def forward(self, z: Tensor) -> Tensor:
        return self.scale * normed_cosine(z.unsqueeze(0), self.weight_v.unsqueeze(0), self.weight_g.T).squeeze(0)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        """Reads checkpoints from before the class-wise norm (one plain `weight`) as norms 1: the same logits."""
        old = state_dict.pop(prefix + "weight", None)
        if old is not None and prefix + "weight_v" not in state_dict:
            state_dict[prefix + "weight_v"] = old
            state_dict[prefix + "weight_g"] = old.new_ones(old.shape[0], 1)
        super()._load_from_state_dict(state_dict, prefix, *args)


class Baseline(MetricLearner[LinearHead]):
    """Chen et al.'s Baseline (linear head) or, with `cosine`, Baseline++ (weight-normalised scaled cosine head).

    `num_classes`: the training classes of the pretraining head. `scale`: the cosine temperature, of both the
    pretraining head and the test-time heads; None follows Chen et al. (2 for <= 200 classes else 10, by
    each head's own class count). `batch_size`: examples per pretraining batch, read by the recipe builder
    for its ClassBatchSampler. `finetune_*`: the test-time fit (Chen et al.: SGD, momentum 0.9, lr 0.01,
    weight decay 1e-3, with dampening 0.9 on mini-batches of 4 for 100 epochs; here without dampening,
    full-batch over the support set, `finetune_steps` steps).
    """

    contract = Contract(batches="classes", builder_args=frozenset({"num_classes"}))
    batch_size: int

    def __init__(
        self,
        backbone: Backbone,
        num_classes: int,
        cosine: bool = False,
        scale: float | None = None,
        batch_size: int = 128,
        finetune_steps: Steps = 100,
        finetune_lr: float = 0.01,
        finetune_weight_decay: float = 1e-3,
        finetune_momentum: float = 0.9,
    ) -> None:
        super().__init__()
        if num_classes < 2 or batch_size < 1 or finetune_steps < 0 or finetune_lr <= 0:
            raise ConfigError(
                "baseline needs num_classes >= 2, batch_size >= 1, finetune_steps >= 0 and finetune_lr > 0"
            )
        if scale is not None and scale <= 0:
            raise ConfigError(f"the cosine scale must be > 0, got {scale}")
        if not isinstance(backbone, Backbone):
            raise ConfigError(
                f"baseline's classifier needs a Backbone with an integer `embedding_dim`; "
                f"{type(backbone).__name__} has none"
            )
        self.backbone, self.num_classes, self.cosine, self.scale = backbone, num_classes, cosine, scale
        self.batch_size = batch_size
        self.finetune_steps, self.finetune_lr = finetune_steps, finetune_lr
        self.finetune_weight_decay, self.finetune_momentum = finetune_weight_decay, finetune_momentum
        dim = backbone.embedding_dim
        self.classifier = (
            CosineClassifier(dim, num_classes, chen_scale(num_classes) if scale is None else scale)
            if cosine
            else nn.Linear(dim, num_classes)
        )

    def _scale(self, way: int) -> float | None:
        """The cosine temperature of a head over `way` classes, None for a linear head."""
        if not self.cosine:
            return None
        return self.scale if self.scale is not None else chen_scale(way)

    def meta_loss(self, batch: TaskBatch) -> tuple[Tensor, dict[str, Tensor]]:
        """Cross-entropy over all the training classes of a class batch (support empty, global labels)."""
        if batch.support_y.shape[1]:
            raise ValueError(
                "Baseline pretrains on class batches with global labels (a ClassBatchSampler), "
                "not on episodes: this batch has a support set"
            )
        if batch.way != self.num_classes:
            raise ValueError(f"the batch has {batch.way} classes but the classifier {self.num_classes}")
        logits = self.classifier(self.embed(batch.query_x).flatten(0, 1)).float()
        labels = batch.query_y.flatten()
        loss = F.cross_entropy(logits, labels)
        return loss, task_metrics(loss.detach(), logits.detach(), labels)

    def fit_support(self, z: Tensor, y: Tensor, way: int) -> LinearHead:
        """Fresh heads [B tasks] fitted on support embeddings z [B, S, D] (the backbone stays frozen)."""
        return fit_linear_head(
            z,
            y,
            way,
            self._scale(way),
            self.finetune_steps,
            self.finetune_lr,
            self.finetune_weight_decay,
            self.finetune_momentum,
        )

    def score(self, zq: Tensor, state: LinearHead) -> Tensor:
        return state(zq)
