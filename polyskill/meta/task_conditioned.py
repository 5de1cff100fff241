"""The task-conditioned meta-learner: encode each task, read a learning strategy for it from a memory of
skills, and learn the task with that strategy.

1. A permutation-invariant encoder turns the support set into a task embedding z (TaskEncoder), trained
   with the query loss and an auxiliary decoder that predicts held-out support targets from z.
2. z attends over M learned skill slots (SkillMemory); the read-out generates the strategy (StrategyGenerator):
   a FiLM modulation of the shared initialisation and positive inner learning rates per layer (or per
   parameter).
3. The task-specific learner starts from the modulated initialisation and takes `inner_steps` gradient steps
   on the support set with the generated rates, on MAML's inner-loop engine (first or second order). The query
   loss trains the encoder, the memory, the initialisation and the generator end to end.

With `film=False` and `rates='fixed'` the learner is exactly MAML (the test suite checks outputs and
meta-gradients); `encoder=False` (one learned strategy for every task) and `memory=False` (the strategy
generated from z directly) are the other ablations.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..data.episodes import TaskBatch
from ..nn.film import film_sites, modulate
from .base import Steps, task_metrics
from .contract import Contract
from .inner_loop import Params
from .maml import MAML, head_names
from .skill_memory import SkillMemory
from .strategy import RATES, Strategy, StrategyGenerator
from .task_encoder import TaskDecoder, TaskEncoder, reconstruction_loss

ENCODER_INPUTS = ("features", "raw")


def body_of(backbone: nn.Module) -> nn.Module:
    """A copy of `backbone` without its output layer (its `head`, or its last module holding parameters)."""
    body = copy.deepcopy(backbone)
    path = head_names(body)[0].rsplit(".", 1)[0].split(".")
    parent = body
    for part in path[:-1]:
        parent = getattr(parent, part)
    setattr(parent, path[-1], nn.Identity())
    return body


class TaskConditioned(MAML):
    """A MAML whose initialisation and inner rates are generated for each task from its support set.

    `backbone` is the task network (with its output layer: `classes` logits, or regression values when
    `classes` is None); `input_shape` is the shape of one input, for sizing the encoder. The encoder embeds
    inputs with a copy of the backbone's body (`encoder_input='features'`) or takes them flattened (`raw`,
    for low-dimensional inputs). `reconstruction` weighs the decoder's loss on a `holdout` fraction of the
    support set.
    """

    #: the task network normalises each task by itself (as MAML's), but the encoder's copy of the backbone
    #: body embeds a whole meta-batch at once: its batch norm takes global-batch statistics on several processes
    contract = Contract(
        output_layer=True, regression=True, adaptation_steps=True, builder_args=frozenset({"input_shape", "classes"})
    )

    def __init__(
        self,
        backbone: nn.Module,
        input_shape: Sequence[int] | None = None,
        classes: int | None = None,
        inner_lr: float = 0.4,
        inner_steps: Steps = 1,
        eval_steps: Steps | None = None,
        first_order: bool = False,
        transductive: bool = True,
        encoder: bool = True,
        memory: bool = True,
        film: bool = True,
        rates: str = "per_layer",
        slots: int = 8,
        z_dim: int = 32,
        hidden: int = 64,
        key_dim: int = 32,
        value_dim: int = 64,
        encoder_input: str = "features",
        reconstruction: float = 1.0,
        holdout: float = 0.5,
        vectorize: str = "auto",
        query_pass: str = "auto",
        task_chunk: int = 8,
    ) -> None:
        if rates not in RATES:
            raise ValueError(f"rates must be one of {', '.join(RATES)}, got {rates!r}")
        if encoder_input not in ENCODER_INPUTS:
            raise ValueError(f"encoder_input must be one of {', '.join(ENCODER_INPUTS)}, got {encoder_input!r}")
        if reconstruction < 0 or not 0 <= holdout < 1:
            raise ValueError("reconstruction must be >= 0 and holdout in [0, 1)")
        if encoder and input_shape is None:
            raise ValueError("the task encoder needs input_shape, the shape of one input")
        features = (body_of(backbone) if encoder_input == "features" else nn.Flatten()) if encoder else None
        super().__init__(
            backbone,
            inner_lr=inner_lr,
            inner_steps=inner_steps,
            eval_steps=eval_steps,
            first_order=first_order,
            transductive=transductive,
            vectorize=vectorize,
            query_pass=query_pass,
            task_chunk=task_chunk,
        )
        self.classes, self.reconstruction, self.holdout = classes, reconstruction, holdout
        self.encoder: TaskEncoder | None = None
        self.decoder: TaskDecoder | None = None
        if features is not None and input_shape is not None:
            feature_dim = self._feature_dim(features, tuple(input_shape))
            self.encoder = TaskEncoder(features, feature_dim, classes, hidden=hidden, z_dim=z_dim)
            if reconstruction > 0:
                self.decoder = TaskDecoder(feature_dim, z_dim, self.encoder.target_dim, hidden=hidden)
        else:
            self.task_constant = nn.Parameter(torch.randn(z_dim))
        self.memory = SkillMemory(z_dim, slots, key_dim, value_dim) if memory else None
        self.sites = film_sites(self.inner.model) if film else []
        shapes = {n: p.shape for n, p in self.inner.params().items() if n in self.inner.adapt_names}
        self.generator = StrategyGenerator(value_dim if memory else z_dim, self.sites, shapes, inner_lr, rates)

    @staticmethod
    def _feature_dim(features: nn.Module, input_shape: tuple[int, ...]) -> int:
        """How many values `features` gives per input, from a dry run in eval mode (no statistics updated) on
        zeros: real values, or token ids (all padding) for a network that embeds tokens."""
        was_training = features.training
        features.eval()
        try:
            with torch.no_grad():
                try:
                    out = features(torch.zeros(2, *input_shape))
                except (RuntimeError, TypeError):
                    out = features(torch.zeros(2, *input_shape, dtype=torch.long))
        finally:
            features.train(was_training)
        return out.reshape(2, -1).shape[1]

    # -- the strategy -------------------------------------------------------------------------------
    def embed_tasks(self, support_x: Tensor, support_y: Tensor) -> Tensor:
        """z [B, z_dim] of each task (the learned constant of every task without an encoder)."""
        if self.encoder is None:
            return self.task_constant.expand(support_x.shape[0], -1)
        return self.encoder(support_x, support_y)

    def strategy(self, support_x: Tensor, support_y: Tensor) -> tuple[Strategy, Tensor | None]:
        """Each task's learning strategy, and its attention over the skill slots (None without memory)."""
        z = self.embed_tasks(support_x, support_y)
        if self.memory is None:
            return self.generator(z), None
        read, attention = self.memory(z)
        return self.generator(read), attention

    def initial(self, strategy: Strategy) -> tuple[Params, set[str]]:
        """The modulated initialisation of each task, and the names that carry a task axis."""
        params = self.inner.params()
        if not self.sites:
            return params, set()
        names = {n for s in self.sites for n in (s.weight, s.bias)}
        return modulate(params, self.sites, strategy.gamma, strategy.beta), names

    # -- training -----------------------------------------------------------------------------------
    def _trajectory(self, batch: TaskBatch) -> tuple[list[Params], set[str]]:
        strategy, _ = self.strategy(batch.support_x, batch.support_y)
        params, batched = self.initial(strategy)
        trajectory = self.inner.adapt(params, (batch.support_x, batch.support_y), batched=batched, rates=strategy.rates)
        if not trajectory:
            return [params], batched
        return trajectory, batched | set(self.inner.adapt_names)

    def reconstruction_loss(self, batch: TaskBatch) -> Tensor | None:
        """The decoder's loss on held-out support targets (None when there is no decoder)."""
        if self.decoder is None or self.encoder is None:
            return None
        return reconstruction_loss(
            self.encoder, self.decoder, batch.support_x, batch.support_y, self.holdout, batch.task_seeds
        )

    def meta_loss(self, batch: TaskBatch) -> tuple[Tensor, dict[str, Tensor]]:
        loss, outputs = self._weighted_query_loss(batch)
        metrics = task_metrics(loss.detach(), outputs.detach(), batch.query_y)
        recon = self.reconstruction_loss(batch)
        if recon is not None:
            metrics["recon"] = recon.detach()
            loss = loss + self.reconstruction * recon
        return loss, metrics

    def meta_backward(self, batch: TaskBatch) -> dict[str, Tensor]:
        metrics = super().meta_backward(batch)
        recon = self.reconstruction_loss(batch)
        if recon is not None:
            (self.reconstruction * recon).backward()
            metrics["recon"] = recon.detach()
        return metrics

    # -- a new task ---------------------------------------------------------------------------------
    def adapted_params(self, support_x: Tensor, support_y: Tensor, steps: int) -> tuple[Params, set[str]]:
        with torch.no_grad():
            strategy, _ = self.strategy(support_x, support_y)
            params, batched = self.initial(strategy)
        return self.inner.adapted((support_x, support_y), steps, params=params, batched=batched, rates=strategy.rates)
