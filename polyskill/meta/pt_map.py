"""PT-MAP (Hu, Gripon and Pateux, 2021): power-transformed features, then class centres estimated by a MAP-like
loop whose query soft assignments are balanced over the classes by Sinkhorn's algorithm."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ClassifierError
from ..nn.backbone import Backbone
from .base import Steps
from .contract import Contract
from .distances import prototypes, squared_distances
from .transductive import FeatureLearner, TaskSupport, full_precision


def power_transform(z: Tensor, beta: float = 0.5, eps: float = 1e-6) -> Tensor:
    """(z + eps)^beta element-wise, for non-negative (post-ReLU) features; negative values keep their sign,
    sign(z) (|z| + eps)^beta, so features of any sign stay finite (identical to the paper's on z >= 0)."""
    return torch.sign(z) * (z.abs() + eps).pow(beta) if bool((z < 0).any()) else (z + eps).pow(beta)


def ptmap_features(zs: Tensor, zq: Tensor, beta: float, eps: float = 1e-6) -> tuple[Tensor, Tensor]:
    """The paper's preprocessing of a task: power transform, unit length, then the support and the query set each
    centred on its own mean and brought back to unit length (the official code's `centerDatas`)."""
    zs, zq = (F.normalize(power_transform(z, beta, eps), dim=-1) for z in (zs, zq))
    return F.normalize(zs - zs.mean(1, keepdim=True), dim=-1), F.normalize(zq - zq.mean(1, keepdim=True), dim=-1)


def sinkhorn(cost: Tensor, lam: float, per_class: float, tolerance: float = 1e-6, max_iterations: int = 1000) -> Tensor:
    """Soft assignments P [B, M, N] ∝ exp(-lam * cost) with every row summing to 1 and every column to `per_class`
    (M / N for balanced query sets), by alternate row and column scaling until the row sums move less than
    `tolerance` (at most `max_iterations` rounds), as the official code; each task stops on its own, so a task's
    assignments do not depend on the other tasks of the batch."""
    p = torch.exp(-lam * cost)
    p = p / p.sum((1, 2), keepdim=True)
    rows = torch.zeros_like(p[..., 0])
    for _ in range(max_iterations):
        active = (rows - p.sum(2)).abs().amax(1) > tolerance
        if not bool(active.any()):
            break
        rows = torch.where(active[:, None], p.sum(2), rows)
        scaled = p / p.sum(2, keepdim=True)
        scaled = scaled * (per_class / scaled.sum(1, keepdim=True))
        p = torch.where(active[:, None, None], scaled, p)
    return p


def query_assignments(zq: Tensor, centres: Tensor, lam: float) -> Tensor:
    """The queries' balanced soft assignments [B, M, N] to the class centres [B, N, D]."""
    return sinkhorn(squared_distances(zq, centres), lam, zq.shape[1] / centres.shape[1])


def centre_update(zs: Tensor, ys: Tensor, zq: Tensor, centres: Tensor, assignments: Tensor, alpha: float) -> Tensor:
    """One MAP step: each centre moves by `alpha` towards the mean of the support (its one-hot labels) and the
    queries weighted by their soft assignments to it."""
    mask = torch.cat([F.one_hot(ys, centres.shape[1]).to(zs.dtype), assignments], dim=1)  # [B, S+M, N]
    estimate = mask.transpose(1, 2) @ torch.cat([zs, zq], dim=1) / mask.sum(1).unsqueeze(-1)
    return centres + alpha * (estimate - centres)


class PTMAP(FeatureLearner):
    """PT-MAP over a ProtoNet-trained embedding: power transform (`beta` 0.5), unit length, centring; centres
    started at the support means, then `steps` (20) rounds of Sinkhorn-balanced query assignments (`lam` 10) and a
    centre update with rate `alpha` (0.2), the paper's settings. The scores are the log of the final assignments.
    The Sinkhorn columns assume each class has the same share of the queries (the benchmark's balanced query sets),
    so fewer queries than classes is an error.
    The official code's QR reduction, an orthogonal change of basis, is left out: it changes no distance.
    Transductive: the balancing and the centres depend on every query."""

    contract = Contract(transductive=True)

    def __init__(
        self,
        backbone: Backbone,
        beta: float = 0.5,
        lam: float = 10.0,
        alpha: float = 0.2,
        steps: Steps = 20,
        mean_momentum: float = 0.01,
    ) -> None:
        super().__init__(backbone, "un", mean_momentum)
        if beta <= 0 or lam <= 0 or not 0 < alpha <= 1 or steps < 0:
            raise ValueError(f"PT-MAP needs beta > 0, lam > 0, alpha in (0, 1], steps >= 0; got {beta}, {lam}, {alpha}")
        self.beta, self.lam, self.alpha, self.steps = beta, lam, alpha, steps

    def score(self, zq: Tensor, state: TaskSupport) -> Tensor:
        if zq.shape[1] < state.way:
            raise ClassifierError(
                f"PT-MAP shares the queries out evenly among the classes, so it needs at least as many queries as "
                f"classes at once: got {zq.shape[1]} for {state.way} classes, which gives every class the same "
                f"probability (give more queries together, or use a learner that is not transductive)"
            )
        with full_precision(zq.device):
            zs, zq = ptmap_features(state.z, zq, self.beta)
            centres = prototypes(zs, state.y, state.way)
            for _ in range(self.steps):
                centres = centre_update(zs, state.y, zq, centres, query_assignments(zq, centres, self.lam), self.alpha)
            return query_assignments(zq, centres, self.lam).clamp_min(torch.finfo(zq.dtype).tiny).log()


__all__ = ["PTMAP", "centre_update", "power_transform", "ptmap_features", "query_assignments", "sinkhorn"]
