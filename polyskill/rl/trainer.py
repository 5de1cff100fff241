"""The reinforcement-learning trainer: the episodic trainer's loop, checkpoints, validation and resume, with one
meta-iteration of the learner (sampling and its own update rule) as the training step."""

from __future__ import annotations

from torch import Tensor

from ..train.episodic import Trainer


class RLTrainer(Trainer):
    """`train` is a `Rollouts` stream (its generators are checkpointed with the run); each step is the learner's
    `update`, which leaves the parameters updated and no gradients behind, so the loop's optimiser step is a no-op
    for TRPO and follows the learner's own steps for the optimiser-based rules."""

    splits_meta_batch = False
    syncs_batch_norm = False
    averages_own_gradients = True

    def train_step(self) -> dict[str, Tensor]:
        metrics = self.algo.update(self.train, self.optimizer, self.config.meta_batch)
        self.optimizer.zero_grad(set_to_none=True)
        return metrics
