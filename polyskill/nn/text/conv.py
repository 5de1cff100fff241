"""TextCNN (Kim, 2014): convolutions of several widths over word embeddings, max-pooled over time."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class TextCNN(nn.Module):
    """LongTensor [N, L] of token ids (0 = padding, at the end) -> [N, filters * len(kernel_sizes)].

    One Conv1d per kernel size over the embeddings, ReLU, max over the windows that lie inside the text (padding
    never changes a text's embedding); a text shorter than a kernel gets its one window, zero-filled past its end.
    Dropout on the concatenated features, as in the paper.
    """

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 128,
        filters: int = 100,
        kernel_sizes: tuple[int, ...] = (3, 4, 5),
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if vocab_size < 2 or embed_dim < 1 or filters < 1:
            raise ValueError(
                f"vocab_size must be >= 2, embed_dim and filters >= 1, got {vocab_size}, {embed_dim}, {filters}"
            )
        if not kernel_sizes or min(kernel_sizes) < 1:
            raise ValueError(f"kernel_sizes must be a non-empty list of sizes >= 1, got {list(kernel_sizes)}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.kernel_sizes = tuple(int(k) for k in kernel_sizes)
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(embed_dim, filters, k) for k in self.kernel_sizes)
        self.dropout = nn.Dropout(dropout)
        self.embedding_dim: int = filters * len(self.kernel_sizes)

    def forward(self, x: Tensor) -> Tensor:
        """[N, L] ids -> [N, embedding_dim] max-pooled convolution features."""
        mask = x != 0
        length = mask.sum(1, keepdim=True)  # [N, 1]
        z = self.embedding(x) * mask.unsqueeze(-1).to(self.embedding.weight.dtype)  # zero past the text's end
        z = F.pad(z.transpose(1, 2), (0, max(0, max(self.kernel_sizes) - x.shape[1])))  # [N, E, max(L, k_max)]
        pooled = []
        for k, conv in zip(self.kernel_sizes, self.convs, strict=True):
            h = F.relu(conv(z))  # [N, F, T]: window t covers positions t .. t+k-1
            start = torch.arange(h.shape[-1], device=x.device)
            inside = start.unsqueeze(0) < (length - k + 1).clamp(min=1)  # [N, T]; at least the first window
            pooled.append(h.masked_fill(~inside.unsqueeze(1), 0.0).amax(-1))  # ReLU >= 0, so 0 never wins wrongly
        return self.dropout(torch.cat(pooled, 1))
