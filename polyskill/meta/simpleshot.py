"""SimpleShot (Wang et al., 2019): nearest class mean after a feature transform, UN, L2N or CL2N."""

from __future__ import annotations

from torch import Tensor

from ..nn.backbone import Backbone
from .distances import prototypes, squared_distances
from .transductive import FeatureLearner, TaskSupport, full_precision


class SimpleShot(FeatureLearner):
    """Scores are negative squared Euclidean distances to the class means of the transformed support embeddings:
    `norm` `un` (none), `l2n` (unit length) or `cl2n` (the mean training embedding subtracted, then unit length).

    The mean is a buffer updated during training (see `BaseMean`: an exact mean of the first batches' embeddings,
    then a moving average with rate `mean_momentum`); the paper averages the final network's embeddings of the
    whole training set. Inductive: each query is scored on its own.
    """

    def __init__(self, backbone: Backbone, norm: str = "cl2n", mean_momentum: float = 0.01) -> None:
        super().__init__(backbone, norm, mean_momentum)

    def score(self, zq: Tensor, state: TaskSupport) -> Tensor:
        with full_precision(zq.device):
            zs, zq = self.transformed(state.z, zq)
            return -squared_distances(zq, prototypes(zs, state.y, state.way))
