"""Jacobian aggregators whose state has one row of P values per task, P (the number of shared parameters, or of
representation entries) being known only when the first per-task gradients arrive: DB-MTL, MoCo, ExcessMTL."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from ..base import JacobianAggregator


class LazyStateAggregator(JacobianAggregator):
    """A Jacobian aggregator whose buffers named in `lazy_buffers` start empty and are allocated, as zeros, in the
    shape, dtype and on the device of the first `jac` they are sized for (`sized`).

    A float32 Jacobian keeps float32 state, as large as the Jacobian itself; loading a checkpoint gives each of
    these buffers the saved shape and dtype first (empty when it was saved before the first step), so a run
    resumes with exactly the state it saved.
    """

    lazy_buffers: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        super().__init__()
        for name in self.lazy_buffers:
            self.register_buffer(name, torch.zeros(0))

    def sized(self, name: str, jac: Tensor) -> Tensor:
        """The buffer `name`, allocated like `jac` [T, P] if still empty; a state of another size is an error."""
        buffer: Tensor = getattr(self, name)
        if buffer.numel() == 0:
            buffer = torch.zeros_like(jac)
            setattr(self, name, buffer)
        elif buffer.shape != jac.shape:
            raise ValueError(
                f"{type(self).__name__} keeps state for gradients of shape {tuple(buffer.shape)}, got "
                f"{tuple(jac.shape)}"
            )
        return buffer

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        for name in self.lazy_buffers:
            saved = state_dict.get(prefix + name)
            current: Tensor = getattr(self, name)
            if isinstance(saved, Tensor) and (saved.shape != current.shape or saved.dtype != current.dtype):
                setattr(self, name, torch.zeros(saved.shape, dtype=saved.dtype, device=current.device))
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
