"""An encoder followed by a small MLP and an optional output layer: the network of a few-shot learner over any
input an encoder turns into vectors (a sentence encoder, a text CNN), or over vectors themselves."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn


class EncoderNetwork(nn.Module):
    """`encoder` (a Backbone; None when the inputs are already vectors of `input_dim`), then Linear layers of
    `widths` with ReLU between them, then with `outputs` a ReLU and a linear `head` of that size. Its
    `embedding_dim` is the size before the head, so metric learners and MAML's head-only variant see it as a
    Backbone with a head."""

    def __init__(
        self, encoder: nn.Module | None, input_dim: int, widths: Sequence[int] = (), outputs: int | None = None
    ) -> None:
        super().__init__()
        if input_dim < 1 or any(w < 1 for w in widths) or (outputs is not None and outputs < 1):
            raise ValueError(f"sizes must be positive, got input {input_dim}, widths {list(widths)}, outputs {outputs}")
        self.encoder = encoder
        layers: list[nn.Module] = []
        dim = input_dim
        for i, width in enumerate(widths):
            layers.append(nn.Linear(dim, width))
            if i < len(widths) - 1 or outputs:
                layers.append(nn.ReLU())
            dim = width
        self.body = nn.Sequential(*layers)
        self.embedding_dim: int = dim
        self.head = nn.Linear(dim, outputs) if outputs else None

    def forward(self, x: Tensor) -> Tensor:
        z = self.body(self.encoder(x) if self.encoder is not None else x)
        return self.head(z) if self.head is not None else z
