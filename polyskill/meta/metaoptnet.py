"""MetaOptNet (Lee et al., 2019): a linear classifier fitted to each support set by a convex solver (a
Crammer-Singer SVM, or ridge regression for MetaOptNet-RR), differentiated through, on a learned embedding."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..nn.backbone import Backbone
from .base import Steps
from .metric import MetricLearner
from .ridge import ridge_head
from .svm import svm_head

HEADS = ("svm", "ridge")


def smoothed_cross_entropy(logits: Tensor, labels: Tensor, smoothing: float) -> Tensor:
    """Cross-entropy against targets 1 - smoothing on the label and smoothing / (N - 1) on every other class
    (the paper's label smoothing, which gives the label no share of `smoothing`)."""
    if smoothing == 0:
        return F.cross_entropy(logits, labels)
    way = logits.shape[-1]
    onehot = F.one_hot(labels, way).to(logits.dtype)
    targets = onehot * (1 - smoothing) + (1 - onehot) * smoothing / max(way - 1, 1)
    return F.cross_entropy(logits, targets)


def _scale_as_logarithm(module: nn.Module, state_dict: dict[str, Any], prefix: str, *_: Any) -> None:
    """Read a checkpoint written when the scale was learned as itself (`scale`) into `log_scale`."""
    old, new = prefix + "scale", prefix + "log_scale"
    if old in state_dict and new not in state_dict:
        state_dict[new] = state_dict.pop(old).log()


class MetaOptNet(MetricLearner[Tensor]):
    """Embed support and query with one backbone pass; logits are scale * query @ W, W the head fitted to the support.

    Options, with the defaults of the paper's code: `head` 'svm' (Crammer-Singer, cost `C` = 0.1) or 'ridge'
    (`lam` = 50); a logit `scale` initialised at 1 and learned (`learn_scale`), which the linear heads need since
    their logits have no natural temperature. It is learned as its logarithm: Adam moves a parameter by at most
    about its learning rate a step, so a scale learned as itself grows by 0.001 a step (3.1 after 3500 Omniglot
    steps, while the loss still asked for more), its logarithm by 0.1% (docs/results.md compares the two).
    `label_smoothing` is 0.1 in the paper on miniImageNet. The SVM adds
    `svm_eps` (1.0 in the paper's code) to the kernel's diagonal so its dual is strictly convex, and is solved to
    an optimality gap of `svm_tol` within `svm_iterations` interior-point steps (see `svm.py`; 10 to 20 suffice).
    """

    def __init__(
        self,
        backbone: Backbone,
        head: str = "svm",
        C: float = 0.1,
        lam: float = 50.0,
        scale: float = 1.0,
        learn_scale: bool = True,
        label_smoothing: float = 0.0,
        svm_eps: float = 1.0,
        svm_iterations: Steps = 50,
        svm_tol: float = 1e-9,
    ) -> None:
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}, got {head!r}")
        if C <= 0 or lam <= 0 or scale <= 0 or svm_tol <= 0:
            raise ValueError(
                f"C, lam, scale and svm_tol must be > 0, got C={C}, lam={lam}, scale={scale}, svm_tol={svm_tol}"
            )
        if not 0 <= label_smoothing < 1 or svm_eps < 0 or svm_iterations < 1:
            raise ValueError(
                f"label_smoothing must be in [0, 1), svm_eps >= 0 and svm_iterations >= 1, got "
                f"{label_smoothing}, {svm_eps}, {svm_iterations}"
            )
        self.backbone, self.head = backbone, head
        self.C, self.lam, self.label_smoothing = C, lam, label_smoothing
        self.svm_eps, self.svm_iterations, self.svm_tol = svm_eps, svm_iterations, svm_tol
        initial = torch.tensor(math.log(scale))
        if learn_scale:
            self.log_scale = nn.Parameter(initial)
        else:
            self.register_buffer("log_scale", initial)
        self.register_load_state_dict_pre_hook(_scale_as_logarithm)

    @property
    def scale(self) -> Tensor:
        """The logit scale."""
        return self.log_scale.exp()

    def fit_head(self, support: Tensor, labels: Tensor, way: int) -> Tensor:
        """Weights W [B, D, N] of the head fitted to support embeddings [B, S, D] with labels [B, S]."""
        with torch.autocast(support.device.type, enabled=False):
            if self.head == "ridge":
                return ridge_head(support, labels, way, self.lam)
            return svm_head(support, labels, way, self.C, self.svm_eps, self.svm_iterations, self.svm_tol)

    def fit_support(self, z: Tensor, y: Tensor, way: int) -> Tensor:
        return self.fit_head(z, y, way)

    def score(self, zq: Tensor, state: Tensor) -> Tensor:
        """scale * zq @ W [B, M, way], in fp32 whatever the autocast."""
        with torch.autocast(zq.device.type, enabled=False):
            return self.scale * (zq @ state)

    def loss(self, scores: Tensor, query_y: Tensor) -> Tensor:
        """Cross-entropy with the paper's label smoothing."""
        return smoothed_cross_entropy(scores.flatten(0, 1), query_y.flatten(), self.label_smoothing)
