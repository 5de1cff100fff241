"""What a few-shot learner declares about itself, read in one place by whoever builds, trains or tests it."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .inner_loop import TaskBatchNorm

BATCHES = ("episodes", "classes")
BUILDER_ARGS = frozenset({"input_shape", "classes", "num_classes"})


@dataclass(frozen=True)
class Contract:
    """What a few-shot learner needs from whoever builds it and what it offers to evaluation."""

    #: its backbone ends in a linear head of `way` outputs (1 for regression)
    output_layer: bool = False
    #: can learn real-valued (regression) tasks; implies output_layer
    regression: bool = False
    #: "episodes", or "classes": trained on ClassBatchSampler batches of `self.batch_size` examples
    batches: str = "episodes"
    #: predict(batch, steps=k) / adapt(support, steps=k) take a number of inner steps
    adaptation_steps: bool = False
    #: batch norm sees one task at a time (else a distributed run syncs it over the global batch)
    per_task_batch_norm: bool = False
    #: the backbone must be a FeatureMapBackbone
    feature_maps: bool = False
    #: constructor arguments the builder supplies: a subset of BUILDER_ARGS
    builder_args: frozenset[str] = frozenset()
    #: its prediction for one query depends on the task's other queries (TIM, PT-MAP, LaplacianShot, ...), so what
    #: evaluation measures is transductive accuracy
    transductive: bool = False

    def __post_init__(self) -> None:
        if self.batches not in BATCHES:
            raise ValueError(f"Contract.batches must be one of {', '.join(BATCHES)}, got {self.batches!r}")
        if self.regression and not self.output_layer:
            raise ValueError("a Contract with regression=True needs output_layer=True (one output per task)")
        unknown = sorted(set(self.builder_args) - BUILDER_ARGS)
        if unknown:
            raise ValueError(f"Contract.builder_args {unknown} are not among {sorted(BUILDER_ARGS)}")


def transduces_by_batch_norm(learner: nn.Module) -> bool:
    """Whether `learner`'s only transduction is its batch norm's statistics of the query set (a gradient-based
    learner with `transductive` on), so its queries can run in chunks with those statistics gathered first
    (`transduce_in_chunks`)."""
    contract = getattr(type(learner), "contract", None)
    if isinstance(contract, Contract) and contract.transductive:
        return False
    return getattr(learner, "transductive", False) is True and any(
        isinstance(m, TaskBatchNorm) for m in learner.modules()
    )


def is_transductive(learner: nn.Module) -> bool:
    """Whether `learner`'s prediction for one query can depend on the task's other queries: its contract says so,
    or it is a gradient-based learner (MAML, Reptile, iMAML, the task-conditioned one) whose `transductive` option
    is on and whose network has batch norm, which then normalises the query set with its own statistics."""
    contract = getattr(type(learner), "contract", None)
    return (isinstance(contract, Contract) and contract.transductive) or transduces_by_batch_norm(learner)
