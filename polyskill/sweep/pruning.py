"""Optuna's side of a sweep: its logging, the sink that reports validation to the pruner, and the samplers and
pruners a sweep can use. The study and its workers both import this module (and not each other)."""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from ..eval.summary import validation_key

SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "hyperband", "none")


def quiet_optuna(verbose: bool = False) -> None:
    """Optuna logs every trial at INFO and a traceback for every caught failure; the sweep prints its own
    one line per trial instead, so Optuna speaks only on errors unless `verbose`."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.ERROR)


class PruningSink:
    """A record sink for `train_run`: reports each validation figure of `metric` to the trial and stops the run
    (optuna.TrialPruned, so run.json says "pruned") when the pruner says so, except at the last step, where
    stopping saves nothing. The pruner compares values in the study's direction."""

    def __init__(self, trial: Any, metric: str, last_step: int) -> None:
        self.trial, self.metric, self.last_step = trial, metric, last_step
        self.key = validation_key(metric)

    def write(self, record: dict[str, Any]) -> None:
        """Report a validation record; raise optuna.TrialPruned if the trial should stop here."""
        if self.key not in record:
            return
        import optuna

        step, value = int(record["step"]), float(record[self.key])
        self.trial.report(value, step)
        if step < self.last_step and self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at step {step} ({self.metric} {value:.4g})")

    def close(self) -> None:
        """Nothing to release: the trial's reports are already in the study."""


def make_sampler(name: str, seed: int | None) -> Any:
    """TPE (the default: it models good and bad trials separately) or random search, seeded when asked."""
    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ConfigError(f"unknown sampler {name!r}; known: {', '.join(SAMPLERS)}")


def make_pruner(name: str, val_every: int, steps: int) -> Any:
    """`median`: stop a trial whose validation is below the median of earlier trials at the same step (from
    the second validation on, once 3 trials have finished); `hyperband`: successive halving from one
    validation interval up to the full run; `none`: train every trial to the end."""
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=val_every + 1)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=val_every, max_resource=max(steps, val_every))
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"unknown pruner {name!r}; known: {', '.join(PRUNERS)}")
