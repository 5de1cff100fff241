"""A run from a recipe: train into a run directory, evaluate it, and evaluate it again later."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import yaml

from ..data.episodes import EpisodeSampler
from ..errors import RunError
from ..eval.few_shot import FewShotResult, few_shot
from ..train.checkpoint import load_checkpoint, read_json, write_json, write_text
from ..train.episodic import Trainer
from . import apply_overrides, read_yaml, recipe_from_dict, recipe_to_dict
from .build import algorithm, dataset
from .schema import Recipe

Echo = Callable[[str], None]


def _protocols(recipe: Recipe, ways: list[int] | None = None, shots: list[int] | None = None) -> list[tuple[int, int]]:
    """(way, shot) pairs to test: the given ones, else the recipe's eval section (shots default to training's)."""
    ways = ways or recipe.eval.ways
    shots = shots or recipe.eval.shots or [recipe.episodes.shot]
    return [(way, shot) for shot in shots for way in ways]


def train_run(recipe: Recipe, out: str | os.PathLike, *, resume: bool = False, root: str | None = None,
              progress: bool = True, evaluate: bool = True, echo: Echo = print) -> dict[str, Any]:
    """Train `recipe` into `out` (or continue the run there) and, unless told not to, run its test protocols."""
    out = Path(out)
    config_path = out / "config.yaml"
    if resume:
        if not (out / "last.pt").is_file():
            raise RunError(f"cannot resume {out}: it has no last.pt checkpoint yet (it stopped before its first); "
                           f"delete it or train into another --out")
    elif config_path.exists() or (out / "last.pt").exists():
        raise RunError(f"{out} already holds a run; pass --resume to continue it, or choose another --out")
    algo = algorithm(recipe)
    spec, val = recipe.episodes, recipe.validation
    train_sampler = EpisodeSampler(dataset(recipe, "train", root), spec.way, spec.shot, spec.query,
                                   seed=recipe.train.seed)
    val_sampler = None
    if recipe.data.val is not None:
        val_sampler = EpisodeSampler(dataset(recipe, "val", root), val.way, val.shot or spec.shot, val.query,
                                     seed=recipe.eval.seed)
    # only now that the data and the model are known to be good does the run directory take the config
    out.mkdir(parents=True, exist_ok=True)
    write_text(config_path, yaml.safe_dump(recipe_to_dict(recipe), sort_keys=False))
    trainer = Trainer(algo, train_sampler, recipe.train, out=out, val=val_sampler, progress=progress)
    if resume:
        trainer.resume()
        echo(f"resuming {out} at step {trainer.step}")
    summary = trainer.fit()
    summary["recipe"] = recipe.name
    write_json(out / "summary.json", summary)
    if evaluate:
        summary = evaluate_run(out, root=root, echo=echo)
    return summary


def load_run(run: str | os.PathLike) -> tuple[Recipe, Path]:
    """The recipe a run was trained with and the path of its best (else last) weights."""
    run = Path(run)
    if not run.is_dir():
        raise RunError(f"no run directory at {run}")
    if not (run / "config.yaml").is_file():
        raise RunError(f"{run} is not a run directory: it has no config.yaml")
    recipe = recipe_from_dict(read_yaml(run / "config.yaml"))
    for name in ("best.pt", "last.pt"):
        if (run / name).is_file():
            return recipe, run / name
    raise RunError(f"run {run} has no checkpoint yet (best.pt or last.pt)")


def evaluate_run(run: str | os.PathLike, ways: list[int] | None = None, shots: list[int] | None = None,
                 episodes: int | None = None, query: int | None = None, split: str = "test",
                 seed: int | None = None, root: str | None = None, overrides: list[str] | None = None,
                 echo: Echo = print) -> dict[str, Any]:
    """Evaluate a trained run on fixed episodes of `split`; results are printed and stored in summary.json."""
    run = Path(run)
    recipe, weights = load_run(run)
    if overrides:
        recipe = recipe_from_dict(apply_overrides(recipe_to_dict(recipe), overrides))
    algo = algorithm(recipe)
    state = load_checkpoint(weights)
    try:
        algo.load_state_dict(state["model"])
    except (KeyError, TypeError, RuntimeError) as exc:
        raise RunError(f"{weights} does not fit the model that {run / 'config.yaml'} describes "
                       f"({str(exc).splitlines()[0]})") from None
    data = dataset(recipe, split, root)
    protocols = _protocols(recipe, ways, shots)
    results: list[FewShotResult] = []
    for way, shot in protocols:
        result = few_shot(algo, data, way, shot, query or recipe.eval.query, episodes or recipe.eval.episodes,
                          seed=recipe.eval.seed if seed is None else seed, precision=recipe.train.precision,
                          device=recipe.train.device)
        echo(f"{split} {result}")
        results.append(result)
    summary = read_json(run / "summary.json") if (run / "summary.json").is_file() else {}
    kept = [r for r in summary.get(split, []) if (r["way"], r["shot"], r["query"], r["episodes"], r["seed"])
            not in {(r2.way, r2.shot, r2.query, r2.episodes, r2.seed) for r2 in results}]
    summary[split] = kept + [r.to_dict() | {"weights": weights.name} for r in results]
    write_json(run / "summary.json", summary)
    return summary
