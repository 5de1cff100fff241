"""Few-shot algorithms, one module each, all implementing FewShotAlgorithm."""

from .base import FewShotAlgorithm, Predictor, accuracy
from .baseline import Baseline
from .contract import Contract
from .contrastive import ContrastiveEmbedding
from .inner_loop import InnerLoop
from .maml import MAML
from .matching import MatchingNetworks
from .metaoptnet import MetaOptNet
from .metric import MetricLearner, MetricPredictor
from .protonet import PrototypicalNetworks
from .relation import RelationNetworks
from .reptile import Reptile
from .task_conditioned import TaskConditioned

ALGORITHMS: dict[str, type[FewShotAlgorithm]] = {
    "baseline": Baseline,
    "contrastive": ContrastiveEmbedding,
    "maml": MAML,
    "matching": MatchingNetworks,
    "metaoptnet": MetaOptNet,
    "protonet": PrototypicalNetworks,
    "relation": RelationNetworks,
    "reptile": Reptile,
    "task_conditioned": TaskConditioned,
}

__all__ = [
    "ALGORITHMS",
    "MAML",
    "Baseline",
    "Contract",
    "ContrastiveEmbedding",
    "FewShotAlgorithm",
    "InnerLoop",
    "MatchingNetworks",
    "MetaOptNet",
    "MetricLearner",
    "MetricPredictor",
    "Predictor",
    "PrototypicalNetworks",
    "RelationNetworks",
    "Reptile",
    "TaskConditioned",
    "accuracy",
]
