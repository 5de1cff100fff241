"""The weightings that keep state or ask the trainer for more (a meta batch, the losses after the step, per-task
gradient averages) inside real training runs: a run resumed from its checkpoint ends bit-identical to one that was
not interrupted, and FAMO's after-step update and Auto-Lambda's meta step are what moved their weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from polyskill.data.mtl_batches import MultiTaskBatches
from polyskill.eval.multitask import MultiTaskMetrics
from polyskill.recipes import load
from polyskill.recipes.kinds.datasets import multitask_data
from polyskill.recipes.kinds.multitask import learner
from polyskill.train.episodic import FitConfig
from polyskill.train.multitask import MultiTaskTrainer

STATEFUL = ["autol", "famo", "stch", "dbmtl", "moco", "graddrop", "excessmtl", "gradvac", "sdmgrad", "imtl_hybrid"]


def trainer(out: Path, steps: int, weighting: str, options: tuple[str, ...] = ()) -> MultiTaskTrainer:
    recipe = load("mtl-synthetic-affinity", [f"mtl.weighting={weighting}", "mtl.affinity_every=0", *options])
    train = multitask_data(recipe.data, "train")
    return MultiTaskTrainer(
        learner(recipe, train),
        MultiTaskBatches(train, 32, seed=0),
        FitConfig(steps=steps, lr=3e-3, log_every=4, val_every=6),
        out=out,
        val=MultiTaskMetrics(multitask_data(recipe.data, "val"), "val"),
        progress=False,
    )


@pytest.mark.parametrize("weighting", STATEFUL)
def test_resume_continues_identically(tmp_path, weighting):
    options = ("mtl.options.warmup_steps=4",) if weighting == "stch" else ()
    straight = trainer(tmp_path / "a", 12, weighting, options)
    straight.fit()
    first = trainer(tmp_path / "b", 6, weighting, options)
    first.fit()
    resumed = trainer(tmp_path / "b", 12, weighting, options)
    resumed.resume()
    resumed.fit()
    a, b = straight.algo.state_dict(), resumed.algo.state_dict()
    assert a.keys() == b.keys()
    for key, value in a.items():
        if torch.is_tensor(value):
            assert torch.equal(value, b[key]), key


def test_famo_moves_its_logits_only_after_the_optimiser_step(tmp_path):
    run = trainer(tmp_path / "famo", 5, "famo")
    weighting = run.algo.aggregator
    seen = []
    original = weighting.after_step

    def spy(losses: torch.Tensor) -> None:
        seen.append(losses.clone())
        original(losses)

    weighting.after_step = spy
    run.fit()
    assert len(seen) == 5 and all(torch.isfinite(s).all() for s in seen)
    assert not torch.equal(weighting.xi, torch.zeros_like(weighting.xi))  # the logits start at zero


def test_autol_reads_a_meta_batch_every_step(tmp_path):
    run = trainer(tmp_path / "autol", 4, "autol", ("mtl.options.lr=0.01",))
    before = run.algo.aggregator.lam.clone()
    drawn = []
    original = run.train.sample

    def count():
        drawn.append(1)
        return original()

    run.train.sample = count
    run.fit()
    assert len(drawn) == 8  # the step's batch and the meta batch, four steps
    assert not torch.equal(before, run.algo.aggregator.lam)
