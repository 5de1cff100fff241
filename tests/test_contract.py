"""The declared learner contract and the backbone protocols: every registered learner declares what it needs and
honours it (adaptation steps given per call, never by mutating the learner), and the protocols match the backbones."""

from __future__ import annotations

from dataclasses import FrozenInstanceError

import pytest
import torch
from torch import nn

from polyskill.data.episodes import TaskBatch
from polyskill.meta import ALGORITHMS, Contract, FewShotAlgorithm
from polyskill.meta.base import MAX_ADAPTATION_STEPS
from polyskill.nn import MLP, Backbone, Conv4, FeatureMapBackbone


def image_batch(tasks: int = 2, way: int = 3, shot: int = 2, query: int = 2, side: int = 16) -> TaskBatch:
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(way)
    return TaskBatch(
        torch.randn(tasks, way * shot, 1, side, side, generator=g),
        labels.repeat_interleave(shot).repeat(tasks, 1),
        torch.randn(tasks, way * query, 1, side, side, generator=g),
        labels.repeat_interleave(query).repeat(tasks, 1),
        way,
    )


def build(name: str, way: int = 3, **options) -> FewShotAlgorithm:
    """A small learner built from nothing but its contract, as a recipe builder would."""
    cls = ALGORITHMS[name]
    contract = cls.contract
    supplied = {"input_shape": (1, 16, 16), "classes": way, "num_classes": 10}
    options = {**{arg: supplied[arg] for arg in contract.builder_args}, **options}
    backbone = Conv4(
        hidden=4,
        image_size=16,
        out_features=way if contract.output_layer else None,
        pools=2 if contract.feature_maps else None,
    )
    return cls(backbone, **options)


def test_every_learner_declares_a_contract_of_its_own_class():
    for name, cls in ALGORITHMS.items():
        assert isinstance(cls.contract, Contract), name
        assert "contract" in vars(cls) or cls.contract == Contract(), name  # inherited only when it is the default
        for attribute in ("needs_head", "batch_source", "per_task_batch_norm"):
            assert not hasattr(cls, attribute), (name, attribute)  # undeclared capabilities are gone
        if cls.contract.batches == "classes":
            assert isinstance(build(name).batch_size, int), name  # read by the builder's ClassBatchSampler


def test_contract_refuses_inconsistent_declarations():
    with pytest.raises(ValueError, match="output_layer"):
        Contract(regression=True)
    with pytest.raises(ValueError, match="batches"):
        Contract(batches="pairs")
    with pytest.raises(ValueError, match="builder_args"):
        Contract(builder_args=frozenset({"device"}))
    with pytest.raises(FrozenInstanceError):  # a class's declaration cannot be changed at run time
        ALGORITHMS["protonet"].contract.output_layer = True  # type: ignore[misc]


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_adaptation_steps_are_an_argument_exactly_where_the_contract_says(name):
    torch.manual_seed(0)
    algo = build(name).eval()
    batch = image_batch()
    if not algo.contract.adaptation_steps:
        for call in (lambda: algo.predict(batch, steps=2), lambda: algo.adapt(batch.support(0), steps=2)):
            with pytest.raises(ValueError, match="adaptation steps"):
                call()
        return
    default = algo.eval_steps
    reference = build(name, eval_steps=2).eval()  # the same learner, constructed to take 2 steps
    reference.load_state_dict(algo.state_dict())
    with torch.no_grad():
        given = algo.predict(batch, steps=2)
        alone = algo.adapt(batch.support(1), steps=2)(batch.query_x[1])
        expected = reference.predict(batch)
    torch.testing.assert_close(given, expected, rtol=0, atol=0)
    torch.testing.assert_close(alone, given[1], rtol=1e-5, atol=1e-5)
    assert algo.eval_steps == default  # nothing was changed on the learner
    with torch.no_grad():
        unadapted = algo.predict(batch, steps=0)  # zero steps: the meta-learned network itself
        assert not torch.allclose(unadapted, given)
    for bad in (-1, MAX_ADAPTATION_STEPS + 1):
        with pytest.raises(ValueError, match=r"integer in \[0, 100,000\]"):
            algo.predict(batch, steps=bad)


def test_backbones_satisfy_the_protocols_they_claim():
    conv, mlp = Conv4(hidden=4, image_size=16, pools=2), MLP([3, 5, 2])
    assert isinstance(conv, FeatureMapBackbone) and isinstance(conv, Backbone)
    assert conv.embedding_dim == 4 * 4 * 4 and conv.feature_shape == (4, 4, 4)
    assert isinstance(mlp, Backbone) and not isinstance(mlp, FeatureMapBackbone)
    assert mlp.embedding_dim == 2 and mlp(torch.zeros(7, 3)).shape == (7, mlp.embedding_dim)
    assert not isinstance(nn.Flatten(), Backbone)  # no embedding size


@pytest.mark.parametrize("name", [n for n in sorted(ALGORITHMS) if ALGORITHMS[n].contract.feature_maps])
def test_learners_that_need_feature_maps_refuse_other_backbones(name):
    cls = ALGORITHMS[name]
    with pytest.raises(ValueError, match="FeatureMapBackbone"):
        cls(MLP([4, 3]))
