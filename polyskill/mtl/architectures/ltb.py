"""Learning to Branch (Guo, Lee & Ulbricht, 2020, "Learning to Branch for Multi-Task Learning"): a tree over
the encoder's stages whose branching is learned. Layer l (one per stage) holds nodes, each a fresh copy of
stage l; the nodes of the first layer read the input (the root), the last layer holds one leaf per task, read by
the task's head, and every other child node c of layer l picks its parent among the nodes of layer l-1 by a
Gumbel-softmax sample over its own branching logits theta_c:

    d_c = softmax((theta_c + g_c) / tau),   g_c ~ Gumbel(0, 1) i.i.d.,   input_c = sum_p d_c[p] * h_{l-1, p}

What is implemented where the paper leaves room:
- layer sizes: `nodes` per layer below the leaves (default: the number of tasks, as in LibMTL's version);
- samples: soft (the Gumbel-softmax relaxation) by default; `hard: true` takes the straight-through one-hot
  sample (forward one-hot, gradient of the soft sample), as LibMTL does;
- temperature: tau(s) = temperature / sqrt(1 + decay * s) at training step s (LibMTL anneals by epoch with the
  same inverse square root); decay 0 keeps it fixed;
- evaluation mode drops the noise: d_c = softmax(theta_c / tau(s)), or the one-hot argmax with `hard`, which is
  the tree the search has found (the paper retrains that tree; here it is simply the model evaluated);
- the step count s: a buffer advanced by `step_done`, which the learner calls once per training step after the
  optimiser step. Advancing in `forward` would not do: the per-task gradient strategies run the model several
  times per step or only under torch.func transforms, which cannot mutate a buffer, and every forward call of
  one step (a lookahead, a bilevel weighting's meta step, FAMO's losses after the step) must see the same tree;
- the noise g of step s is a pure function of (seed, s), drawn by NumPy's PCG64 (so torch.func transforms see
  constants, not random operations): with the seed a buffer drawn at construction from torch's generator (which
  the trainer seeds), a resumed run draws exactly the noise it would have.

Which parameters are shared: every node below the leaves and the branching logits of those nodes (a soft or
resampled choice lets every task reach them); each task owns its leaf, the leaf's branching logits and its head.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import numpy as np
import torch
from torch import Tensor, nn

from ...errors import ConfigError
from ..base import MultiTaskModel
from .common import (
    EncoderFactory,
    HeadFactory,
    build_experts,
    build_heads,
    check_input_shape,
    check_option,
    check_tasks,
    is_int,
    is_real,
    parameters_of,
    stage_shapes,
)


def mix_parents(weights: Tensor, parents: list[Tensor]) -> list[Tensor]:
    """Each child's input sum_p weights[c, p] * parents[p], for `weights` [children, parents]."""
    mixed = torch.einsum("cp,pb...->cb...", weights.to(parents[0].dtype), torch.stack(parents))
    return list(mixed.unbind(0))


class LTB(MultiTaskModel):
    """A tree of stage copies whose child nodes choose their parents by Gumbel-softmax samples, with
    `head(task)` on task t's leaf (see the module docstring for every choice made).

    Options: `nodes` per layer below the leaves (>= 1; default None: the number of tasks), `temperature`
    (> 0, default 1.0), `decay` of the temperature per step (>= 0, default 0.01), `hard` (default False). The
    encoder needs at least two stages (one to branch from, one for the leaves).
    """

    step: Tensor
    seed: Tensor

    def __init__(
        self,
        tasks: Sequence[str],
        encoder: EncoderFactory,
        head: HeadFactory,
        input_shape: Sequence[int],
        *,
        nodes: int | None = None,
        temperature: float = 1.0,
        decay: float = 0.01,
        hard: bool = False,
    ) -> None:
        ok = nodes is None or is_int(nodes, 1)
        check_option("ltb", "nodes", ok, "an integer >= 1 or null (the number of tasks)", nodes)
        check_option("ltb", "temperature", is_real(temperature, 0.0) and temperature > 0, "a number > 0", temperature)
        check_option("ltb", "decay", is_real(decay, 0.0), "a finite number >= 0", decay)
        check_option("ltb", "hard", isinstance(hard, bool), "true or false", hard)
        super().__init__()
        self.tasks = check_tasks(tasks)
        shape = check_input_shape(input_shape)
        width = len(self.tasks) if nodes is None else nodes
        encoders = build_experts(encoder, max(width, len(self.tasks)))
        shapes = stage_shapes(cast(nn.Sequential, encoders[0]), shape)
        depth = len(shapes)
        if depth < 2:
            raise ConfigError(f"ltb: the encoder has {depth} stage; branching needs at least 2")
        copies = [cast(nn.Sequential, e) for e in encoders]
        self.nodes = nn.ModuleList(nn.ModuleList(copies[i][layer] for i in range(width)) for layer in range(depth - 1))
        self.leaves = nn.ModuleDict({task: copies[t][depth - 1] for t, task in enumerate(self.tasks)})
        self.branch_logits = nn.ParameterList(nn.Parameter(torch.zeros(width, width)) for _ in range(depth - 2))
        self.leaf_logits = nn.ParameterDict({task: nn.Parameter(torch.zeros(width)) for task in self.tasks})
        self.heads = build_heads(self.tasks, head, shapes[-1])
        self.temperature0, self.decay, self.hard = float(temperature), float(decay), hard
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.register_buffer("seed", torch.randint(0, 2**62, (), dtype=torch.long))

    def temperature(self) -> float:
        """tau(s) = temperature / sqrt(1 + decay * s) at the current step s."""
        return self.temperature0 / math.sqrt(1.0 + self.decay * int(self.step))

    def gumbel_noise(self, step: int) -> list[Tensor]:
        """Step `step`'s Gumbel(0, 1) noise (float64), one [children, parents] block per layer of choices: the
        layers between the first and the leaves, then the leaves [tasks, nodes]."""
        shapes = [tuple(logits.shape) for logits in self.logits()]
        rng = np.random.Generator(np.random.PCG64([int(self.seed), step]))
        flat = torch.from_numpy(rng.gumbel(size=sum(math.prod(s) for s in shapes)))
        return [block.reshape(s) for block, s in zip(flat.split([math.prod(s) for s in shapes]), shapes, strict=True)]

    def logits(self) -> list[Tensor]:
        """The branching logits [children, parents] of every layer of choices, leaves [tasks, nodes] last."""
        return [*self.branch_logits, torch.stack([self.leaf_logits[task] for task in self.tasks])]

    def branch_weights(self) -> list[Tensor]:
        """Every layer's mixing matrix d [children, parents] for this forward call: a Gumbel-softmax sample of
        the current step in training mode, the noiseless relaxation (or argmax, with `hard`) in evaluation mode."""
        tau = self.temperature()
        logits = self.logits()
        if self.training:
            noise = self.gumbel_noise(int(self.step))
            logits = [theta + g.to(theta.dtype).to(theta.device) for theta, g in zip(logits, noise, strict=True)]
        weights = []
        for theta in logits:
            soft = torch.softmax(theta / tau, dim=-1)
            if self.hard:
                one_hot = nn.functional.one_hot(soft.argmax(-1), soft.shape[-1]).to(soft.dtype)
                soft = one_hot - soft.detach() + soft
            weights.append(soft)
        return weights

    def branching(self) -> list[list[int]]:
        """The tree found so far: each layer's argmax parent of every child (leaves last, in task order)."""
        return [theta.argmax(-1).tolist() for theta in self.logits()]

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Each task's head on its leaf, every child reading its sampled mixture of the layer below."""
        weights = self.branch_weights()
        features = [node(x) for node in cast(nn.ModuleList, self.nodes[0])]
        for layer in range(1, len(self.nodes)):
            inputs = mix_parents(weights[layer - 1], features)
            features = [node(f) for node, f in zip(cast(nn.ModuleList, self.nodes[layer]), inputs, strict=True)]
        leaf_inputs = mix_parents(weights[-1], features)
        return {task: self.heads[task](self.leaves[task](f)) for task, f in zip(self.tasks, leaf_inputs, strict=True)}

    def step_done(self) -> None:
        """One training step done: the next forward calls draw the next step's noise at its temperature."""
        self.step += 1

    def shared_parameters(self) -> list[nn.Parameter]:
        """Every node below the leaves and their branching logits."""
        return [*parameters_of(self.nodes), *self.branch_logits]

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        """The task's leaf, its branching logits and its head."""
        return [*self.leaves[task].parameters(), self.leaf_logits[task], *self.heads[task].parameters()]
