"""Multi-task learning: architectures, gradient aggregators, per-task gradients and task affinity."""

from .architectures import ARCHITECTURE_NAMES, architecture_class
from .base import Aggregation, Aggregator, MultiTaskModel, project_simplex
from .weighting import AGGREGATOR_NAMES, aggregator_class

__all__ = ["AGGREGATOR_NAMES", "ARCHITECTURE_NAMES", "Aggregation", "Aggregator", "MultiTaskModel",
           "aggregator_class", "architecture_class", "project_simplex"]
