"""Full context embeddings (Vinyals et al., 2016, appendix): LSTMs that embed examples in the context of a support set.

Both work on batches of tasks: support sequences [B, S, D], queries [B, M, D], with hidden size D.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class SupportContext(nn.Module):
    """g: a bidirectional LSTM read along the support sequence, with a skip: g(x_i) = h_fwd_i + h_bwd_i + g'(x_i)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(dim, dim, batch_first=True, bidirectional=True)

    def forward(self, support: Tensor) -> Tensor:
        """Support embeddings g'(x_i) [B, S, D], in reading order -> contextual embeddings [B, S, D]."""
        outputs, _ = self.lstm(support)
        forward, backward = outputs.chunk(2, dim=-1)
        return forward + backward + support


class AttentionReader(nn.Module):
    """f: an LSTM that takes `steps` processing steps on the query embedding f'(x), each reading the support.

    Step k: r = sum_i softmax_i(h_{k-1} . g(x_i)) g(x_i); h^, c = LSTM(f'(x), [h_{k-1}, r], c_{k-1}); h_k = h^ + f'(x).
    The paper's LSTM on the state [h, r] is an LSTM cell whose gates are linear in (f'(x), r) and h, i.e. a
    cell with input [f'(x), r] and hidden state h; it starts from h_0 = f'(x), c_0 = 0 and returns h_K.
    """

    def __init__(self, dim: int, steps: int) -> None:
        super().__init__()
        if steps < 1:
            raise ValueError(f"the attention LSTM needs at least 1 processing step, got {steps}")
        self.steps = steps
        self.cell = nn.LSTMCell(2 * dim, dim)

    def forward(self, query: Tensor, support: Tensor) -> Tensor:
        """Query embeddings f'(x) [B, M, D] and contextual support g [B, S, D] -> f(x, S) [B, M, D]."""
        b, m, d = query.shape
        x = query.reshape(b * m, d)
        h, c = x, torch.zeros_like(x)
        for _ in range(self.steps):
            attention = (h.view(b, m, d) @ support.transpose(1, 2)).softmax(-1)
            read = (attention @ support).view(b * m, d)
            h_hat, c = self.cell(torch.cat([x, read], dim=-1), (h, c))
            h = h_hat + x
        return h.view(b, m, d)
