"""BD-CSPN (Liu, Song and Qin, 2020, "Prototype Rectification for Few-Shot Learning"): the query set shifted onto
the support set (bias diminishing), prototypes rectified with the pseudo-labelled queries, nearest prototype by
cosine."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..nn.backbone import Backbone
from .contract import Contract
from .distances import cosine_similarity, prototypes
from .transductive import FeatureLearner, TaskSupport, full_precision


def shift_queries(zs: Tensor, zq: Tensor) -> Tensor:
    """The cross-class bias removed: queries zq [B, M, D] + (mean support embedding - mean query embedding)."""
    return zq + (zs.mean(1, keepdim=True) - zq.mean(1, keepdim=True))


def rectified_prototypes(zs: Tensor, ys: Tensor, zq: Tensor, way: int, temperature: float) -> Tensor:
    """Intra-class bias diminishing [B, way, D]: every support example (its label) and every query (pseudo-labelled by
    its most cosine-similar support mean) weighted by the softmax over the classes of temperature * cosine to the
    support means, at its class; each prototype is the weighted mean of its class's examples."""
    basic = prototypes(zs, ys, way)
    examples = torch.cat([zs, zq], dim=1)
    similarity = temperature * cosine_similarity(examples, basic)  # [B, S+M, way]
    labels = torch.cat([F.one_hot(ys, way), F.one_hot(similarity[:, zs.shape[1] :].argmax(-1), way)], dim=1)
    weights = similarity.softmax(-1) * labels.to(zs.dtype)  # [B, S+M, way]: w_i at its class, 0 elsewhere
    return weights.transpose(1, 2) @ examples / weights.sum(1).unsqueeze(-1)


class BDCSPN(FeatureLearner):
    """BD-CSPN over a ProtoNet-trained embedding: the queries shifted by the support mean minus the query mean, the
    prototypes rectified (the paper's softmax weights with temperature epsilon = 10, every query pseudo-labelled,
    the support with its labels), and scores temperature * cos(shifted query, rectified prototype). `norm`
    transforms the embeddings first (the paper: none). Transductive: the shift and the prototypes use every query."""

    contract = Contract(transductive=True)

    def __init__(
        self, backbone: Backbone, temperature: float = 10.0, norm: str = "un", mean_momentum: float = 0.01
    ) -> None:
        super().__init__(backbone, norm, mean_momentum)
        if temperature <= 0:
            raise ValueError(f"BD-CSPN needs temperature > 0, got {temperature}")
        self.temperature = temperature

    def score(self, zq: Tensor, state: TaskSupport) -> Tensor:
        with full_precision(zq.device):
            zs, zq = self.transformed(state.z, zq)
            zq = shift_queries(zs, zq)
            rectified = rectified_prototypes(zs, state.y, zq, state.way, self.temperature)
            return self.temperature * cosine_similarity(zq, rectified)


__all__ = ["BDCSPN", "rectified_prototypes", "shift_queries"]
