"""The multi-task data sets by name, shared by the kinds that read them (multi-task learning, and meta-learning
over their tasks); a split is loaded once per process."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

from ...data import mtl_synthetic, multifashion, parkinsons, school
from ...data.multitask import MultiTaskData
from ...errors import ConfigError

MULTITASK_SOURCES: dict[str, Callable[[str, Any, int, str | None], MultiTaskData]] = {
    "multifashion": lambda split, root, seed, tasks: multifashion(split, root=root, seed=seed),
    "school": lambda split, root, seed, tasks: school(split, root=root, split_seed=seed),
    "parkinsons": lambda split, root, seed, tasks: parkinsons(
        split, root=root, split_seed=seed, tasks=tasks or "targets"
    ),
    "mtl_synthetic": lambda split, root, seed, tasks: mtl_synthetic(split, seed=seed),
}


@functools.lru_cache(maxsize=16)
def _load(dataset: str, split: str, root: Any, split_seed: int, tasks: str | None, env: str | None) -> MultiTaskData:
    try:
        return MULTITASK_SOURCES[dataset](split, root, split_seed, tasks)
    except ValueError as exc:
        raise ConfigError(f"data: {exc}") from None


def multitask_data(spec: Any, split: str, root: Any = None) -> MultiTaskData:
    """Split `split` ('train', 'val' or 'test') of the data set a recipe's data section names (`dataset`,
    `split_seed`, `tasks`)."""
    return _load(
        spec.dataset,
        split,
        None if root is None else str(root),
        spec.split_seed,
        spec.tasks,
        os.environ.get("POLYSKILL_DATA"),
    )
