"""Multi-task learning: architectures, task weightings (loss weightings and gradient aggregators), per-task gradient
strategies and the step that combines them, and task affinity."""

from .architectures import ARCHITECTURE_NAMES, architecture_class
from .base import (
    Aggregation,
    Aggregator,
    BilevelWeighting,
    JacobianAggregator,
    LossWeighting,
    MultiTaskModel,
    Weighting,
    project_simplex,
)
from .reduction import LOCAL, Reduction
from .weighting import AGGREGATOR_NAMES, aggregator_class

__all__ = [
    "AGGREGATOR_NAMES",
    "ARCHITECTURE_NAMES",
    "LOCAL",
    "Aggregation",
    "Aggregator",
    "BilevelWeighting",
    "JacobianAggregator",
    "LossWeighting",
    "MultiTaskModel",
    "Reduction",
    "Weighting",
    "aggregator_class",
    "architecture_class",
    "project_simplex",
]
