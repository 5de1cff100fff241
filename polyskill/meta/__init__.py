"""Few-shot algorithms, one module each, all implementing FewShotAlgorithm."""

from .base import FewShotAlgorithm, Predictor, accuracy, episode_accuracies
from .inner_loop import InnerLoop
from .maml import MAML
from .protonet import PrototypicalNetworks
from .reptile import Reptile

ALGORITHMS: dict[str, type[FewShotAlgorithm]] = {"maml": MAML, "protonet": PrototypicalNetworks,
                                                 "reptile": Reptile}

__all__ = ["ALGORITHMS", "FewShotAlgorithm", "InnerLoop", "MAML", "Predictor", "PrototypicalNetworks", "Reptile", "accuracy",
           "episode_accuracies"]
