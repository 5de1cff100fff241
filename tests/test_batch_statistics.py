"""Transductive batch norm in chunks (`transduce_in_chunks`): equal to one pass over every input, whatever the chunk
size, with far-from-zero activations, under the engine's vmap setting, and with no batch norm at all."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from polyskill.meta import MAML
from polyskill.meta.batch_statistics import transduce_in_chunks
from polyskill.meta.inner_loop import task_batch_norm
from polyskill.nn import Conv4


def _network() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(2, 5, 3, padding=1),
        nn.BatchNorm2d(5),
        nn.ReLU(),
        nn.Conv2d(5, 4, 3),
        nn.BatchNorm2d(4),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 6),
        nn.BatchNorm1d(6),
    ).double()
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.weight.uniform_(0.5, 2.0)
                module.bias.uniform_(-1.0, 1.0)
    return task_batch_norm(net)


@pytest.mark.parametrize("chunk", [1, 3, 7, 40])
def test_chunked_statistics_equal_one_pass_over_every_input(chunk):
    """Inputs with a mean of 1000 and a spread of 1: a variance from plain sums of squares would cancel."""
    net = _network()
    x = 1000.0 + torch.randn(23, 2, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole = net(x)
        got = transduce_in_chunks(net, x, chunk)
    assert got.shape == whole.shape
    assert torch.allclose(got, whole, atol=1e-9, rtol=0)
    if 1 < chunk < len(x):
        with torch.no_grad():
            in_chunks = torch.cat([net(part) for part in x.split(chunk)])
        assert (in_chunks - whole).abs().max() > 1e-2  # so the test would see chunks normalised on their own


def test_chunks_of_a_maml_task_under_vmap_equal_the_whole_query_set():
    """A learner set to vmap over tasks runs its query chunks by the loop (statistics live outside vmap) and gives
    the transductive outputs of one pass."""
    torch.manual_seed(0)
    algo = MAML(Conv4(hidden=4, out_features=3), inner_steps=1, vectorize="vmap").double()
    xs, ys = torch.rand(6, 1, 28, 28, dtype=torch.float64), torch.arange(3).repeat_interleave(2)
    xq = torch.rand(11, 1, 28, 28, dtype=torch.float64)
    params, batched = algo.adapted_params(xs[None], ys[None], 2)

    def run(x: torch.Tensor) -> torch.Tensor:
        return algo.inner.query_outputs(params, batched, xs[None], x[None], transductive=True)[0]

    with torch.no_grad():
        assert torch.allclose(transduce_in_chunks(run, xq, 4), run(xq), atol=1e-10, rtol=0)


def test_a_network_without_batch_norm_runs_chunk_by_chunk_and_a_bad_chunk_is_refused():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh())
    x = torch.randn(10, 3)
    calls: list[int] = []
    net.register_forward_pre_hook(lambda _, args: calls.append(len(args[0])))
    with torch.no_grad():
        assert torch.allclose(transduce_in_chunks(net, x, 4), net(x))
    assert calls == [4, 4, 4, 2, 10]  # a first chunk met no batch norm, then every chunk; then net(x)
    with pytest.raises(ValueError, match="chunk"):
        transduce_in_chunks(net, x, 0)
