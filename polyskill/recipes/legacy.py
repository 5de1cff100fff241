"""Run directories written before recipes had `kind:`: their config.yaml (every section of every kind, with
defaults) is read as the recipe of the kind it was, keeping only that kind's keys. The only place that knows
the old layout; new recipes must say their kind."""

from __future__ import annotations

from typing import Any

OLD_REGRESSION = ("sinusoid", "multimodal")
OLD_MULTITASK = ("multifashion", "school", "parkinsons", "mtl_synthetic")

KEEP: dict[str, dict[str, tuple[str, ...] | None]] = {  # kind -> section -> the keys it still has (None: all)
    "fewshot": {
        "data": ("dataset", "train", "val", "test", "image_size", "channels"),
        "model": ("backbone", "hidden", "widths", "pools", "init"),
        "algo": None,
        "episodes": ("way", "shot", "query"),
        "validation": ("way", "shot", "query"),
        "eval": ("ways", "shots", "query", "episodes", "seed", "steps"),
    },
    "regression": {
        "data": ("dataset", "modes", "split_seed", "tasks"),
        "model": ("backbone", "widths", "init"),
        "algo": None,
        "episodes": ("shot", "query"),
        "eval": ("shots", "query", "episodes", "seed", "steps"),
    },
    "multitask": {"data": ("dataset", "split_seed", "tasks"), "model": ("backbone", "widths"), "mtl": None},
}
UNUSED_TRAIN = {"multitask": ("meta_batch", "precision")}


def guess_kind(values: dict[str, Any]) -> str:
    """The kind an old recipe mapping (without `kind:`) was: by its data set, as the old code decided."""
    data = values["data"] if isinstance(values.get("data"), dict) else {}
    dataset = data.get("dataset", "omniglot")
    if dataset in OLD_REGRESSION or data.get("as_tasks"):
        return "regression"
    return "multitask" if dataset in OLD_MULTITASK else "fewshot"


def upgrade(values: dict[str, Any]) -> dict[str, Any]:
    """An old run's config mapping as a recipe of its kind."""
    kind = guess_kind(values)
    out: dict[str, Any] = {"kind": kind}
    for key in ("name", "description"):
        if key in values:
            out[key] = values[key]
    for section, keys in KEEP[kind].items():
        value = values.get(section)
        if isinstance(value, dict):
            out[section] = dict(value) if keys is None else {k: v for k, v in value.items() if k in keys}
    data = values["data"] if isinstance(values.get("data"), dict) else {}
    if kind == "multitask":
        out.setdefault("data", {})["val"] = data.get("val") is not None
    if kind == "regression":
        out.setdefault("data", {})["val"] = False  # old regression runs could not validate
    if isinstance(values.get("train"), dict):
        out["train"] = {k: v for k, v in values["train"].items() if k not in UNUSED_TRAIN.get(kind, ())}
    return out
