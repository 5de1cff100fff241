"""A fully connected network with ReLU activations (the MAML paper's 1-40-40-1 sinusoid regressor)."""

from __future__ import annotations

import itertools

from torch import nn


class MLP(nn.Sequential):
    """Linear layers of the given widths with ReLU between them: MLP([1, 40, 40, 1]). Its outputs are its
    embeddings, so `embedding_dim` is the last width (a Backbone)."""

    def __init__(self, widths: list[int]) -> None:
        if len(widths) < 2 or min(widths) < 1:
            raise ValueError(f"an MLP needs at least two positive widths (in and out), got {widths}")
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(itertools.pairwise(widths)):
            layers.append(nn.Linear(a, b))
            if i < len(widths) - 2:
                layers.append(nn.ReLU())
        super().__init__(*layers)
        self.embedding_dim: int = widths[-1]
