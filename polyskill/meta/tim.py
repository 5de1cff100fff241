"""TIM (Boudiaf et al., 2020), TIM-GD: class weights fitted per task to the support labels while maximising the
mutual information between the query embeddings and their predicted labels."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ..nn.backbone import Backbone
from .base import Steps
from .contract import Contract
from .distances import prototypes, squared_distances
from .transductive import FeatureLearner, TaskSupport, check_rate, entropy, full_precision


class TIMTerms(NamedTuple):
    """TIM's objective per task [B]: the support cross-entropy, the query marginal entropy H(Y_Q) and the query
    conditional entropy H(Y_Q|X_Q)."""

    cross_entropy: Tensor
    marginal: Tensor
    conditional: Tensor


def tim_logits(z: Tensor, weights: Tensor, temperature: float) -> Tensor:
    """TIM's `l2` classifier: -temperature / 2 * ||z - w_k||^2, z [B, M, D], weights [B, N, D] -> [B, M, N]."""
    return -0.5 * temperature * squared_distances(z, weights)


def tim_terms(weights: Tensor, zs: Tensor, ys: Tensor, zq: Tensor, temperature: float) -> TIMTerms:
    """The three terms of each task (means over its support and query examples)."""
    log_ps = tim_logits(zs, weights, temperature).log_softmax(-1)
    cross_entropy = -log_ps.gather(-1, ys.unsqueeze(-1)).squeeze(-1).mean(1)
    pq = tim_logits(zq, weights, temperature).softmax(-1)
    return TIMTerms(cross_entropy, entropy(pq.mean(1)), entropy(pq).mean(1))


def tim_loss(terms: TIMTerms, loss_weights: tuple[float, float, float]) -> Tensor:
    """lambda_ce * CE - (w_marginal * H(Y_Q) - w_conditional * H(Y_Q|X_Q)), summed over the tasks (so each task's
    weights get their own task's gradient)."""
    ce, marginal, conditional = loss_weights
    return (ce * terms.cross_entropy - (marginal * terms.marginal - conditional * terms.conditional)).sum()


def fit_tim(
    zs: Tensor,
    ys: Tensor,
    zq: Tensor,
    way: int,
    temperature: float,
    loss_weights: tuple[float, float, float],
    steps: int,
    lr: float,
) -> Tensor:
    """TIM-GD: weights [B, way, D] started at the support means and moved by `steps` Adam steps on `tim_loss`.
    Runs with gradients even under no_grad / inference_mode."""
    with torch.inference_mode(False), torch.enable_grad():
        zs, ys, zq = zs.detach().clone(), ys.clone(), zq.detach().clone()
        weights = prototypes(zs, ys, way).requires_grad_()
        optimizer = torch.optim.Adam([weights], lr=lr)
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            tim_loss(tim_terms(weights, zs, ys, zq, temperature), loss_weights).backward()
            optimizer.step()
    return weights.detach()


class TIM(FeatureLearner):
    """TIM-GD over a ProtoNet-trained embedding. Defaults are the paper's code (`mboudiaf/TIM`): L2-normalised
    features (`norm` l2n), temperature 15, loss weights [0.1, 1.0, 0.1] for [CE, H(Y_Q), H(Y_Q|X_Q)] (lambda = alpha
    = 0.1 in the paper's notation), Adam at 1e-4 for 1000 iterations. Transductive: the marginal entropy is over the
    whole query set."""

    contract = Contract(transductive=True)

    def __init__(
        self,
        backbone: Backbone,
        norm: str = "l2n",
        temperature: float = 15.0,
        ce_weight: float = 0.1,
        marginal_weight: float = 1.0,
        conditional_weight: float = 0.1,
        steps: Steps = 1000,
        lr: float = 1e-4,
        mean_momentum: float = 0.01,
    ) -> None:
        super().__init__(backbone, norm, mean_momentum)
        if temperature <= 0 or steps < 0 or lr <= 0:
            raise ValueError(f"TIM needs temperature > 0, steps >= 0 and lr > 0, got {temperature}, {steps}, {lr}")
        check_rate("TIM", lr)
        self.temperature, self.steps, self.lr = temperature, steps, lr
        self.loss_weights = (ce_weight, marginal_weight, conditional_weight)

    def score(self, zq: Tensor, state: TaskSupport) -> Tensor:
        with full_precision(zq.device):
            zs, zq = self.transformed(state.z, zq)
            weights = fit_tim(zs, state.y, zq, state.way, self.temperature, self.loss_weights, self.steps, self.lr)
            return tim_logits(zq, weights, self.temperature)


__all__ = ["TIM", "TIMTerms", "fit_tim", "tim_logits", "tim_loss", "tim_terms"]
