"""What a learner may ask of its network, as typed protocols: embeddings of a known size, and feature maps.

Conv4 satisfies both, MLP the first. Learners check a backbone against the protocol they need once, in their
constructor (`isinstance` works: the protocols are runtime-checkable), instead of probing attributes.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from torch import Tensor


@runtime_checkable
class Backbone(Protocol):
    """A network from inputs [N, ...] to embeddings [N, embedding_dim]."""

    embedding_dim: int

    def __call__(self, x: Tensor) -> Tensor: ...


@runtime_checkable
class FeatureMapBackbone(Backbone, Protocol):
    """A Backbone whose last block's maps [N, *feature_shape] (C, H, W) are also available, for relation modules."""

    feature_shape: tuple[int, int, int]

    def feature_maps(self, x: Tensor) -> Tensor: ...
