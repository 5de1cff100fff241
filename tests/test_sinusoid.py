"""Sinusoid regression tasks, and MAML learning them: adaptation must clearly beat the unadapted model."""

from __future__ import annotations

import math

import pytest
import torch

from polyskill.data.sinusoid import SinusoidTasks
from polyskill.eval.regression import regression
from polyskill.meta import MAML
from polyskill.nn import MLP
from polyskill.train import fit


def test_tasks_follow_the_protocol():
    tasks = SinusoidTasks(shot=10, query=7, seed=3)
    batch = tasks.sample(200)
    assert batch.support_x.shape == (200, 10, 1) and batch.query_y.shape == (200, 7, 1)
    x = torch.cat([batch.support_x, batch.query_x], 1)
    y = torch.cat([batch.support_y, batch.query_y], 1)
    assert float(x.min()) >= -5 and float(x.max()) <= 5
    assert float(y.abs().max()) <= 5
    # every task is one sinusoid: recover A and phase from two points and check the rest
    a_sin, a_cos = torch.linalg.lstsq(torch.cat([torch.sin(x[:5]), -torch.cos(x[:5])], -1), y[:5]).solution.unbind(1)
    amplitude = torch.sqrt(a_sin**2 + a_cos**2).squeeze(-1)
    phase = torch.atan2(a_cos, a_sin).squeeze(-1)
    assert float(amplitude.min()) >= 0.1 - 1e-4 and float(amplitude.max()) <= 5 + 1e-4
    assert float(phase.min()) >= -1e-4 and float(phase.max()) <= math.pi + 1e-4


def test_stream_and_fixed_tasks_are_reproducible():
    a, b = SinusoidTasks(5, 5, seed=1), SinusoidTasks(5, 5, seed=1)
    state = a.state_dict()
    first = a.sample(4)
    torch.testing.assert_close(first.query_y, b.sample(4).query_y)
    a.load_state_dict(state)
    torch.testing.assert_close(a.sample(4).support_x, first.support_x)
    fixed = torch.cat([t.query_y for t in a.fixed(7, batch_size=3)])
    torch.testing.assert_close(fixed, torch.cat([a.episode(i).query_y for i in range(7)]))
    with pytest.raises(Exception, match="shot >= 1"):
        SinusoidTasks(0, 5)


def test_maml_learns_to_adapt_to_sinusoids():
    torch.manual_seed(0)
    algo = MAML(MLP([1, 40, 40, 1]), inner_lr=0.01, inner_steps=1, eval_steps=10)
    fit(algo, SinusoidTasks(10, 10, seed=0), steps=400, meta_batch=25, lr=2e-3, progress=False, log_every=500)
    test = SinusoidTasks(10, 50, seed=99)
    adapted = regression(algo, test, episodes=200, steps=10)
    unadapted = regression(algo, test, episodes=200, steps=0)
    assert algo.eval_steps == 10  # the steps are the protocol's, the learner is left as it was
    # a sinusoid's variance is A^2/2 (about 4.2 on average): the unadapted model cannot do much better
    assert unadapted.mse > 2.5  # observed 3.171 on 2026-12-03
    assert adapted.mse < 0.5 * unadapted.mse, (adapted, unadapted)  # observed 0.928 on 2026-12-03
