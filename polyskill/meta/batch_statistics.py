"""Transductive batch norm over more inputs than fit in memory at once: each batch-norm layer's statistics of the
whole input set, gathered exactly chunk by chunk, one layer at a time.

MAML-style learners normalise a task's query set with the statistics of that set (`TaskBatchNorm`), so a
prediction depends on every query. Running all of them in one forward pass holds every activation of every
query at once: 20 GB for 100 000 Omniglot images in Conv4. `transduce_in_chunks` gives the same outputs with at
most `chunk` inputs in flight: a pass over the chunks, stopped at the first layer whose statistics are not yet
known, sums that layer's inputs; once every layer is fixed, a last pass normalises with them.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor


class _Collected(Exception):
    """Raised by the layer whose statistics a pass gathers: the rest of the network is not needed."""


class StreamedStatistics:
    """The batch-norm statistics of a set of inputs, by the order in which the network calls its batch-norm
    layers; one pass gathers the sums of the first layer not yet known (shifted by the first chunk's mean, in
    float64, so that the variance does not cancel)."""

    def __init__(self) -> None:
        self.fixed: list[tuple[Tensor, Tensor]] = []
        self.calls = 0
        self.count = 0
        self.shift: Tensor | None = None
        self.sums: tuple[Tensor, Tensor] | None = None

    def begin_forward(self) -> None:
        self.calls = 0

    def normalise(self, x: Tensor, weight: Tensor | None, bias: Tensor | None, eps: float) -> Tensor:
        """Batch norm of x (channels on dim 1) with the statistics of the whole set, or, for the first layer not
        yet known, add x to its sums and stop the pass."""
        index, self.calls = self.calls, self.calls + 1
        if index < len(self.fixed):
            mean, var = self.fixed[index]
            dtype = weight.dtype if weight is not None else x.dtype
            return F.batch_norm(x, mean.to(dtype), var.to(dtype), weight, bias, training=False, eps=eps)
        dims = [0, *range(2, x.dim())]
        values = x.detach().double()
        if self.shift is None:
            self.shift = values.mean(dims)
        shape = [1, -1] + [1] * (x.dim() - 2)
        centred = values - self.shift.view(shape)
        sums = (centred.sum(dims), (centred * centred).sum(dims))
        self.sums = sums if self.sums is None else (self.sums[0] + sums[0], self.sums[1] + sums[1])
        self.count += values.numel() // values.shape[1]
        raise _Collected

    def fix_layer(self) -> bool:
        """Fix the layer whose sums the last pass gathered; False when that pass met no layer left to gather."""
        if self.sums is None or self.shift is None:
            return False
        first, second = self.sums[0] / self.count, self.sums[1] / self.count
        self.fixed.append((self.shift + first, (second - first * first).clamp_min(0.0)))
        self.count, self.shift, self.sums = 0, None, None
        return True


_STREAMED: contextvars.ContextVar[StreamedStatistics | None] = contextvars.ContextVar(
    "polyskill_streamed_batch_norm", default=None
)


def streamed_statistics() -> StreamedStatistics | None:
    """The statistics that batch norm must use now (inside `transduce_in_chunks`), else None."""
    return _STREAMED.get()


@contextlib.contextmanager
def _using(statistics: StreamedStatistics) -> Iterator[None]:
    token = _STREAMED.set(statistics)
    try:
        yield
    finally:
        _STREAMED.reset(token)


def transduce_in_chunks(run: Callable[[Tensor], Tensor], x: Tensor, chunk: int) -> Tensor:
    """run(x) for a function whose batch norm normalises x with x's own statistics, computed with at most `chunk`
    inputs in flight: one partial pass per batch-norm layer, then one full pass. Equal to run(x) up to rounding."""
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    if len(x) <= chunk:
        return run(x)
    statistics = StreamedStatistics()
    with _using(statistics):
        while True:
            for part in x.split(chunk):
                statistics.begin_forward()
                try:
                    run(part)
                except _Collected:
                    continue
                break  # the pass met no layer left to gather
            if not statistics.fix_layer():
                break
        outputs = []
        for part in x.split(chunk):
            statistics.begin_forward()
            outputs.append(run(part))
    return torch.cat(outputs)


__all__ = ["StreamedStatistics", "streamed_statistics", "transduce_in_chunks"]
