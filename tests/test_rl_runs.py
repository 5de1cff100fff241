"""Reinforcement-learning runs: the recipes, MAML-RL's outer gradient against finite differences, the multi-task
update against the summed per-task gradients, a learning test on 2D navigation, SIGKILL and resume, evaluation,
`polyskill rollout`, and bad input."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from test_runs import _assert_same_run, _kill_mid_run_and_resume

from polyskill.cli import main
from polyskill.recipes import RECIPE_DIR, available, load
from polyskill.recipes.kinds.rl import learner, task_family
from polyskill.rl.episodes import Episodes
from polyskill.rl.evaluation import AdaptationReturns
from polyskill.rl.rollouts import Rollouts

pytestmark = pytest.mark.heavy  # see conftest: handed to a worker first

RL_RECIPES = [name for name in available() if yaml.safe_load((RECIPE_DIR / f"{name}.yaml").read_text())["kind"] == "rl"]
NEEDS_MUJOCO = {name for name in RL_RECIPES if name.startswith("halfcheetah")}


def _tiny(folder: Path, base: str = "navigation2d-maml", name: str = "tiny-rl", **sections) -> Path:
    """A shipped rl recipe made small: a horizon of 20 steps, 4 tasks of 5 episodes, a 16-16 policy."""
    recipe = yaml.safe_load((RECIPE_DIR / f"{base}.yaml").read_text())
    recipe["env"].update(horizon=20, episodes=5)
    recipe["policy"]["widths"] = [16, 16]
    recipe["train"].update(steps=12, log_every=3, val_every=4)
    if "meta_batch" in recipe["train"]:
        recipe["train"]["meta_batch"] = 4
    recipe["eval"].update(tasks=4, steps=1)
    for section, values in sections.items():
        recipe.setdefault(section, {}).update(values)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def test_every_rl_recipe_loads_and_builds_its_learner():
    assert {"navigation2d-maml", "halfcheetah-vel-maml", "halfcheetah-dir-maml", "navigation2d-multitask"} <= set(
        RL_RECIPES
    )
    for name in RL_RECIPES:
        if name in NEEDS_MUJOCO:
            pytest.importorskip("mujoco")
        recipe = load(name)
        algo = learner(recipe)
        family = task_family(recipe)
        extra = len(recipe.env.tasks or [])
        assert algo.policy.obs_dim == family.obs_dim + extra and algo.policy.act_dim == family.act_dim


def _double(episodes: Episodes) -> Episodes:
    return Episodes(*(x.double() for x in (episodes.obs, episodes.actions, episodes.rewards, episodes.mask)))


@pytest.mark.parametrize("first_order", [False, True])
def test_the_maml_outer_gradient_matches_finite_differences(first_order):
    """The gradient of the outer surrogate (through the inner policy-gradient step, or with it held constant) along a
    random direction, against a central difference of the same objective written out: adapted = theta - lr * g(theta)
    (g recomputed at the displaced theta for second order, frozen at theta for first order)."""
    recipe = load("navigation2d-maml", ["policy.widths=[6]", "env.horizon=10", "env.episodes=3"])
    algo = learner(recipe)
    it = algo.sample_iteration(Rollouts(task_family(recipe), 3, 0), 2)
    algo.double()
    it.train = [_double(e) for e in it.train]
    it.valid = _double(it.valid)
    it.train_advantages = [a.double() for a in it.train_advantages]
    it.advantages, it.old_log_probs = it.advantages.double(), it.old_log_probs.double()
    algo.first_order = first_order
    params = list(algo.policy.parameters())
    grads = torch.autograd.grad(algo.outer_loss(it), params)
    direction = [torch.randn_like(p) for p in params]
    analytic = sum(float((g * d).sum()) for g, d in zip(grads, direction, strict=True))

    frozen = algo.inner_step(algo.shared(2), it.train[0], it.train_advantages[0], create_graph=False)
    frozen_steps = {k: (algo.shared(2)[k] - v).detach() for k, v in frozen.items()}

    def objective(eps: float) -> float:
        with torch.no_grad():
            for p, d in zip(params, direction, strict=True):
                p.add_(eps * d)
        if first_order:
            adapted = {k: v - frozen_steps[k] for k, v in algo.shared(2).items()}
            log_probs = algo.log_prob(it.valid, adapted)
            ratio = (log_probs - it.old_log_probs).exp()
            value = float(
                torch.stack(
                    [-(ratio[i] * it.advantages[i] * it.valid.mask[i]).sum() / it.valid.mask[i].sum() for i in range(2)]
                )
                .mean()
                .detach()
            )
        else:
            value = float(algo.outer_loss(it).detach())
        with torch.no_grad():
            for p, d in zip(params, direction, strict=True):
                p.sub_(eps * d)
        return value

    numeric = (objective(1e-6) - objective(-1e-6)) / 2e-6
    assert analytic == pytest.approx(numeric, rel=1e-4, abs=1e-8)


def test_second_order_and_first_order_outer_gradients_differ():
    recipe = load("navigation2d-maml", ["policy.widths=[6]", "env.horizon=10", "env.episodes=3"])
    algo = learner(recipe)
    it = algo.sample_iteration(Rollouts(task_family(recipe), 3, 0), 2)
    second = torch.autograd.grad(algo.outer_loss(it), list(algo.policy.parameters()))
    algo.first_order = True
    first = torch.autograd.grad(algo.outer_loss(it), list(algo.policy.parameters()))
    assert not all(torch.allclose(a, b) for a, b in zip(first, second, strict=True))


def test_the_multitask_update_with_equal_weights_is_the_summed_per_task_gradient():
    """One epoch at SGD step 1 moves the parameters by minus the sum of the per-task clipped-surrogate gradients
    (ratio 1 on the first epoch), computed here with one backward pass of the summed losses."""
    recipe = load("navigation2d-multitask", ["algo.epochs=1", "env.horizon=10", "env.episodes=4", "policy.widths=[8]"])
    algo = learner(recipe)
    twin = copy.deepcopy(algo)
    stream, twin_stream = (Rollouts(task_family(recipe), 4, 7) for _ in range(2))
    episodes = twin_stream.run(twin.tasks, twin.actor())
    advantages = twin.advantages(episodes)
    log_probs = twin.log_prob(episodes)
    total = sum(
        -(advantages[i] * episodes.mask[i]).mul((log_probs[i] - log_probs[i].detach()).exp()).sum()
        / episodes.mask[i].sum()
        for i in range(len(twin.tasks))
    )
    expected = torch.autograd.grad(total, list(twin.policy.parameters()))
    before = [p.detach().clone() for p in algo.policy.parameters()]
    algo.update(stream, torch.optim.SGD(algo.parameters(), lr=1.0), 0)
    for b, p, g in zip(before, algo.policy.parameters(), expected, strict=True):
        torch.testing.assert_close(p.detach(), b - g, rtol=1e-4, atol=1e-6)


def test_maml_on_2d_navigation_learns_to_adapt():
    """A real, short MAML-TRPO run (5 meta-iterations of 10 tasks x 10 episodes, a 32-32 policy) and the MAML
    paper's measure on 10 new goals: the trained policy after one policy-gradient step beats itself before the
    step, and beats a freshly initialised policy after the same step, by clear margins."""
    recipe = load("navigation2d-maml", ["train.meta_batch=10", "env.episodes=10", "policy.widths=[32, 32]"])
    algo = learner(recipe)
    stream = Rollouts(task_family(recipe), 10, 0)
    for _ in range(5):
        algo.update(stream, torch.optim.Adam(algo.parameters()), 10)
    curves = {
        init: AdaptationReturns(
            task_family(recipe), "navigation2d", 10, 10, 1, 123, init, None, lambda: learner(recipe, 5)
        ).evaluate(algo)
        for init in ("trained", "random")
    }
    trained, random = curves["trained"].curve, curves["random"].curve
    print(f"returns before/after one step: trained {trained}, random {random}")
    # observed: trained [-42.9, -31.8], random [-71.8, -63.8]
    assert trained[1] > trained[0] + 5
    assert trained[1] > random[1] + 20


def test_an_rl_run_killed_with_sigkill_resumes_to_the_same_parameters_and_metrics(tmp_path):
    recipe = _tiny(tmp_path, eval={"validate": True, "val_tasks": 2}, policy={"widths": [8]})
    straight = tmp_path / "straight"
    assert main(["train", str(recipe), "--out", str(straight), "--quiet", "--no-eval"]) == 0
    run = tmp_path / "run"
    _kill_mid_run_and_resume([recipe], run, 12, kill_after=5)
    _assert_same_run(straight, run, 12)


def test_an_rl_run_trains_evaluates_and_rolls_out_from_the_command_line(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", str(_tiny(tmp_path)), "--out", str(run), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "trained policy, return after 0..1 adaptation steps" in out and "random policy" in out
    summary = json.loads((run / "summary.json").read_text())
    results = {r["init"]: r for r in summary["test"]}
    assert set(results) == {"trained", "random"} and len(results["trained"]["curve"]) == 2
    assert main(["eval", str(run), "--episodes", "3", "--seed", "4"]) == 0
    assert "3 episodes a step" in capsys.readouterr().out
    video = tmp_path / "nav.gif"
    assert main(["rollout", str(run), "--task", "goal=0.3,-0.2", "--steps", "2", "--video", str(video)]) == 0
    assert "after 2 adaptation steps: mean return" in capsys.readouterr().out and video.stat().st_size > 0
    assert main(["report", str(run), "--out", str(tmp_path / "report.html")]) == 0
    html = (tmp_path / "report.html").read_text()
    assert 'alt="return of run against adaptation steps"' in html


@pytest.mark.parametrize(
    "args, message",
    [
        (["--set", "env.name=mars"], "env.name must be one of navigation2d"),
        (["--set", "env.horizon=0"], "horizon must be >= 1"),
        (["--set", "algo.outer=adam"], "algo.outer must be one of trpo, ppo"),
        (["--set", "algo.max_kl=-1"], "algo.max_kl"),
        (["--set", 'env.tasks=["goal=0.1,0.1", "goal=0.2,0.2"]'], "env.tasks is for multi-task learners"),
        (["--set", "train.device=cuda"], "train.device"),
        (["--nproc", "2"], "one process"),
        (["--set", "env.episodes=100000"], "env.episodes must be <= 10000"),
        (["--set", "env.horizon=100000000000"], "env.horizon must be <= 100000"),
        (["--set", "train.meta_batch=10000000"], "one rollout would hold"),
        (["--set", "policy.init_std=1e300"], "policy.init_std"),
        (["--set", "algo.inner_lr=1e30"], "the policy diverged"),
        (["--set", "train.lr=0.01"], "TRPO's outer step uses no optimiser"),
    ],
)
def test_bad_rl_settings_are_one_line_and_exit_2(tmp_path, capsys, args, message):
    code = main(["train", str(_tiny(tmp_path)), "--out", str(tmp_path / "r"), "--quiet", *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_a_sweep_of_an_rl_recipe_without_validation_says_how_to_turn_it_on(tmp_path, capsys):
    pytest.importorskip("optuna")
    code = main(["sweep", str(_tiny(tmp_path)), "--param", "algo.max_kl=loguniform(1e-3,1e-1)", "--trials", "1"])
    assert code == 2 and "--set eval.validate=true" in capsys.readouterr().err


def test_multitask_recipes_check_their_task_list(tmp_path, capsys):
    bad = [
        (["--set", 'env.tasks=["goal=0.9,0.9", "goal=0.1,0.1"]'], "env.tasks[0]"),
        (["--set", 'env.tasks=["goal=0.1,0.1"]'], "at least 2 tasks"),
        (["--set", 'env.tasks=["goal=0.1,0.1", "goal=0.1,0.1"]'], "lists a task twice"),
        (["--set", "env.tasks=[{goal_x: 0.1}, {goal_x: 0.2, goal_y: 0}]"], "env.tasks[0]"),
        (["--set", "env.tasks=null"], "give env.tasks"),
        (["--set", "mtl.weighting=uw"], "learns parameters of its own"),
        (["--set", "train.meta_batch=4"], "samples every task of env.tasks"),
    ]
    recipe = _tiny(tmp_path, "navigation2d-multitask", "tiny-mt")
    for args, message in bad:
        code = main(["train", str(recipe), "--out", str(tmp_path / "r"), "--quiet", *args])
        err = capsys.readouterr().err
        assert code == 2 and message in err, (args, err)


@pytest.fixture(scope="module")
def nav_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("nav")
    run = folder / "run"
    assert main(["train", str(_tiny(folder)), "--out", str(run), "--quiet", "--no-eval"]) == 0
    return run


@pytest.mark.parametrize(
    "args, message",
    [
        (["--task", "velocity=1.0"], "goal"),
        (["--task", "goal=2,2"], "goal"),
        (["--task", "goal=nan,0"], "goal"),
        (["--task", "goal=0.1,0.1", "--video", "clip.avi"], ".gif or .mp4"),
        (["--task", "goal=0.1,0.1", "--steps", "-1"], "--steps"),
        (["--task", "goal=0.1,0.1", "--episodes", "0"], "--episodes"),
    ],
)
def test_bad_rollouts_are_one_line_and_exit_2(nav_run, capsys, args, message):
    code = main(["rollout", str(nav_run), *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_an_evaluation_or_rollout_too_large_to_hold_is_refused(nav_run, capsys):
    assert main(["eval", str(nav_run), "--episodes", "100000000"]) == 2
    assert "one rollout would hold" in capsys.readouterr().err
    assert main(["rollout", str(nav_run), "--task", "goal=0.1,0.1", "--episodes", "5000", "--steps", "0"]) == 0
    capsys.readouterr()


def test_rollout_refuses_a_run_of_another_kind(tmp_path, capsys):
    from conftest import tiny_recipe

    run = tmp_path / "fewshot"
    assert main(["train", str(tiny_recipe(tmp_path)), "--out", str(run), "--quiet", "--no-eval"]) == 0
    capsys.readouterr()
    assert main(["rollout", str(run), "--task", "goal=0.1,0.1"]) == 2
    assert "takes rl runs" in capsys.readouterr().err


def test_a_halfcheetah_recipe_without_mujoco_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    for name in [m for m in sys.modules if m == "mujoco" or m.startswith(("mujoco.", "gymnasium.envs.mujoco"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "mujoco", None)
    code = main(["train", "halfcheetah-vel-maml", "--out", str(tmp_path / "r"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "pip install 'polyskill[rl]'" in err, err


def test_rollouts_are_reproducible_and_their_state_resumes_them():
    recipe = load("navigation2d-maml", ["env.horizon=15"])
    algo = learner(recipe)
    family = task_family(recipe)
    a, b = Rollouts(family, 3, 11), Rollouts(family, 3, 11)
    first = a.run(a.sample_tasks(2), algo.actor())
    state = copy.deepcopy(a.state_dict())
    second = a.run(a.sample_tasks(2), algo.actor())
    assert torch.equal(first.obs, b.run(b.sample_tasks(2), algo.actor()).obs)
    c = Rollouts(family, 3, 99)
    c.load_state_dict(state)
    again = c.run(c.sample_tasks(2), algo.actor())
    for field in ("obs", "actions", "rewards", "mask"):
        assert torch.equal(getattr(second, field), getattr(again, field))
    assert np.isfinite(second.returns().numpy()).all()
