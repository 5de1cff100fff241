"""Meta-transfer: start a learner's backbone from the weights of another run (a pretrained Baseline, say)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ..errors import RunError
from .checkpoint import load_checkpoint


def checkpoint_of(source: str | os.PathLike) -> Path:
    """A checkpoint file, or a run directory's best (else last) checkpoint."""
    path = Path(source)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                return path / name
        raise RunError(f"model.init: run {path} has no checkpoint (best.pt or last.pt)")
    if not path.is_file():
        raise RunError(f"model.init: no run directory or checkpoint at {path}")
    return path


def load_backbone(backbone: nn.Module, source: str | os.PathLike) -> list[str]:
    """Copy into `backbone` every tensor of the source checkpoint's model whose name ends with one of the
    backbone's own names (`features.0.0.weight` matches `backbone.features.0.0.weight` or
    `inner.model.features.0.0.weight`) and whose shape agrees; return the names loaded.

    Tensors the source lacks (a new classifier head) keep their fresh initialisation; a source sharing no
    tensor with the backbone, or matching one name twice, is refused.
    """
    path = checkpoint_of(source)
    state = load_checkpoint(path).get("model")
    if not isinstance(state, dict):
        raise RunError(f"model.init: {path} holds no model weights")
    own = backbone.state_dict()
    loaded = {}
    for name, tensor in own.items():
        matches = [
            k
            for k, v in state.items()
            if (k == name or k.endswith("." + name)) and isinstance(v, torch.Tensor) and v.shape == tensor.shape
        ]
        if len(matches) > 1:
            raise RunError(f"model.init: {path} has several tensors that could be {name}: {', '.join(matches)}")
        if matches:
            loaded[name] = state[matches[0]]
    if not any(k.endswith(("weight", "bias")) for k in loaded):
        raise RunError(f"model.init: {path} shares no weights with this backbone (different architecture?)")
    backbone.load_state_dict(loaded, strict=False)
    return sorted(loaded)
