"""Recipes: typed sections validated on load, so a wrong key or type is one clear error, never a traceback."""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import types
import typing
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..errors import ConfigError
from ..meta import ALGORITHMS
from ..train.episodic import FitConfig

FEW_SHOT_DATASETS = ("omniglot", "folder", "sinusoid", "multimodal")
MULTITASK_DATASETS = ("multifashion", "school", "parkinsons", "mtl_synthetic")
DATASETS = FEW_SHOT_DATASETS + MULTITASK_DATASETS
BACKBONES = ("conv4", "mlp", "lenet")


def _at_least(spec: Any, **minimums: int) -> None:
    """Raise ValueError('FIELD must be >= N, got V') for the first field (or list element) below its minimum."""
    for name, low in minimums.items():
        value = getattr(spec, name)
        for item in value if isinstance(value, list) else [value]:
            if item is not None and item < low:
                raise ValueError(f"{name} must be >= {low}, got {item}")


@dataclass
class DataSpec:
    """Which classes to train, validate and test on. For `folder`, train/val/test are paths of class folders;
    `sinusoid` and `multimodal` tasks are synthetic (train/val/test are not read: the seeds tell the task
    streams apart; `modes` is the number of function families of `multimodal`, 1 to 5).
    `as_tasks: true` turns a partitioned multi-task data set (School; Parkinsons with `tasks: subjects`) into
    few-shot regression tasks for a meta-learner: each of its tasks is a task, seen through its examples.
    Multi-task data sets have fixed train/val/test splits drawn with `split_seed`; `tasks` picks Parkinsons'
    tasks (`targets`: motor and total UPDRS, `subjects`: one task per subject)."""

    dataset: str = "omniglot"
    train: str = "vinyals/train"
    val: str | None = "vinyals/val"
    test: str = "vinyals/test"
    image_size: int = 28
    channels: int = 1
    split_seed: int = 0
    tasks: str | None = None
    modes: int = 5
    as_tasks: bool = False

    def __post_init__(self) -> None:
        _at_least(self, image_size=1, modes=1)
        if self.modes > 5:
            raise ValueError(f"modes must be <= 5 (the multimodal families), got {self.modes}")
        if self.as_tasks and self.dataset not in MULTITASK_DATASETS:
            raise ValueError(f"as_tasks applies to the multi-task data sets ({', '.join(MULTITASK_DATASETS)}), "
                             f"not to {self.dataset}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")


@dataclass
class ModelSpec:
    """`conv4`: `hidden` channels per block, the first `pools` blocks max-pooled (null: all); `mlp`: hidden
    layer `widths` (inputs and outputs from the data). `init`: a run directory (or checkpoint file) whose
    backbone weights start this run (meta-transfer: a ProtoNet or MAML started from a pretrained Baseline)."""

    backbone: str = "conv4"
    hidden: int = 64
    widths: list[int] = field(default_factory=lambda: [40, 40])
    pools: int | None = None
    init: str | None = None

    def __post_init__(self) -> None:
        _at_least(self, hidden=1, widths=1, pools=0)


@dataclass
class EpisodeSpec:
    """An N-way K-shot Q-query protocol; a null shot means the training shot."""

    way: int = 5
    shot: int | None = 1
    query: int = 15

    def __post_init__(self) -> None:
        _at_least(self, way=1, shot=1, query=0)


@dataclass
class EvalSpec:
    """The test protocols run after training and by `polyskill eval` by default. `steps`: adaptation steps
    to test gradient-based learners with (null: the algorithm's own `eval_steps`)."""

    ways: list[int] = field(default_factory=lambda: [5, 20])
    shots: list[int] | None = None
    query: int = 15
    episodes: int = 1000
    seed: int = 0
    steps: list[int] | None = None

    def __post_init__(self) -> None:
        _at_least(self, ways=1, shots=1, query=1, episodes=1, steps=0)


@dataclass
class MTLSpec:
    """Multi-task training: the architecture and the aggregator (by name, with their constructor `options`),
    `rep_grad` (aggregate gradients of the shared representation, MGDA-UB style), the batch (`batch_size`
    examples, or `task_batch` examples of every task for data where each example belongs to one task),
    `affinity_every` (measure lookahead task affinity every that many steps; 0: off), `tie_heads` (start every
    task head from the same weights, so that the per-task gradients on the shared layers differ only by what
    the tasks ask of them: what task-affinity measurements want) and `baseline`, the run directory of
    single-task baselines that delta-m compares with."""

    architecture: str = "hps"
    weighting: str = "ew"
    options: dict[str, Any] = field(default_factory=dict)
    architecture_options: dict[str, Any] = field(default_factory=dict)
    rep_grad: bool = False
    batch_size: int = 256
    task_batch: int = 8
    affinity_every: int = 0
    tie_heads: bool = False
    baseline: str | None = None

    def __post_init__(self) -> None:
        from ..mtl import ARCHITECTURE_NAMES, AGGREGATOR_NAMES, aggregator_class, architecture_class

        _at_least(self, batch_size=1, task_batch=1, affinity_every=0)
        if self.architecture not in ARCHITECTURE_NAMES:
            raise ValueError(f"architecture must be one of {', '.join(ARCHITECTURE_NAMES)}, got {self.architecture!r}")
        if self.weighting not in AGGREGATOR_NAMES:
            raise ValueError(f"weighting must be one of {', '.join(AGGREGATOR_NAMES)}, got {self.weighting!r}")
        self.options = _options(aggregator_class(self.weighting), self.options, "mtl.options", skip=("num_tasks",))
        self.architecture_options = _options(architecture_class(self.architecture), self.architecture_options,
                                             "mtl.architecture_options",
                                             skip=("tasks", "encoder", "head", "input_shape"))


@dataclass
class Recipe:
    name: str = "custom"
    description: str = ""
    data: DataSpec = field(default_factory=DataSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    algo: dict[str, Any] = field(default_factory=lambda: {"name": "protonet"})
    episodes: EpisodeSpec = field(default_factory=EpisodeSpec)
    validation: EpisodeSpec = field(default_factory=lambda: EpisodeSpec(way=20, shot=None, query=15))
    train: FitConfig = field(default_factory=FitConfig)
    eval: EvalSpec = field(default_factory=EvalSpec)
    mtl: MTLSpec = field(default_factory=MTLSpec)


CHOICES = {"data.dataset": DATASETS, "model.backbone": BACKBONES}


def _type_name(tp: Any) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _type_name(a) for a in typing.get_args(tp))
    if origin is dict:
        return "a mapping"
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0]).split(' ', 1)[-1]}s"
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against annotation `tp`; ints are accepted for floats, and '1e-3' strings too."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(tp):
            if option is type(None) and value is None:
                return None
            if option is not type(None):
                try:
                    return _coerce(value, option, key)
                except ConfigError:
                    pass
    elif origin is list:
        if isinstance(value, list):
            return [_coerce(v, typing.get_args(tp)[0], f"{key}[{i}]") for i, v in enumerate(value)]
        if not isinstance(value, (dict, bool)) and value is not None:
            return [_coerce(value, typing.get_args(tp)[0], key)]
    elif tp is bool and isinstance(value, bool):
        return value
    elif tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    elif tp is float and not isinstance(value, bool):
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str and isinstance(value, str):
        return value
    elif origin is dict and isinstance(value, dict):
        return dict(value)
    raise ConfigError(f"{key} must be {_type_name(tp)}, got {value!r}")


def _unknown(key: str, known: list[str]) -> ConfigError:
    prefix, _, last = key.rpartition(".")
    close = difflib.get_close_matches(last, known, n=1)
    hint = (f" (did you mean '{prefix + '.' if prefix else ''}{close[0]}'?)" if close
            else f"; known keys here: {', '.join(known)}")
    return ConfigError(f"unknown key '{key}'{hint}")


def _build(cls: type, values: Any, prefix: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'the recipe'} must be a mapping of keys to values, got {values!r}")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        full = f"{prefix}{key}"
        if key not in hints:
            raise _unknown(full, known)
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value, f"{full}.")
        elif key == "algo" and cls is Recipe:
            kwargs[key] = _algo(value)
        else:
            kwargs[key] = _coerce(value, tp, full)
            if full in CHOICES and kwargs[key] not in CHOICES[full]:
                raise ConfigError(f"{full} must be one of {', '.join(CHOICES[full])}, got {kwargs[key]!r}")
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{prefix}{exc}" if prefix else f"recipe: {exc}") from None


def _options(cls: type, values: Any, prefix: str,
             skip: tuple[str, ...] = ("backbone", "input_shape", "classes")) -> dict[str, Any]:
    """Keyword options for `cls`'s constructor: every key must be one of its parameters (but `skip`), every
    value of its annotated type."""
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix} must be a mapping of option names to values, got {values!r}")
    params = inspect.signature(cls).parameters
    options = sorted(k for k, p in params.items()
                     if k not in skip and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))
    hints = typing.get_type_hints(cls.__init__)
    out = {}
    for key, value in values.items():
        if key not in options:
            raise _unknown(f"{prefix}.{key}", options or ["(none: it takes no options)"])
        out[key] = _coerce(value, hints[key], f"{prefix}.{key}") if key in hints else value
    return out


def _algo(values: Any) -> dict[str, Any]:
    """`algo:` names a registered algorithm; its other keys must be that class's constructor options."""
    if not isinstance(values, dict) or "name" not in values:
        raise ConfigError(f"algo must be a mapping with a 'name' ({', '.join(ALGORITHMS)}), got {values!r}")
    name = values["name"]
    if name not in ALGORITHMS:
        raise ConfigError(f"algo.name must be one of {', '.join(ALGORITHMS)}, got {name!r}")
    return {"name": name, **_options(ALGORITHMS[name], {k: v for k, v in values.items() if k != "name"}, "algo")}


def recipe_from_dict(values: dict[str, Any]) -> Recipe:
    """Validate a nested mapping into a Recipe."""
    return _build(Recipe, values, "")


def recipe_to_dict(recipe: Recipe) -> dict[str, Any]:
    return dataclasses.asdict(recipe)


def parse_override(text: str) -> tuple[list[str], Any]:
    """'train.steps=500' -> (['train', 'steps'], 500); the value is read as YAML (numbers, lists, null)."""
    if "=" not in text:
        raise ConfigError(f"bad --set {text!r}: expected key=value, for example train.steps=500")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"bad --set {text!r}: the key must be dotted names, for example train.steps")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_overrides(values: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set each key=value override into a copy of the raw recipe mapping (validation happens afterwards)."""
    result = yaml.safe_load(yaml.safe_dump(values)) or {}
    for text in overrides:
        path, value = parse_override(text)
        node = result
        for depth, part in enumerate(path[:-1], start=1):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"bad --set {text!r}: {'.'.join(path[:depth])} is not a section")
            node = child
        node[path[-1]] = value
    return result
