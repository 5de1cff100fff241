"""Relation Networks (Sung et al., 2018): a learned module scores each (class, query) pair of feature maps."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.episodes import Support, TaskBatch
from .base import FewShotAlgorithm, Predictor, task_metrics


def _pooled_side(side: int) -> int:
    """Side after a 2x2 max-pool with ceil_mode (a 1x1 map stays 1x1)."""
    return (side + 1) // 2


class RelationModule(nn.Module):
    """Relation score in (0, 1) of every (class map, query map) pair: their channel concatenation goes through
    2 x [conv3x3 `hidden`, BN, ReLU, maxpool 2 (ceil mode, so any side >= 1 works)], Linear `fc`, ReLU, Linear 1,
    sigmoid.

    The first convolution is linear in its input, so conv(cat(c, q)) = conv_c(c) + conv_q(q): it runs on
    the N class maps and the M query maps separately and the N*M pairs are formed by broadcasting its output.
    In eval mode the pairs go through the rest in chunks of queries, at most `max_pairs` at a time, so large
    evaluation batches fit in memory (exact: BatchNorm uses its running statistics); in training they go
    through at once, so BatchNorm normalises over all of them.
    """

    max_pairs = 4096

    def __init__(self, feature_shape: tuple[int, int, int], hidden: int = 64, fc: int = 8) -> None:
        super().__init__()
        channels, height, width = feature_shape
        self.channels = channels
        self.conv1 = nn.Conv2d(2 * channels, hidden, 3, padding=1)
        self.block1 = nn.Sequential(nn.BatchNorm2d(hidden), nn.ReLU(inplace=True), nn.MaxPool2d(2, ceil_mode=True))
        self.block2 = nn.Sequential(nn.Conv2d(hidden, hidden, 3, padding=1), nn.BatchNorm2d(hidden),
                                    nn.ReLU(inplace=True), nn.MaxPool2d(2, ceil_mode=True))
        flat = hidden * _pooled_side(_pooled_side(height)) * _pooled_side(_pooled_side(width))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(flat, fc), nn.ReLU(inplace=True), nn.Linear(fc, 1))

    def forward(self, class_maps: Tensor, query_maps: Tensor) -> Tensor:
        """class_maps [B, N, C, H, W], query_maps [B, M, C, H, W] -> scores [B, M, N] of the pairs (class, query)."""
        (b, n), m = class_maps.shape[:2], query_maps.shape[1]
        w_class, w_query = self.conv1.weight.split(self.channels, dim=1)
        c = F.conv2d(class_maps.flatten(0, 1), w_class, padding=1).unflatten(0, (b, n))
        q = F.conv2d(query_maps.flatten(0, 1), w_query, self.conv1.bias, padding=1).unflatten(0, (b, m))
        step = m if self.training else max(1, self.max_pairs // (b * n))
        return torch.cat([self._score(q[:, i:i + step], c) for i in range(0, m, step)], dim=1)

    def _score(self, q: Tensor, c: Tensor) -> Tensor:
        """First-convolution outputs of queries [B, M, h, H, W] and classes [B, N, h, H, W] -> scores [B, M, N]."""
        pairs = q.unsqueeze(2) + c.unsqueeze(1)  # [B, M, N, h, H, W]
        z = self.block2(self.block1(pairs.flatten(0, 2)))
        return torch.sigmoid(self.head(z)).view(pairs.shape[:3])


class RelationPredictor:
    """A learned task: the algorithm and the support's class feature maps."""

    def __init__(self, algo: "RelationNetworks", class_maps: Tensor) -> None:
        self.algo, self.class_maps = algo, class_maps

    def __call__(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            query = self.algo.backbone.feature_maps(x).float().unsqueeze(0)
            return self.algo.relation(self.class_maps, query).float().squeeze(0)


class RelationNetworks(FewShotAlgorithm):
    """Class feature map = sum of its support examples' maps; the relation module scores each (class, query)
    pair; the loss is the mean squared error of the scores against the one-hot labels. The "logits" are the
    scores (argmax = prediction). The backbone must provide `feature_maps(x)` and `feature_shape` (C, H, W),
    as Conv4 does (the paper's Omniglot setting: Conv4 with pools=2, 64x7x7 maps on 28x28 images).
    """

    def __init__(self, backbone: nn.Module, relation_hidden: int = 64, relation_fc: int = 8) -> None:
        super().__init__()
        shape = getattr(backbone, "feature_shape", None)
        if not callable(getattr(backbone, "feature_maps", None)) or shape is None:
            raise ValueError(f"Relation Networks compare feature maps: the backbone ({type(backbone).__name__}) "
                             "needs a `feature_maps(x)` method and a `feature_shape` (C, H, W) attribute, like Conv4")
        self.backbone = backbone
        self.relation = RelationModule(tuple(shape), relation_hidden, relation_fc)

    def _maps(self, x: Tensor) -> Tensor:
        """[B, M, ...] images -> [B, M, C, H, W] feature maps in fp32."""
        return self.backbone.feature_maps(x.flatten(0, 1)).float().unflatten(0, x.shape[:2])

    @staticmethod
    def class_maps(maps: Tensor, labels: Tensor, way: int) -> Tensor:
        """Element-wise sum of each class's support maps: maps [B, S, C, H, W], labels [B, S] -> [B, way, C, H, W]."""
        onehot = F.one_hot(labels, way).to(maps.dtype)  # [B, S, N]
        return (onehot.transpose(1, 2) @ maps.flatten(2)).unflatten(2, maps.shape[2:])

    def _scores(self, batch: TaskBatch) -> Tensor:
        n_support = batch.support_x.shape[1]
        maps = self._maps(torch.cat([batch.support_x, batch.query_x], dim=1))
        classes = self.class_maps(maps[:, :n_support], batch.support_y, batch.way)
        return self.relation(classes, maps[:, n_support:]).float()

    def meta_loss(self, batch: TaskBatch) -> tuple[Tensor, dict[str, Tensor]]:
        scores = self._scores(batch)
        loss = F.mse_loss(scores, F.one_hot(batch.query_y, batch.way).float())
        return loss, task_metrics(loss.detach(), scores.detach(), batch.query_y)

    def predict(self, batch: TaskBatch) -> Tensor:
        return self._scores(batch)

    def probabilities(self, logits: Tensor) -> Tensor:
        """Relation scores are independent sigmoids, not logits: normalise them to sum to one per query."""
        scores = logits.float().clamp_min(1e-12)
        return scores / scores.sum(-1, keepdim=True)

    def adapt(self, support: Support) -> Predictor:
        with torch.no_grad():
            maps = self.backbone.feature_maps(support.x).float().unsqueeze(0)
            classes = self.class_maps(maps, support.y.unsqueeze(0), support.num_classes)
        return RelationPredictor(self, classes)
