"""Training on several processes (one machine or many) with torch.distributed: one code path at any scale."""

from .collectives import average_gradients, broadcast_module, gather_cat, gather_objects, share, sum_across
from .context import SINGLE, DistContext, from_environment
from .streams import ShardedStream, rank_seed

__all__ = [
    "SINGLE",
    "DistContext",
    "ShardedStream",
    "average_gradients",
    "broadcast_module",
    "from_environment",
    "gather_cat",
    "gather_objects",
    "rank_seed",
    "share",
    "sum_across",
]
