"""Reinforcement-learning throughput: environment steps per second, and MAML-TRPO meta-iterations on 2D navigation,
polyskill against learn2learn 0.2.0's `examples/rl/maml_trpo.py` on its own `Particles2D-v1`, in one run.

    .venv/bin/python benchmarks/rl_speed.py --l2l-example /path/to/learn2learn/examples/rl --tasks 5

Both sides run the same algorithm at the same sizes: a 100-100 Gaussian policy, `--tasks` tasks a meta-iteration,
20 episodes of 100 steps per task for the inner step and 20 for the outer, one second-order inner step of 0.1, a
linear feature baseline, TRPO with KL 0.01 and 10 conjugate-gradient iterations. A meta-iteration is sampling plus
the TRPO step. polyskill samples every task's episodes in one batched, vectorised environment; learn2learn steps a
gym `AsyncVectorEnv` of `--l2l-workers` processes task by task. learn2learn's time per meta-iteration is read from
its own progress lines (the time between its "Iteration 0" and "Iteration 1" prints: the TRPO step of the first
iteration and the sampling of the second). The peer needs gym 0.24, cherry-rl 0.2.0, six and dotmap in the peers
venv (`bash ../shared/bench/setup_peers.sh`, then `pip install gym==0.24.1 cherry-rl==0.2.0 six dotmap`), and gym's
environment checker switched off (its `Particles2D` returns numpy booleans, which gym 0.24's checker refuses); the
learn2learn source (its `examples/rl` folder) is not part of this repository: pass where it is.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from machine import describe

from polyskill.errors import ConfigError
from polyskill.recipes import load
from polyskill.recipes.kinds.rl import learner, task_family
from polyskill.rl.envs import family
from polyskill.rl.rollouts import Rollouts

PEER_DRIVER = """
import functools, sys, time
import gym
gym.make = functools.partial(gym.make, disable_env_checker=True)
sys.path.insert(0, sys.argv[1])
import maml_trpo
start = time.perf_counter()
real_print = print
def stamped(*args, **kwargs):
    if args and args[0] == "\\nIteration":
        real_print(f"STAMP {args[1]} {time.perf_counter() - start:.3f}", flush=True)
maml_trpo.print = stamped
maml_trpo.main(num_iterations=2, meta_bsz=int(sys.argv[2]), adapt_bsz=20, num_workers=int(sys.argv[3]))
"""


def env_rates(repeats: int) -> dict[str, float]:
    """Environment steps per second with random actions: navigation2d as 2000 sub-environments x 100 steps, the
    cheetahs as 20 sub-environments x 200 steps (what one task's episodes are), median of `repeats`."""
    rates: dict[str, float] = {}
    for name, tasks, episodes in (("navigation2d", 100, 20), ("halfcheetah-vel", 1, 20), ("halfcheetah-dir", 1, 20)):
        try:
            tasks_of = family(name)
        except ConfigError as exc:  # a missing MuJoCo is reported, not fatal
            print(f"{name}: skipped ({exc})")
            continue
        samples = []
        for r in range(repeats):
            env = tasks_of.vector_env(tasks_of.sample_tasks(tasks, np.random.default_rng(r)), episodes)
            env.reset(seed=list(range(tasks * episodes)))
            actions = np.random.default_rng(r).normal(size=(tasks_of.horizon, tasks * episodes, tasks_of.act_dim))
            start = time.perf_counter()
            for a in actions:
                env.step(a)
            samples.append(tasks * episodes * tasks_of.horizon / (time.perf_counter() - start))
            env.close()
        rates[name] = statistics.median(samples)
    return rates


def ours(tasks: int, iterations: int, env: str) -> tuple[float, float]:
    """(median seconds per MAML-TRPO meta-iteration, median share of it spent sampling) after one warm-up."""
    recipe = load(f"{env}-maml", [f"train.meta_batch={tasks}"])
    algo = learner(recipe)
    stream = Rollouts(task_family(recipe), recipe.env.episodes, 0)
    optimizer = torch.optim.Adam(algo.parameters())
    algo.update(stream, optimizer, tasks)
    times, shares = [], []
    for _ in range(iterations):
        sample = algo.sample_iteration
        sampled = 0.0

        def timed(*args, _sample=sample):
            nonlocal sampled
            begin = time.perf_counter()
            out = _sample(*args)
            sampled += time.perf_counter() - begin
            return out

        algo.sample_iteration = timed
        start = time.perf_counter()
        algo.update(stream, optimizer, tasks)
        times.append(time.perf_counter() - start)
        shares.append(sampled / times[-1])
        del algo.sample_iteration
    return statistics.median(times), statistics.median(shares)


def peer(example: Path, python: str, tasks: int, workers: int) -> float | None:
    """learn2learn's seconds per meta-iteration (None, with the reason printed, if it cannot run)."""
    if not (example / "maml_trpo.py").is_file():
        print(f"learn2learn: skipped (no maml_trpo.py in {example})")
        return None
    done = subprocess.run(
        [python, "-u", "-c", PEER_DRIVER, str(example), str(tasks), str(workers)],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        check=False,
    )
    stamps = {}
    for line in done.stdout.splitlines():
        if line.startswith("STAMP "):
            _, iteration, seconds = line.split()
            stamps[int(iteration)] = float(seconds)
    if 0 not in stamps or 1 not in stamps:
        print(f"learn2learn: failed (exit {done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
        return None
    return stamps[1] - stamps[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=20, help="tasks a meta-iteration (the MAML paper's 20)")
    parser.add_argument("--iterations", type=int, default=3, help="timed polyskill meta-iterations")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the environment rates")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cheetah", action="store_true", help="also time MAML-TRPO on halfcheetah-vel")
    parser.add_argument("--l2l-example", type=Path, help="learn2learn's examples/rl folder (maml_trpo.py, policies.py)")
    parser.add_argument("--l2l-workers", type=int, default=2, help="learn2learn's environment processes")
    parser.add_argument("--peers", default="/tmp/peers/bin/python", help="the peer venv's interpreter")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(describe(args.threads))
    for name, rate in env_rates(args.repeats).items():
        print(f"{name}: {rate:,.0f} environment steps/s")
    envs = ["navigation2d", *(["halfcheetah-vel"] if args.cheetah else [])]
    for env in envs:
        seconds, share = ours(args.tasks, args.iterations, env)
        print(
            f"polyskill MAML-TRPO {env}, {args.tasks} tasks x 20 episodes: {seconds:.2f} s a meta-iteration "
            f"({100 * share:.0f}% sampling), {3600 / seconds:,.0f} meta-iterations/hour"
        )
        if env == "navigation2d" and args.l2l_example is not None:
            theirs = peer(args.l2l_example, args.peers, args.tasks, args.l2l_workers)
            if theirs is not None:
                print(
                    f"learn2learn MAML-TRPO Particles2D-v1, {args.tasks} tasks x 20 episodes: {theirs:.2f} s a "
                    f"meta-iteration, {3600 / theirs:,.0f}/hour; polyskill is {theirs / seconds:.1f}x faster"
                )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
