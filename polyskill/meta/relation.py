"""Relation Networks (Sung et al., 2018): a learned module scores each (class, query) pair of feature maps."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..nn.backbone import FeatureMapBackbone
from .contract import Contract
from .metric import MetricLearner


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
        self.block2 = nn.Sequential(
            nn.Conv2d(hidden, hidden, 3, padding=1),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, ceil_mode=True),
        )
        flat = hidden * _pooled_side(_pooled_side(height)) * _pooled_side(_pooled_side(width))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(flat, fc), nn.ReLU(inplace=True), nn.Linear(fc, 1))

    def forward(self, class_maps: Tensor, query_maps: Tensor) -> Tensor:
        """class_maps [B, N, C, H, W], query_maps [B, M, C, H, W] -> scores [B, M, N] of the pairs (class, query)."""
        (b, n), m = class_maps.shape[:2], query_maps.shape[1]
        w_class, w_query = self.conv1.weight.split(self.channels, dim=1)
        c = F.conv2d(class_maps.flatten(0, 1), w_class, padding=1).unflatten(0, (b, n))
        q = F.conv2d(query_maps.flatten(0, 1), w_query, self.conv1.bias, padding=1).unflatten(0, (b, m))
        step = m if self.training else max(1, self.max_pairs // (b * n))
        return torch.cat([self._score(q[:, i : i + step], c) for i in range(0, m, step)], dim=1)

    def _score(self, q: Tensor, c: Tensor) -> Tensor:
        """First-convolution outputs of queries [B, M, h, H, W] and classes [B, N, h, H, W] -> scores [B, M, N]."""
        pairs = q.unsqueeze(2) + c.unsqueeze(1)  # [B, M, N, h, H, W]
        z = self.block2(self.block1(pairs.flatten(0, 2)))
        return torch.sigmoid(self.head(z)).view(pairs.shape[:3])


class RelationNetworks(MetricLearner[Tensor]):
    """Class feature map = sum of its support examples' maps; the relation module scores each (class, query)
    pair; the loss is the mean squared error of the scores against the one-hot labels. The "logits" are the
    scores (argmax = prediction). The backbone must be a FeatureMapBackbone (`feature_maps(x)` and
    `feature_shape` (C, H, W)), as Conv4 is (the paper's Omniglot setting: Conv4 with pools=2, 64x7x7 maps on
    28x28 images).
    """

    contract = Contract(feature_maps=True)
    backbone: FeatureMapBackbone

    def __init__(self, backbone: FeatureMapBackbone, relation_hidden: int = 64, relation_fc: int = 8) -> None:
        super().__init__()
        if not isinstance(backbone, FeatureMapBackbone):
            raise ValueError(
                f"Relation Networks compare feature maps: the backbone ({type(backbone).__name__}) "
                "must be a FeatureMapBackbone, with `feature_maps(x)` and a `feature_shape` (C, H, W), "
                "like Conv4"
            )
        self.backbone = backbone
        self.relation = RelationModule(backbone.feature_shape, relation_hidden, relation_fc)

    def embed(self, x: Tensor) -> Tensor:
        """[B, M, ...] images -> [B, M, C, H, W] feature maps in fp32."""
        return self.backbone.feature_maps(x.flatten(0, 1)).float().unflatten(0, x.shape[:2])

    @staticmethod
    def class_maps(maps: Tensor, labels: Tensor, way: int) -> Tensor:
        """Element-wise sum of each class's support maps: maps [B, S, C, H, W], labels [B, S] -> [B, way, C, H, W]."""
        onehot = F.one_hot(labels, way).to(maps.dtype)  # [B, S, N]
        return (onehot.transpose(1, 2) @ maps.flatten(2)).unflatten(2, maps.shape[2:])

    def fit_support(self, z: Tensor, y: Tensor, way: int) -> Tensor:
        return self.class_maps(z, y, way)

    def score(self, zq: Tensor, state: Tensor) -> Tensor:
        """Relation scores in (0, 1) [B, M, way] of every (class, query) pair."""
        return self.relation(state, zq).float()

    def loss(self, scores: Tensor, query_y: Tensor) -> Tensor:
        """Mean squared error of the scores against the one-hot labels (the paper's regression of relations)."""
        return F.mse_loss(scores, F.one_hot(query_y, scores.shape[-1]).float())

    def probabilities(self, logits: Tensor) -> Tensor:
        """Relation scores are independent sigmoids, not logits: normalise them to sum to one per query."""
        scores = logits.float().clamp_min(1e-12)
        return scores / scores.sum(-1, keepdim=True)
