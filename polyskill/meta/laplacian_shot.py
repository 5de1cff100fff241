"""LaplacianShot (Ziko et al., 2020): query assignments that stay near the nearest prototype (unary term) and agree
with their nearest query neighbours (a Laplacian over a kNN graph), found by bound-optimisation updates."""

from __future__ import annotations

import torch
from torch import Tensor

from ..nn.backbone import Backbone
from .base import Steps
from .bd_cspn import rectified_prototypes, shift_queries
from .contract import Contract
from .distances import prototypes, squared_distances
from .transductive import FeatureLearner, TaskSupport, full_precision


def knn_affinity(z: Tensor, knn: int) -> Tensor:
    """W [B, M, M] with W[i, j] = 1 when query j is among the `knn` - 1 nearest other queries of i (Euclidean), as the
    official code's NearestNeighbors(knn), whose neighbours include the point itself; W is not symmetrised."""
    neighbours = min(knn - 1, z.shape[1] - 1)
    distances = squared_distances(z, z)
    distances.diagonal(dim1=1, dim2=2).fill_(float("inf"))
    nearest = distances.topk(neighbours, dim=-1, largest=False).indices
    return torch.zeros_like(distances).scatter_(-1, nearest, 1.0)


def bound_energy(y: Tensor, unary: Tensor, affinity: Tensor, lam: float) -> Tensor:
    """The bound B(Y) per task [B]: sum of Y log Y + Y * unary - lam * (W Y) * Y over queries and classes."""
    return (y * y.clamp_min(1e-20).log() + unary * y - lam * (affinity @ y) * y).sum((1, 2))


def bound_step(y: Tensor, unary: Tensor, affinity: Tensor, lam: float) -> Tensor:
    """One bound update, log Y' [B, M, N] = log_softmax(-unary + lam * W Y) (Y [B, M, N] soft assignments)."""
    return (-unary + lam * (affinity @ y)).log_softmax(-1)


def bound_updates(unary: Tensor, affinity: Tensor, lam: float, iterations: int) -> Tensor:
    """log Y [B, M, N] after at most `iterations` bound updates from Y = softmax(-unary); a task stops once its bound
    changes by at most 1e-6 of its value after the third update (the official stopping rule)."""
    log_y = (-unary).log_softmax(-1)
    active = torch.ones(unary.shape[0], dtype=torch.bool, device=unary.device)
    previous = torch.full_like(active, float("inf"), dtype=unary.dtype)
    for i in range(iterations):
        updated = bound_step(log_y.exp(), unary, affinity, lam)
        log_y = torch.where(active[:, None, None], updated, log_y)
        energy = bound_energy(log_y.exp(), unary, affinity, lam)
        if i > 1:
            active = active & ((energy - previous).abs() > 1e-6 * previous.abs())
        previous = torch.where(active, energy, previous)
        if not bool(active.any()):
            break
    return log_y


class LaplacianShot(FeatureLearner):
    """LaplacianShot over a ProtoNet-trained embedding. Features are CL2N (`norm`; the mean training embedding, see
    `BaseMean`); the unary term is the squared distance to the prototypes, BD-CSPN's rectified prototypes with
    `rectify` (the official run script's default) else the support means; the pairwise term a kNN graph over the
    queries (`knn` 3, counting the query itself) with weight `lam` (1.0, the official default when it is not tuned
    on validation); at most `iterations` (20) bound updates. Scores are log Y. Transductive."""

    contract = Contract(transductive=True)

    def __init__(
        self,
        backbone: Backbone,
        lam: float = 1.0,
        knn: int = 3,
        iterations: Steps = 20,
        rectify: bool = True,
        temperature: float = 10.0,
        norm: str = "cl2n",
        mean_momentum: float = 0.01,
    ) -> None:
        super().__init__(backbone, norm, mean_momentum)
        if lam < 0 or knn < 1 or iterations < 0 or temperature <= 0:
            raise ValueError(
                f"LaplacianShot needs lam >= 0, knn >= 1, iterations >= 0 and temperature > 0, got {lam}, {knn}, "
                f"{iterations}, {temperature}"
            )
        self.lam, self.knn, self.iterations = lam, knn, iterations
        self.rectify, self.temperature = rectify, temperature

    def score(self, zq: Tensor, state: TaskSupport) -> Tensor:
        with full_precision(zq.device):
            zs, zq = self.transformed(state.z, zq)
            centres = (
                rectified_prototypes(zs, state.y, shift_queries(zs, zq), state.way, self.temperature)
                if self.rectify
                else prototypes(zs, state.y, state.way)
            )
            unary = squared_distances(zq, centres)
            return bound_updates(unary, knn_affinity(zq, self.knn), self.lam, self.iterations)


__all__ = ["LaplacianShot", "bound_energy", "bound_step", "bound_updates", "knn_affinity"]
