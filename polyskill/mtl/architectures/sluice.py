"""Sluice networks (Ruder, Bingel, Augenstein & Sogaard, 2019, "Latent Multi-task Architecture Learning"):
cross-stitch mixing between *subspaces* of every task's layers (alpha), a learned per-task combination of
the layers' outputs feeding the head (beta), and a penalty pushing each layer's subspaces to be orthogonal.

What is implemented, exactly:
- alpha: after every stage but the last, each tower's output is split into `subspaces` equal chunks along
  the channel (or feature) dimension and one learned [(T*K), (T*K)] matrix mixes the T*K chunks;
- beta: task t's head reads sum_s beta_t[s] * h_{t,s} over the stages s whose (mixed) output has exactly the
  final stage's shape (always the final stage; earlier ones only when they match, e.g. equal-width MLP
  layers; stages of another shape are left out rather than resized); beta is a free linear combination;
- orthogonality: sum over tasks, mixed stages and pairs of subspaces k < l of ||S_k^T S_l||_F^2, where S_k is
  the [batch, features] matrix of subspace k of the stage's output (before mixing) on the current batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ...errors import ConfigError
from .common import EncoderFactory, HeadFactory, TowerModel, check_option, is_int, is_real, mixing_matrix

INITS = ("identity", "mixed")
BETA_INITS = ("last", "uniform")


def orthogonality(subspaces: Tensor) -> Tensor:
    """sum over k < l of ||S_k^T S_l||_F^2 for `subspaces` [..., K, batch, D] (summed over leading dims),
    computed as <S_k S_k^T, S_l S_l^T>_F, which is the same number and needs only [batch, batch] products."""
    grams = (subspaces @ subspaces.transpose(-1, -2)).flatten(-2)
    inner = grams @ grams.transpose(-1, -2)
    k = subspaces.shape[-3]
    upper = torch.ones(k, k, dtype=torch.bool, device=inner.device).triu(1)
    return inner[..., upper].sum()


class Sluice(TowerModel):
    """One `encoder()` and `head(task)` per task, connected by alpha units over subspaces, with beta layer
    combinations (see the module docstring for the exact definitions).

    Options: `subspaces` K (>= 1, default 2; must divide every mixed stage's channel count); `init` of the
    alpha matrices, "identity" (default) or "mixed" (`alpha_self` on the diagonal, the rest spread evenly
    over the other T*K - 1 subspaces); `alpha_self` (in [0, 1], default 0.9); `beta_init` "last" (default:
    weight 1 on the final stage, 0 elsewhere) or "uniform" (1 / #combined stages each); `orthogonality`
    weight (>= 0, default 0: off; the unnormalised term grows with batch size and width); `share_towers`
    (default False: the alpha matrices are shared, towers, heads and betas belong to their tasks; True: the
    towers are shared too, and each task owns its head and betas).

    `penalty()` is `orthogonality` times the term of the latest forward call (None before one, or when the
    weight is 0); forward calls made under torch.func transforms (vmap, grad) do not record it.
    """

    def __init__(
        self,
        tasks: Sequence[str],
        encoder: EncoderFactory,
        head: HeadFactory,
        input_shape: Sequence[int],
        *,
        subspaces: int = 2,
        init: str = "identity",
        alpha_self: float = 0.9,
        beta_init: str = "last",
        orthogonality: float = 0.0,
        share_towers: bool = False,
    ) -> None:
        check_option("sluice", "subspaces", is_int(subspaces, 1), "an integer >= 1", subspaces)
        check_option("sluice", "init", init in INITS, f"one of {INITS}", init)
        check_option("sluice", "alpha_self", is_real(alpha_self, 0.0, 1.0), "a number in [0, 1]", alpha_self)
        check_option("sluice", "beta_init", beta_init in BETA_INITS, f"one of {BETA_INITS}", beta_init)
        check_option("sluice", "orthogonality", is_real(orthogonality, 0.0), "a finite number >= 0", orthogonality)
        check_option("sluice", "share_towers", isinstance(share_towers, bool), "true or false", share_towers)
        super().__init__(tasks, encoder, head, input_shape)
        self.share_towers = share_towers
        for s, shape in enumerate(self.stage_shapes[:-1]):
            if shape[0] % subspaces:
                raise ConfigError(
                    f"sluice: option subspaces={subspaces} must divide the channel count of every "
                    f"stage but the last, and stage {s} has {shape[0]}"
                )
        self.subspaces = subspaces
        self.orthogonality_weight = float(orthogonality)
        self.alphas = nn.ParameterList(
            nn.Parameter(mixing_matrix(len(self.tasks) * subspaces, init, float(alpha_self)))
            for _ in self.stage_shapes[:-1]
        )
        self.combined = [s for s, shape in enumerate(self.stage_shapes) if shape == self.stage_shapes[-1]]
        beta = torch.zeros(len(self.combined))
        if beta_init == "last":
            beta[-1] = 1.0
        else:
            beta.fill_(1.0 / len(self.combined))
        self.betas = nn.ParameterDict({task: nn.Parameter(beta.clone()) for task in self.tasks})
        self._orthogonality: Tensor | None = None

    def _mix(self, stage: int, features: list[Tensor], terms: list[Tensor]) -> list[Tensor]:
        """Mix the T*K subspaces of stage `stage`'s outputs; appends their orthogonality term to `terms`."""
        stacked = torch.stack(features)
        t, b, c = stacked.shape[:3]
        k = self.subspaces
        split = stacked.reshape(t, b, k, c // k, -1)
        if self.orthogonality_weight > 0:
            terms.append(orthogonality(split.permute(0, 2, 1, 3, 4).reshape(t, k, b, -1)))
        alpha = self.alphas[stage].view(t, k, t, k)
        mixed = torch.einsum("tkul,ublcr->tbkcr", alpha, split).reshape(stacked.shape)
        return list(mixed.unbind(0))

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Each task's head on its beta-combination of its tower's (alpha-mixed) stage outputs."""
        terms: list[Tensor] = []
        outputs = self.run_towers(x, lambda s, features: self._mix(s, features, terms))
        if terms:
            term = torch.stack(terms).sum()
            wrapped = torch._C._functorch.is_functorch_wrapped_tensor(term)
            self._orthogonality = None if wrapped else term
        result = {}
        for task, stages in zip(self.tasks, outputs, strict=True):
            beta = self.betas[task]
            z = sum(beta[i] * stages[s] for i, s in enumerate(self.combined))
            result[task] = self.heads[task](z)
        return result

    def __getstate__(self) -> dict:
        """The module's state without the latest orthogonality term (a graph, not part of the model)."""
        state = super().__getstate__()
        state["_orthogonality"] = None
        return state

    def penalty(self) -> Tensor | None:
        """`orthogonality` times the subspace orthogonality term of the latest forward call."""
        if self.orthogonality_weight == 0 or self._orthogonality is None:
            return None
        return self.orthogonality_weight * self._orthogonality

    def shared_parameters(self) -> list[nn.Parameter]:
        """The alpha (subspace mixing) matrices (and the towers, with `share_towers`)."""
        return [*self.alphas, *self.tower_parameters()]

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        """The task's head and beta weights, and its tower unless the towers are shared."""
        return [*super().task_parameters(task), self.betas[task]]
