"""Matching Networks (Vinyals et al., 2016): a query's label is a cosine-attention mixture of the support labels."""

from __future__ import annotations

from typing import NamedTuple

import torch.nn.functional as F
from torch import Tensor

from ..nn.backbone import Backbone
from ..nn.fce import AttentionReader, SupportContext
from .base import Steps
from .distances import cosine_similarity, full_precision
from .metric import MetricLearner


def label_mixture_log_probs(scores: Tensor, support_y: Tensor, way: int) -> Tensor:
    """log P(y = n | x) = log sum_{i: y_i = n} softmax_i(scores): scores [B, M, S], support_y [B, S] -> [B, M, N].

    Summed in the log domain (logsumexp of the log-attention over each class's examples), so the log is
    exact without clamping even when a class's probability underflows.
    """
    log_attention = scores.float().log_softmax(-1).unsqueeze(2)  # [B, M, 1, S]
    member = F.one_hot(support_y, way).transpose(1, 2).unsqueeze(1).bool()  # [B, 1, N, S]
    return log_attention.masked_fill(~member, float("-inf")).logsumexp(-1)


class MatchingSupport(NamedTuple):
    """A task's encoded support: g [B, S, D] (contextual with fce), its labels [B, S] and the number of classes."""

    g: Tensor
    y: Tensor
    way: int


class MatchingNetworks(MetricLearner[MatchingSupport]):
    """Attention over the support: P(y|x) = sum_i softmax_i(cos(f(x), g(x_i)) / temperature) onehot(y_i).

    The "logits" are log P (so their softmax is P) and the loss is -log P(true class). Without `fce`, f and g
    are the backbone; with it, g is a bidirectional LSTM over the support embeddings and f an attention LSTM
    of `fce_steps` steps over them (full context embeddings, hidden size = backbone.embedding_dim). The
    LSTM reads the support in the order given (class by class in every episode, training and evaluation
    alike), so with `fce` the output depends on that order; without it, it does not. `temperature` 1 is the
    paper's plain cosine; a smaller one sharpens the attention. `normalize_query=False` scores f(x) . g(x_i) /
    |g(x_i)| as easyfsl and the low-shot-shrink-hallucinate code it follows do: the query's norm becomes a
    learned temperature of its own (it leaves every query's ranking of the support unchanged).
    """

    def __init__(
        self,
        backbone: Backbone,
        fce: bool = False,
        fce_steps: Steps = 10,
        temperature: float = 1.0,
        normalize_query: bool = True,
    ) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.backbone, self.temperature, self.normalize_query = backbone, temperature, normalize_query
        self.support_context: SupportContext | None = None
        self.reader: AttentionReader | None = None
        if fce:
            if not isinstance(backbone, Backbone):
                raise ValueError(
                    "full context embeddings need a Backbone with an integer `embedding_dim` (the LSTMs' "
                    f"size); {type(backbone).__name__} has none"
                )
            dim = backbone.embedding_dim
            self.support_context, self.reader = SupportContext(dim), AttentionReader(dim, fce_steps)

    def encode_support(self, support: Tensor) -> Tensor:
        """g: support embeddings [B, S, D] -> [B, S, D] (in context of the whole support with fce)."""
        return self.support_context(support) if self.support_context is not None else support

    def log_probs(self, query: Tensor, support_g: Tensor, support_y: Tensor, way: int) -> Tensor:
        """Query embeddings f'(x) [B, M, D] and encoded support g [B, S, D] -> log P(y | x) [B, M, way]."""
        f = self.reader(query, support_g) if self.reader is not None else query
        if self.normalize_query:
            scores = cosine_similarity(f, support_g) / self.temperature
        else:
            scores = cosine_similarity(f, support_g) * full_precision(f).norm(dim=-1, keepdim=True) / self.temperature
        return label_mixture_log_probs(scores, support_y, way)

    def fit_support(self, z: Tensor, y: Tensor, way: int) -> MatchingSupport:
        return MatchingSupport(self.encode_support(z), y, way)

    def score(self, zq: Tensor, state: MatchingSupport) -> Tensor:
        """log P(y | x) [B, M, way]: the log of the attention mass on each class's support examples."""
        return self.log_probs(zq, state.g, state.y, state.way)

    def loss(self, scores: Tensor, query_y: Tensor) -> Tensor:
        """-log P(true class), the scores being log-probabilities."""
        return F.nll_loss(scores.flatten(0, 1), query_y.flatten())
