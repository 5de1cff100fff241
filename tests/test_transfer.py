"""Meta-transfer (model.init) and class-batch pretraining runs: weights found by name and shape, runs rebuilt."""

from __future__ import annotations

import pytest
import torch
import yaml

from polyskill.cli import main
from polyskill.errors import RunError
from polyskill.meta import MAML, PrototypicalNetworks
from polyskill.nn import Conv4
from polyskill.recipes import load
from polyskill.recipes.runner import evaluate_run, train_run
from polyskill.train.checkpoint import save_checkpoint
from polyskill.train.transfer import load_backbone


def _save(tmp_path, module, name="source.pt"):
    path = tmp_path / name
    save_checkpoint(path, {"model": module.state_dict()})
    return path


def test_backbone_weights_are_matched_by_name_suffix_and_shape(tmp_path):
    torch.manual_seed(0)
    source = MAML(Conv4(hidden=8, out_features=5))  # keys inner.model.features..., inner.model.head...
    target = PrototypicalNetworks(Conv4(hidden=8))
    loaded = load_backbone(target.backbone, _save(tmp_path, source))
    assert "features.0.0.weight" in loaded and not any(k.startswith("head") for k in loaded)
    own = {k: v for k, v in source.backbone.state_dict().items() if not k.startswith("head")}
    assert set(loaded) == set(own)  # MAML keeps no batch-norm running statistics: those stay fresh
    for name, tensor in own.items():
        assert torch.equal(target.backbone.state_dict()[name], tensor)
    back = MAML(Conv4(hidden=8, out_features=3))  # a head of another size stays fresh
    fresh = back.backbone.head.weight.clone()
    loaded = load_backbone(back.backbone, _save(tmp_path, target, "proto.pt"))
    assert "head.weight" not in loaded and torch.equal(back.backbone.head.weight, fresh)


def test_unrelated_or_missing_sources_are_refused(tmp_path):
    with pytest.raises(RunError, match="shares no weights"):
        load_backbone(Conv4(hidden=8), _save(tmp_path, Conv4(hidden=16)))
    with pytest.raises(RunError, match="no run directory or checkpoint"):
        load_backbone(Conv4(hidden=8), tmp_path / "missing")
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(RunError, match="has no checkpoint"):
        load_backbone(Conv4(hidden=8), tmp_path / "empty_run")


def _accuracy(summary: dict) -> float:
    """The accuracy of the last test protocol a summary records."""
    return summary["test"][-1]["accuracy"]


def test_baseline_pretrains_on_class_batches_and_transfers_to_protonet(tmp_path, data_root, capsys):
    """A short Baseline pretraining learns features, and a ProtoNet started from them (before any meta-training)
    beats one started from a fresh backbone on the same test episodes."""
    base = tmp_path / "baseline"
    recipe = load(
        "omniglot-baseline",
        [
            "data.train=vinyals/val",
            "data.val=null",
            "model.hidden=16",
            "train.lr=0.003",
            "train.steps=200",
            "algo.batch_size=64",
            "algo.finetune_steps=20",
        ],
    )
    train_run(recipe, base, progress=False, evaluate=False, echo=lambda _: None)
    config = yaml.safe_load((base / "config.yaml").read_text())
    assert config["algo"]["num_classes"] == 688  # recorded, so evaluation rebuilds the same classifier
    protocol = {"ways": [5], "shots": [1], "episodes": 100, "echo": lambda _: None}
    pretrained = _accuracy(evaluate_run(base, **protocol))
    assert pretrained > 0.45, pretrained  # chance is 0.2; observed 0.616 on 2026-12-02
    started = {}
    for init in (base, None):
        out = tmp_path / f"proto-{'transfer' if init else 'fresh'}"
        transfer = load(
            "omniglot-protonet-transfer",
            [
                f"model.init={init}" if init else "model.init=null",
                "model.hidden=16",
                "data.val=null",
                "data.train=vinyals/val",
                "train.steps=1",
                "train.lr=1e-6",
            ],
        )
        messages: list[str] = []
        train_run(transfer, out, progress=False, evaluate=False, echo=messages.append)
        assert any("backbone started from" in m for m in messages) == (init is not None)
        started[init is not None] = _accuracy(evaluate_run(out, **protocol))
    assert started[True] > started[False] + 0.1, started  # observed 0.636 against 0.405 on 2026-12-02
    code = main(
        [
            "train",
            "omniglot-protonet-transfer",
            "--set",
            f"model.init={tmp_path / 'nowhere'}",
            "--set",
            "model.hidden=8",
            "--out",
            str(tmp_path / "bad"),
            "--no-eval",
            "--quiet",
        ]
    )
    assert code == 2 and "no run directory or checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "bad" / "config.yaml").exists()
