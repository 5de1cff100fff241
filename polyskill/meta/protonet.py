"""Prototypical Networks (Snell et al., 2017): classify by squared Euclidean distance to class means."""

from __future__ import annotations

from torch import Tensor

from ..nn.backbone import Backbone
from .distances import prototypes, squared_distances
from .metric import MetricLearner


class PrototypicalNetworks(MetricLearner[Tensor]):
    """Embed support and query with one backbone pass; logits are negative squared distances to prototypes."""

    def __init__(self, backbone: Backbone) -> None:
        super().__init__()
        self.backbone = backbone

    def fit_support(self, z: Tensor, y: Tensor, way: int) -> Tensor:
        """The class prototypes [B, way, D]: each class's mean support embedding."""
        return prototypes(z, y, way)

    def score(self, zq: Tensor, state: Tensor) -> Tensor:
        return -squared_distances(zq, state)
