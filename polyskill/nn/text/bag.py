"""Bag of embeddings: the mean of a text's token embeddings, the simplest encoder trained from scratch."""

from __future__ import annotations

from torch import Tensor, nn


class BagOfEmbeddings(nn.Module):
    """LongTensor [N, L] of token ids (0 = padding) -> [N, embed_dim]: the mean embedding of the non-padding ids.
    A text with no ids (all padding) gives zeros, never NaN."""

    def __init__(self, vocab_size: int, embed_dim: int = 128) -> None:
        super().__init__()
        if vocab_size < 2 or embed_dim < 1:
            raise ValueError(f"vocab_size must be >= 2 and embed_dim >= 1, got {vocab_size} and {embed_dim}")
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.embedding_dim: int = embed_dim

    def forward(self, x: Tensor) -> Tensor:
        """[N, L] ids -> [N, embed_dim] mean embeddings of the non-padding positions."""
        mask = (x != 0).unsqueeze(-1).to(self.embedding.weight.dtype)
        total = (self.embedding(x) * mask).sum(1)
        return total / mask.sum(1).clamp(min=1.0)
