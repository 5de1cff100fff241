"""Task encoder: a permutation-invariant set encoder over a task's support set, and the decoder that trains it.

Each support example is embedded together with its target. For regression, z = rho(mean_i phi([f(x_i), y_i]));
for classification the label chooses a slot, z = rho([mean_{y_i=1} phi(f(x_i)), ..., mean_{y_i=N} phi(f(x_i))])
(per-class aggregation, as conditional neural processes classify: a decoder can then tell which label goes with
which input, which a mean over one-hot-tagged examples makes hard to learn). f embeds inputs; the means make z
independent of the order of the support set (Deep Sets, Zaheer et al., 2017). The decoder predicts
held-out targets from (f(x), z), as a conditional neural process does (Garnelo et al., 2018): the auxiliary
objective that makes z carry what defines the task.

z is layer-normalised (zero mean, unit variance over its values, no learned scale): the query loss, which
reaches z through the strategy it generates, otherwise grows it until the decoder's inputs are all z and its
reconstruction stalls at chance (measured on Omniglot 5-way 1-shot).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..nn.mlp import MLP


def _uniform(shape: torch.Size, seeds: Tensor | None, device: torch.device) -> Tensor:
    """[2, *shape] uniform numbers: from each task's own seed when `seeds` [B] are given (the same however a
    batch is split over processes), else from torch's global generator."""
    if seeds is None:
        return torch.rand(2, *shape, device=device)
    draws = [torch.rand(2, *shape[1:], generator=torch.Generator().manual_seed(int(seed))) for seed in seeds]
    return torch.stack(draws, dim=1).to(device)


def holdout_mask(labels: Tensor, fraction: float, seeds: Tensor | None = None) -> Tensor:
    """Which support examples [B, S] to hold out of the encoder's context: each with probability `fraction`,
    except one example of every class of every task (labels [B, S]; regression tasks pass one class), which
    stays in the context so that no class vanishes from it. Drawn from the tasks' `seeds` [B] if given, else
    from torch's global generator."""
    scores, coins = _uniform(labels.shape, seeds, labels.device)
    classes = int(labels.max()) + 1 if labels.numel() else 1
    members = F.one_hot(labels, classes).bool()  # [B, S, N]
    first = scores.unsqueeze(-1).masked_fill(~members, float("inf")).amin(1)  # [B, N]
    kept = scores == first.gather(1, labels)
    return ~kept & (coins < fraction)


class TaskEncoder(nn.Module):
    """z [B, z_dim] of each task from its support set (x [B, S, ...], y [B, S]), invariant to the order of
    the set. `features` embeds one input into `feature_dim` values; `classes` is the number of classes of a
    classification task (labels are one-hot encoded), None for regression (targets of `target_dim` values)."""

    def __init__(
        self,
        features: nn.Module,
        feature_dim: int,
        classes: int | None = None,
        target_dim: int = 1,
        hidden: int = 64,
        z_dim: int = 32,
    ) -> None:
        super().__init__()
        self.features, self.classes = features, classes
        self.target_dim = classes if classes is not None else target_dim
        self.phi = MLP([feature_dim + (0 if classes is not None else target_dim), hidden, hidden])
        self.rho = MLP([hidden * (classes or 1), hidden, z_dim])
        self.norm = nn.LayerNorm(z_dim, elementwise_affine=False)

    def embed_inputs(self, x: Tensor) -> Tensor:
        """f(x): [B, S, ...] -> [B, S, feature_dim] in fp32."""
        return self.features(x.flatten(0, 1)).float().view(x.shape[0], x.shape[1], -1)

    def encode_targets(self, y: Tensor) -> Tensor:
        """t(y): one-hot labels, or float targets, [B, S, target_dim]."""
        if self.classes is not None:
            return F.one_hot(y.long(), self.classes).float()
        return y.float().reshape(y.shape[0], y.shape[1], -1)

    def pool(self, features: Tensor, targets: Tensor, mask: Tensor | None = None) -> Tensor:
        """z from embedded inputs and targets; `mask` [B, S] (bool) limits the set to the examples it marks."""
        keep = torch.ones(targets.shape[:2], dtype=torch.bool, device=targets.device) if mask is None else mask
        keep = keep.unsqueeze(-1).to(features.dtype)  # [B, S, 1]
        if self.classes is None:
            h = torch.relu(self.phi(torch.cat([features, targets], dim=-1)))
            pooled = (h * keep).sum(1) / keep.sum(1).clamp_min(1.0)
        else:
            h = torch.relu(self.phi(features))
            members = targets * keep  # [B, S, N]: one-hot labels of the kept examples
            slots = members.transpose(1, 2) @ h / members.sum(1).clamp_min(1.0).unsqueeze(-1)  # [B, N, H]
            pooled = slots.flatten(1)
        return self.norm(self.rho(pooled))

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.pool(self.embed_inputs(x), self.encode_targets(y))


class TaskDecoder(nn.Module):
    """Predicts an example's target from its embedded input and the task's z: a value for regression, class
    scores for classification."""

    def __init__(self, feature_dim: int, z_dim: int, outputs: int, hidden: int = 64) -> None:
        super().__init__()
        self.net = MLP([feature_dim + z_dim, hidden, hidden, outputs])

    def forward(self, features: Tensor, z: Tensor) -> Tensor:
        """features [B, S, F], z [B, Z] -> [B, S, outputs]."""
        return self.net(torch.cat([features, z.unsqueeze(1).expand(-1, features.shape[1], -1)], dim=-1))


def reconstruction_loss(
    encoder: TaskEncoder, decoder: TaskDecoder, x: Tensor, y: Tensor, fraction: float, seeds: Tensor | None = None
) -> Tensor:
    """The decoder's loss on held-out support targets given z of the rest of the support set (`holdout_mask`).
    A task with nothing to hold out (one example per class) is encoded whole and its own targets are
    reconstructed."""
    labels = y.long() if encoder.classes is not None else torch.zeros(y.shape[:2], dtype=torch.long, device=y.device)
    held = holdout_mask(labels, fraction, seeds)
    some = held.any(1, keepdim=True)
    context, target = torch.where(some, ~held, True), torch.where(some, held, True)
    features, targets = encoder.embed_inputs(x), encoder.encode_targets(y)
    predictions = decoder(features, encoder.pool(features, targets, context))
    if encoder.classes is not None:
        losses = F.cross_entropy(predictions.flatten(0, 1), y.long().flatten(), reduction="none").view(y.shape[:2])
    else:
        losses = (predictions - targets).pow(2).mean(-1)
    weights = target.to(losses.dtype)
    return ((losses * weights).sum(1) / weights.sum(1)).mean()
