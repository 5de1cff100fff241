"""Few-shot algorithms, one module each, all implementing FewShotAlgorithm."""

from .base import FewShotAlgorithm, Predictor, accuracy
from .baseline import Baseline
from .bd_cspn import BDCSPN
from .contract import Contract
from .contrastive import ContrastiveEmbedding
from .imaml import IMAML
from .inner_loop import InnerLoop
from .laplacian_shot import LaplacianShot
from .maml import MAML
from .matching import MatchingNetworks
from .metaoptnet import MetaOptNet
from .metric import MetricLearner, MetricPredictor
from .protonet import PrototypicalNetworks
from .pt_map import PTMAP
from .relation import RelationNetworks
from .reptile import Reptile
from .simpleshot import SimpleShot
from .task_conditioned import TaskConditioned
from .tim import TIM
from .transductive_finetune import TransductiveFinetune

ALGORITHMS: dict[str, type[FewShotAlgorithm]] = {
    "baseline": Baseline,
    "contrastive": ContrastiveEmbedding,
    "imaml": IMAML,
    "maml": MAML,
    "matching": MatchingNetworks,
    "metaoptnet": MetaOptNet,
    "protonet": PrototypicalNetworks,
    "relation": RelationNetworks,
    "reptile": Reptile,
    "task_conditioned": TaskConditioned,
    "simpleshot": SimpleShot,
    "tim": TIM,
    "ptmap": PTMAP,
    "laplacianshot": LaplacianShot,
    "bdcspn": BDCSPN,
    "transductive_finetune": TransductiveFinetune,
}

__all__ = [
    "ALGORITHMS",
    "BDCSPN",
    "IMAML",
    "MAML",
    "PTMAP",
    "TIM",
    "Baseline",
    "Contract",
    "ContrastiveEmbedding",
    "FewShotAlgorithm",
    "InnerLoop",
    "LaplacianShot",
    "MatchingNetworks",
    "MetaOptNet",
    "MetricLearner",
    "MetricPredictor",
    "Predictor",
    "PrototypicalNetworks",
    "RelationNetworks",
    "Reptile",
    "SimpleShot",
    "TaskConditioned",
    "TransductiveFinetune",
    "accuracy",
]
