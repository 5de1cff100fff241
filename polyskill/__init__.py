"""polyskill: one model, many skills. Meta-learning and multi-task learning on PyTorch.

The public API is these sub-packages and names:

- `polyskill.data`: data root and checked files, `omniglot(split)`, `image_folder(path)`, `episodes(...)`
  (an EpisodeSampler producing `TaskBatch`es), `Support`.
- `polyskill.nn`: backbones (`Conv4`) and precision helpers.
- `polyskill.meta`: `FewShotAlgorithm` (the interface) and the algorithms (`PrototypicalNetworks`, `MAML`,
  `Reptile`, `MatchingNetworks`, `RelationNetworks`, `MetaOptNet`, `Baseline`, `ContrastiveEmbedding`).
- `polyskill.train`: `fit(algo, episodes, ...)`, `FitConfig`, checkpoints and metrics logs.
- `polyskill.eval`: `few_shot(algo, dataset, way, shot)` -> accuracy with a 95% confidence interval.
- `polyskill.recipes`: YAML recipes, validated (`load(name, overrides)`), and runs built from them.
- `FewShotClassifier`: scikit-learn-style few-shot classification with any trained run.
"""

from . import data, eval, meta, nn, recipes, train
from ._version import __version__
from .classifier import FewShotClassifier
from .errors import ConfigError, DataError, PolyskillError, RunError

__all__ = [
    "ConfigError",
    "DataError",
    "FewShotClassifier",
    "PolyskillError",
    "RunError",
    "__version__",
    "data",
    "eval",
    "meta",
    "nn",
    "recipes",
    "train",
]
