"""What the feature-based few-shot learners share (SimpleShot, TIM, PT-MAP, LaplacianShot, BD-CSPN, transductive
fine-tuning): an embedding trained inductively, the mean training embedding kept for centring, feature transforms,
and the support set each test-time procedure starts from.

They differ only at test time, in how a task's support and query embeddings become scores. Training is the same for
all of them: Prototypical Networks' loss (cross-entropy of negative squared Euclidean distances to the support
means) on the raw embeddings, so an episodic recipe trains them like ProtoNet; `model.init` may start the backbone
from a pretrained Baseline, as the papers start from a classifier trained on the base classes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.episodes import TaskBatch
from ..nn.backbone import Backbone
from .base import task_metrics
from .distances import prototypes, squared_distances
from .metric import MetricLearner

NORMS = ("un", "l2n", "cl2n")
FP32_MAX = torch.finfo(torch.float32).max  # an Adam rate above it overflows inside the fp32 update


def check_rate(learner: str, lr: float) -> None:
    """ValueError unless the test-time Adam rate `lr` is > 0 and within fp32's range."""
    if not 0 < lr <= FP32_MAX:
        raise ValueError(f"{learner} needs lr > 0 and <= {FP32_MAX:.3g} (fp32's largest number), got {lr}")


class TaskSupport(NamedTuple):
    """A task's support set as embeddings: z [B, S, D], labels y [B, S] in 0..way-1, and the number of classes."""

    z: Tensor
    y: Tensor
    way: int


@contextlib.contextmanager
def full_precision(device: torch.device) -> Iterator[None]:
    """Autocast off: the test-time procedures iterate (Sinkhorn, gradient steps, bound updates) in fp32."""
    with torch.autocast(device.type, enabled=False):
        yield


def transform(z: Tensor, norm: str, mean: Tensor) -> Tensor:
    """SimpleShot's feature transforms of embeddings z [..., D]: `un` none, `l2n` unit length, `cl2n` the centre
    `mean` (broadcast against z) subtracted, then unit length."""
    if norm == "un":
        return z
    if norm == "cl2n":
        z = z - mean
    return F.normalize(z, dim=-1)


class BaseMean(nn.Module):
    """The mean embedding of the training data, for CL2N: a buffer (checkpointed) updated with every training
    batch's mean embedding, as an exact running mean over the first 1/momentum batches, then an exponential moving
    average with rate `momentum` (so it follows the embedding as it trains and ends as the mean of the last
    ~1/momentum batches). The batches' embeddings are the training-mode ones (batch norm on batch statistics)."""

    mean: Tensor
    count: Tensor

    def __init__(self, dim: int, momentum: float = 0.01) -> None:
        super().__init__()
        if not 0 < momentum <= 1:
            raise ValueError(f"mean_momentum must be in (0, 1], got {momentum}")
        self.momentum = momentum
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, z: Tensor) -> None:
        """Fold the mean of embeddings z [..., D] in."""
        rate = max(self.momentum, 1.0 / (int(self.count) + 1))
        self.mean.lerp_(z.detach().flatten(0, -2).mean(0).to(self.mean.dtype), rate)
        self.count += 1

    def centre(self, support: Tensor) -> Tensor:
        """The centre for CL2N [B, 1, D]: the training mean, or, before any training batch was seen (a backbone
        taken as it is), the mean of each task's support embeddings support [B, S, D] (inductive still)."""
        if int(self.count) == 0:
            return support.mean(1, keepdim=True)
        return self.mean.to(support.dtype).expand(support.shape[0], 1, -1)


class FeatureLearner(MetricLearner[TaskSupport]):
    """An embedding trained by Prototypical Networks' loss, classified at test time by a subclass's `score` over a
    task's support embeddings and all its query embeddings. `norm` is the feature transform a subclass applies
    (`transformed`); the training mean for `cl2n` is kept whatever the norm, so checkpoints are interchangeable."""

    def __init__(self, backbone: Backbone, norm: str = "un", mean_momentum: float = 0.01) -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
        if not isinstance(backbone, Backbone):
            raise ValueError(
                f"{type(self).__name__} keeps the mean training embedding and needs a Backbone with an integer "
                f"`embedding_dim`; {type(backbone).__name__} has none"
            )
        self.backbone, self.norm = backbone, norm
        self.base_mean = BaseMean(backbone.embedding_dim, mean_momentum)

    def meta_loss(self, batch: TaskBatch) -> tuple[Tensor, dict[str, Tensor]]:
        """Prototypical Networks' loss on the raw embeddings (inductive); each training batch updates the mean."""
        n_support = batch.support_x.shape[1]
        z = self.embed(torch.cat([batch.support_x, batch.query_x], dim=1))
        if self.training:
            self.base_mean.update(z)
        scores = -squared_distances(z[:, n_support:], prototypes(z[:, :n_support], batch.support_y, batch.way))
        loss = F.cross_entropy(scores.flatten(0, 1), batch.query_y.flatten())
        return loss, task_metrics(loss.detach(), scores.detach(), batch.query_y)

    def fit_support(self, z: Tensor, y: Tensor, way: int) -> TaskSupport:
        """The support embeddings themselves: every test-time procedure starts from them."""
        return TaskSupport(z, y, way)

    def transformed(self, zs: Tensor, zq: Tensor) -> tuple[Tensor, Tensor]:
        """Support [B, S, D] and query [B, M, D] embeddings under `norm` (the CL2N centre from the training mean)."""
        centre = self.base_mean.centre(zs)
        return transform(zs, self.norm, centre), transform(zq, self.norm, centre)


def entropy(p: Tensor, eps: float = 1e-12) -> Tensor:
    """Shannon entropy -sum p log p along the last axis (p + eps inside the log, as TIM's code)."""
    return -(p * torch.log(p + eps)).sum(-1)


__all__ = [
    "NORMS",
    "BaseMean",
    "FeatureLearner",
    "TaskSupport",
    "check_rate",
    "entropy",
    "full_precision",
    "transform",
]
