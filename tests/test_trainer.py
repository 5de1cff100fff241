"""The trainer: identical resume after a crash, atomic checkpoints, code-free loading, divergence."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from polyskill.data import EpisodeSampler
from polyskill.errors import RunError
from polyskill.eval import FewShotAccuracy
from polyskill.meta import MAML, PrototypicalNetworks, Reptile, TaskConditioned
from polyskill.nn import Conv4
from polyskill.train import FitConfig, Trainer, load_checkpoint, read_metrics, save_checkpoint

CONFIG = {"steps": 12, "log_every": 1, "val_every": 3, "val_episodes": 4, "lr": 3e-3, "lr_step": 5, "lr_gamma": 0.5}


ALGORITHMS = {
    "protonet": lambda: PrototypicalNetworks(Conv4(hidden=8)),
    "maml": lambda: MAML(
        Conv4(hidden=8, out_features=5), inner_steps=2, learn_lr="per_step", multi_step_loss=True, msl_anneal_steps=10
    ),
    "reptile": lambda: Reptile(Conv4(hidden=8, out_features=5), inner_steps=3, inner_batch=4, eval_steps=3),
    "task_conditioned": lambda: TaskConditioned(
        Conv4(hidden=8, out_features=5),
        input_shape=(1, 28, 28),
        classes=5,
        first_order=True,
        z_dim=8,
        hidden=16,
        slots=4,
    ),
}


def _trainer(classes, out, algo: str = "protonet", **overrides) -> Trainer:
    torch.manual_seed(0)
    algo = ALGORITHMS[algo]()
    train = EpisodeSampler(classes.subset(range(200)), 5, 1, 2, seed=0)
    val = FewShotAccuracy(EpisodeSampler(classes.subset(range(200, 300)), 5, 1, 2, seed=1), CONFIG["val_episodes"])
    return Trainer(algo, train, FitConfig(**{**CONFIG, **overrides}), out=out, val=val, progress=False)


def _without_time(records):
    return [{k: v for k, v in r.items() if k != "time"} for r in records]


@pytest.mark.parametrize("algo", sorted(ALGORITHMS))
def test_resume_after_a_crash_continues_identically(omniglot_val, tmp_path, algo):
    reference = _trainer(omniglot_val, tmp_path / "a", algo)
    reference.fit()

    crashing = _trainer(omniglot_val, tmp_path / "b", algo)
    sample, calls = crashing.train.sample, []

    def crash_on_the_eighth_draw(batch_size=1):
        calls.append(1)
        if len(calls) == 8:
            raise KeyboardInterrupt
        return sample(batch_size)

    crashing.train.sample = crash_on_the_eighth_draw
    with pytest.raises(KeyboardInterrupt):
        crashing.fit()
    assert max(r["step"] for r in read_metrics(tmp_path / "b" / "metrics.jsonl")) == 7  # logged past the checkpoint

    resumed = _trainer(omniglot_val, tmp_path / "b", algo)
    resumed.resume()
    assert resumed.step == 6
    resumed.fit()
    for (name, a), b in zip(reference.algo.state_dict().items(), resumed.algo.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert _without_time(read_metrics(tmp_path / "a" / "metrics.jsonl")) == _without_time(
        read_metrics(tmp_path / "b" / "metrics.jsonl")
    )
    summary_a = json.loads((tmp_path / "a" / "summary.json").read_text())
    summary_b = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert summary_a["validation"] == summary_b["validation"] and summary_a["validation"]["best_step"] is not None


def test_best_weights_are_kept_and_restored(omniglot_val, tmp_path):
    trainer = _trainer(omniglot_val, tmp_path)
    summary = trainer.fit()
    best = load_checkpoint(tmp_path / "best.pt")
    assert summary["validation"]["metric"] == "accuracy" and summary["validation"]["higher_is_better"]
    assert best["step"] == summary["validation"]["best_step"] and best["val_accuracy"] == summary["validation"]["best"]
    for name, value in trainer.algo.state_dict().items():
        assert torch.equal(value, best["model"][name])
    val_steps = [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl") if "val_accuracy" in r]
    assert val_steps == [3, 6, 9, 12]


def test_a_failed_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"w": torch.ones(3)})

    def failing_save(obj, f):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(RunError, match="No space left"):
        save_checkpoint(path, {"w": torch.zeros(3)})
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path)["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_crafted_pickle_is_refused_not_executed(tmp_path):
    marker = tmp_path / "executed"
    path = tmp_path / "last.pt"
    path.write_bytes(pickle.dumps({"model": _Payload(marker)}))
    with pytest.raises(RunError, match="refusing"):
        load_checkpoint(path)
    assert not marker.exists()


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"w": torch.ones(1000)})
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(RunError, match="is damaged"):
        load_checkpoint(path)


def test_divergence_stops_training(omniglot_val, tmp_path):
    trainer = _trainer(omniglot_val, tmp_path, lr=1e-3)
    real = trainer.algo.meta_loss

    def nan_loss(batch):
        loss, metrics = real(batch)
        return loss * float("nan"), {**metrics, "loss": torch.tensor(float("nan"))}

    trainer.algo.meta_loss = nan_loss
    with pytest.raises(RunError, match="diverged at step 1"):
        trainer.fit()


def test_time_budget_stops_early_and_checkpoints(omniglot_val, tmp_path):
    summary = _trainer(omniglot_val, tmp_path, steps=1000, max_minutes=1e-9).fit()
    assert summary["status"] == "stopped at the time budget" and summary["steps"] == 1
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 1
