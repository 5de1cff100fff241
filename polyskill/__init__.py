"""polyskill: one model, many skills. Meta-learning and multi-task learning on PyTorch.

The public API is these sub-packages and names:

- `polyskill.data`: data root and checked files, `omniglot(split)`, the colour sets (`mini_imagenet`,
  `tiered_imagenet`, `cifar_fs`, `cub`), `image_folder(path)`, training augmentation (`augment`),
  `text_set(name, split)` and a user's text files (`TextClasses`, `draw_shots`), `episodes(...)` (an
  EpisodeSampler producing `TaskBatch`es), `Support`.
- `polyskill.nn`: backbones (`Conv4`, `ResNet12`, `WideResNet`, `DropBlock`; text encoders in
  `polyskill.nn.text`: `SentenceEncoder`, `TextCNN`, `BagOfEmbeddings`, the embedding cache) and precision helpers.
- `polyskill.meta`: `FewShotAlgorithm` (the interface) and the algorithms (`PrototypicalNetworks`, `MAML`,
  `IMAML`, `Reptile`, `MatchingNetworks`, `RelationNetworks`, `MetaOptNet`, `Baseline`, `ContrastiveEmbedding`,
  and the transductive and feature-based `SimpleShot`, `TIM`, `PTMAP`, `LaplacianShot`, `BDCSPN`,
  `TransductiveFinetune`).
- `polyskill.mtl`: multi-task architectures, aggregators and loss weightings, the multi-task step.
- `polyskill.train`: `fit(algo, episodes, ...)`, `FitConfig`, checkpoints and metrics logs.
- `polyskill.eval`: evaluation protocols and their typed results (`few_shot(algo, dataset, way, shot)` ->
  accuracy with a 95% confidence interval), the run summary.
- `polyskill.recipes`: YAML recipes, one kind per problem (`load(name, overrides)`, `kind_of(recipe)`), and
  the runner.
- `polyskill.rl`: reinforcement learning (the `rl` extra for MuJoCo): task families (`family(name)`: 2D navigation,
  HalfCheetah velocity and direction), `Rollouts`, `GaussianPolicy`, the learners (`MAMLRL`, `Pretrained`,
  `MultiTaskPolicy`), TRPO, and the adaptation protocols.
- `FewShotClassifier`: scikit-learn-style few-shot classification with any trained run, of images or texts.
- `polyskill.serve` (the `serve` extra): `create_app`, `load_models`, `ServeConfig`, `ServeLimits`: trained runs
  behind an HTTP API; `ServeClient` / `ServeError`: its client, in the standard library only.
"""

from . import data, eval, meta, mtl, nn, recipes, rl, train
from ._version import __version__
from .classifier import FewShotClassifier
from .client import ServeClient, ServeError
from .errors import ConfigError, DataError, PolyskillError, RunError

__all__ = [
    "ConfigError",
    "DataError",
    "FewShotClassifier",
    "PolyskillError",
    "RunError",
    "ServeClient",
    "ServeError",
    "__version__",
    "data",
    "eval",
    "meta",
    "mtl",
    "nn",
    "recipes",
    "rl",
    "train",
]
