"""The metric learners' shared shape: embed, fit something to the support embeddings, score the queries.

A metric learner provides `embed` (inputs -> representations; default: the backbone's embeddings in fp32),
`fit_support(z, y, way) -> state` (batched: z [B, S, ...], y [B, S]) and `score(zq, state) -> [B, M, way]`.
This base turns them into the training loss, batched prediction, and one task's predictor, so a learner
(ProtoNet, Matching, Relation, MetaOptNet, Baseline, contrastive) writes only what makes it different.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.episodes import Support, TaskBatch
from ..nn.backbone import Backbone
from .base import FewShotAlgorithm, Predictor, task_metrics

State = TypeVar("State")


class MetricLearner(FewShotAlgorithm, Generic[State]):
    """Scores queries against a state fitted to the support set's embeddings; `loss` (cross-entropy on the
    scores by default) against the query labels is the meta-loss."""

    backbone: Backbone

    def embed(self, x: Tensor) -> Tensor:
        """[B, M, ...] inputs -> [B, M, D] embeddings in fp32 (metric learners compare them in full precision)."""
        return self.backbone(x.flatten(0, 1)).float().unflatten(0, x.shape[:2])

    def fit_support(self, z: Tensor, y: Tensor, way: int) -> State:
        """What each task keeps of its support embeddings z [B, S, ...] with labels y [B, S] in 0..way-1."""
        raise NotImplementedError

    def score(self, zq: Tensor, state: State) -> Tensor:
        """Scores [B, M, way] of query embeddings zq [B, M, ...] (argmax is the prediction)."""
        raise NotImplementedError

    def loss(self, scores: Tensor, query_y: Tensor) -> Tensor:
        """The meta-loss of scores [B, M, way] against labels [B, M]: mean cross-entropy of the scores as logits."""
        return F.cross_entropy(scores.flatten(0, 1), query_y.flatten())

    def task_scores(self, batch: TaskBatch) -> Tensor:
        """Scores [B, M, way] of every task's queries, support and query embedded in one backbone pass."""
        n_support = batch.support_x.shape[1]
        z = self.embed(torch.cat([batch.support_x, batch.query_x], dim=1))
        return self.score(z[:, n_support:], self.fit_support(z[:, :n_support], batch.support_y, batch.way))

    def meta_loss(self, batch: TaskBatch) -> tuple[Tensor, dict[str, Tensor]]:
        scores = self.task_scores(batch)
        loss = self.loss(scores, batch.query_y)
        return loss, task_metrics(loss.detach(), scores.detach(), batch.query_y)

    def predict(self, batch: TaskBatch, steps: int | None = None) -> Tensor:
        self.check_steps(steps)
        return self.task_scores(batch)

    def adapt(self, support: Support, steps: int | None = None) -> Predictor:
        self.check_steps(steps)
        with torch.no_grad():
            state = self.fit_support(
                self.embed(support.x.unsqueeze(0)), support.y.unsqueeze(0), int(support.num_classes or 0)
            )
        return MetricPredictor(self, state)


class MetricPredictor(Generic[State]):
    """A learned task: the learner and the state it fitted to the task's support set (a task axis of 1)."""

    def __init__(self, learner: MetricLearner[State], state: State) -> None:
        self.learner, self.state = learner, state

    @property
    def shared(self) -> MetricLearner[State]:
        """What every task of this learner shares: the embedding (see `SplitPredictor`)."""
        return self.learner

    def features(self, x: Tensor) -> Tensor:
        """Query inputs [M, ...] -> embeddings [M, D], each query on its own (the backbone runs in eval mode)."""
        with torch.no_grad():
            return self.learner.embed(x.unsqueeze(0)).squeeze(0)

    def head(self, z: Tensor) -> Tensor:
        """This task's scores [M, way] of query embeddings z [M, D]."""
        with torch.no_grad():
            return self.learner.score(z.unsqueeze(0), self.state).squeeze(0)

    def __call__(self, x: Tensor) -> Tensor:
        """Query inputs [M, ...] -> scores [M, way]."""
        return self.head(self.features(x))
