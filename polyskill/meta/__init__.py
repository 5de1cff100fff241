"""Few-shot algorithms, one module each, all implementing FewShotAlgorithm."""

from .base import FewShotAlgorithm, Predictor, accuracy, episode_accuracies
from .protonet import PrototypicalNetworks

ALGORITHMS: dict[str, type[FewShotAlgorithm]] = {"protonet": PrototypicalNetworks}

__all__ = ["ALGORITHMS", "FewShotAlgorithm", "Predictor", "PrototypicalNetworks", "accuracy",
           "episode_accuracies"]
