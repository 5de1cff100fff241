"""Multi-task training-step time: polyskill's `multitask_backward` against LibMTL and torchjd, in one run.

    POLYSKILL_DATA=../shared/data .venv/bin/python benchmarks/mtl_speed.py --repeats 3

One step = forward, the per-task gradients as each library gets them, the aggregation and an Adam step (batches
are pre-built; no data loading), for EW, PCGrad, MGDA, CAGrad, IMTL-G and Nash-MTL, in two cases:

* `multifashion-2`: batches of 256 MultiFashion images [1, 28, 28] (polyskill.data.multifashion, built from the
  Fashion-MNIST training images) with two 10-class labels; hard parameter sharing with the LeNet encoder
  (conv5x5(10)-maxpool2-ReLU-conv5x5(20)-maxpool2-ReLU-flatten-linear(320, 50)-ReLU) and one head
  linear(50, 50)-ReLU-linear(50, 10) per task; cross-entropy.
* `school-139`: School, 139 tasks; encoder linear(28, 128)-ReLU-linear(128, 128)-ReLU, heads linear(128, 1); one
  batch = 8 training students of every school, laid out school by school (1112 rows); each task's loss is the MSE
  of its head on its own school's rows. polyskill uses its partitioned path (`partitioned=True`); the peers run all 139
  heads on the shared representation of the whole batch and take each task's loss on its rows (their natural
  formulation).

polyskill: `HardSharing` + `multitask_backward` with the registered aggregators. LibMTL 1.1.5: `HPS` combined with
its weighting class the way its `Trainer` builds the model, `rep_grad=False`, losses gathered as its trainer does
and `model.backward(losses, **weight_args)`; its `zero_grad_share_params` is patched to `zero_grad(set_to_none=
False)` (it predates torch 2); it has no Nash-MTL and its CAGrad hard-codes 3 tasks (both n/a); its "IMTL" is the
hybrid of the paper (learned loss scales + IMTL-G). torchjd 0.18: `autojac.mtl_backward(losses, features=rep)` then
`autojac.jac_to_grad(encoder parameters, aggregator)` with `Sum` (EW), `PCGrad`, `MGDA`, `CAGrad(c=0.5)`, `IMTLG`,
`NashMTL(n_tasks=T)`. Every implementation gets the same initial weights (one plain-torch reference model drawn
from seed 0, copied parameter by parameter) and the same batches (saved once to a temporary file). Each library
runs in its own long-lived process (the peers in the peer venv, ../shared/bench/setup_peers.sh) with the same number
of torch threads; every (case, method) is measured for the three libraries back to back, in an order that rotates
between repeats, so that all see the same machine load; a repeat's time is its median step (robust to load
spikes) and the table gives the median over repeats.
`--check` also compares the first-step shared-parameter gradient of polyskill with the peers' for EW and MGDA.
`--profile CASE:METHOD` only prints torch.profiler's top operators for polyskill's step.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import describe, machine

LIBS = ("polyskill", "libmtl", "torchjd")
METHODS = ("ew", "pcgrad", "mgda", "cagrad", "imtl", "nash", "mgda_ub")
LABELS = {
    "ew": "EW",
    "pcgrad": "PCGrad",
    "mgda": "MGDA",
    "cagrad": "CAGrad",
    "imtl": "IMTL-G",
    "nash": "Nash-MTL",
    "mgda_ub": "MGDA-UB",
}
REP_GRAD = {"mgda_ub": "mgda"}  # methods run on gradients of the shared representation -> their aggregator
CASES = ("multifashion-2", "school-139")
ROWS_PER_SCHOOL = 8
CHECKED = ("ew", "mgda")
# What the peers lack, and why (shown instead of a time).
UNAVAILABLE = {
    ("libmtl", "nash"): "LibMTL 1.1.5 has no Nash-MTL",
    ("libmtl", "cagrad"): "LibMTL's CAGrad hard-codes 3 tasks",
    ("torchjd", "mgda_ub"): "torchjd aggregates parameter gradients only",
}
LIBMTL_ARGS = {"mgda": {"mgda_gn": "none"}, "mgda_ub": {"mgda_gn": "none"}, "cagrad": {"calpha": 0.5, "rescale": 1}}


# --- the model every library trains -------------------------------------------------------------------------


def reference_model(torch, case: str, tasks: int):
    """(encoder, [head per task]) in plain torch: the layers every implementation gets, in this order."""
    nn = torch.nn
    if case == "multifashion-2":
        encoder = nn.Sequential(
            nn.Conv2d(1, 10, 5),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.Conv2d(10, 20, 5),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(320, 50),
            nn.ReLU(),
        )
        heads = [nn.Sequential(nn.Linear(50, 50), nn.ReLU(), nn.Linear(50, 10)) for _ in range(tasks)]
    else:
        encoder = nn.Sequential(nn.Linear(28, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU())
        heads = [nn.Linear(128, 1) for _ in range(tasks)]
    return encoder, heads


def copy_into(torch, params, tensors, what: str) -> None:
    params = list(params)
    if [tuple(p.shape) for p in params] != [tuple(t.shape) for t in tensors]:
        raise SystemExit(
            f"{what}: parameter shapes {[tuple(p.shape) for p in params]} differ from the reference "
            f"{[tuple(t.shape) for t in tensors]}"
        )
    with torch.no_grad():
        for p, t in zip(params, tensors, strict=True):
            p.copy_(t)


def task_names(case: str, tasks: int) -> list[str]:
    return ["left", "right"] if case == "multifashion-2" else [f"school{i:03d}" for i in range(1, tasks + 1)]


def peer_loss(torch, case: str, tasks: int, rows: int):
    """loss(outputs [T tensors over the whole batch], y) -> list of T scalar losses, the peers' formulation."""
    F = torch.nn.functional
    if case == "multifashion-2":
        return lambda outs, y: [F.cross_entropy(o, y[:, i]) for i, o in enumerate(outs)]
    return lambda outs, y: [
        F.mse_loss(o[i * rows : (i + 1) * rows].squeeze(-1), y[i * rows : (i + 1) * rows]) for i, o in enumerate(outs)
    ]


# --- one library's step -------------------------------------------------------------------------------------


def polyskill_step(torch, case, method, init, tasks, rows):
    """(parameters, step(x, y), shared parameters) of polyskill's HardSharing + multitask_backward."""
    from polyskill.mtl import aggregator_class, architecture_class
    from polyskill.mtl.step import multitask_backward

    names = tuple(task_names(case, tasks))
    if case == "multifashion-2":
        from polyskill.nn.lenet import LeNetEncoder, lenet_head

        encoder, head, shape, classes = LeNetEncoder, (lambda task: lenet_head(10)), (1, 28, 28), (10,) * tasks
    else:
        from polyskill.nn.mlp import MLP

        nn = torch.nn
        encoder = lambda: nn.Sequential(*MLP([28, 128, 128]), nn.ReLU())  # noqa: E731
        head, shape, classes = (lambda task: nn.Linear(128, 1)), (28,), (0,) * tasks
    model = architecture_class("hps")(names, encoder, head, shape)
    copy_into(torch, model.shared_parameters(), init["shared"], "polyskill encoder")
    for name, tensors in zip(names, init["heads"], strict=True):
        copy_into(torch, model.task_parameters(name), tensors, f"polyskill head {name}")
    aggregator = aggregator_class(REP_GRAD.get(method, method))()
    partitioned = case == "school-139"

    def step(x, y):
        multitask_backward(model, aggregator, x, y, classes, partitioned=partitioned, rep_grad=method in REP_GRAD)

    return list(model.parameters()) + list(aggregator.parameters()), step, model.shared_parameters()


def libmtl_step(torch, case, method, init, tasks, rows):
    """LibMTL: the model its Trainer builds (architecture x weighting), its loss gathering and model.backward."""
    import LibMTL.weighting as weighting
    from LibMTL.architecture import HPS
    from LibMTL.architecture.abstract_arch import AbsArchitecture

    AbsArchitecture.zero_grad_share_params = lambda self: self.encoder.zero_grad(set_to_none=False)
    cls = {
        "ew": weighting.EW,
        "pcgrad": weighting.PCGrad,
        "mgda": weighting.MGDA,
        "imtl": weighting.IMTL,
        "mgda_ub": weighting.MGDA,
    }[method]
    names = task_names(case, tasks)
    encoder, heads = reference_model(torch, case, tasks)
    copy_into(torch, encoder.parameters(), init["shared"], "LibMTL encoder")
    for h, tensors in zip(heads, init["heads"], strict=True):
        copy_into(torch, h.parameters(), tensors, "LibMTL head")

    class MTLmodel(HPS, cls):  # as LibMTL.Trainer._prepare_model
        def __init__(self):
            super().__init__(
                task_name=names,
                encoder_class=lambda: encoder,
                decoders=torch.nn.ModuleDict(dict(zip(names, heads, strict=True))),
                rep_grad=method in REP_GRAD,
                multi_input=False,
                device=torch.device("cpu"),
            )
            self.init_param()

    model = MTLmodel()
    loss = peer_loss(torch, case, tasks, rows)
    kwargs = LIBMTL_ARGS.get(method, {})

    def step(x, y):
        preds = model(x)
        losses = torch.zeros(len(names))  # as Trainer._compute_loss
        for i, value in enumerate(loss([preds[t] for t in names], y)):
            losses[i] = value
        model.backward(losses, **kwargs)

    return list(model.parameters()), step, list(encoder.parameters())


def torchjd_step(torch, case, method, init, tasks, rows):
    """torchjd: autojac.mtl_backward on the shared representation, then jac_to_grad with the aggregator."""
    from torchjd import aggregation as agg
    from torchjd.autojac import jac_to_grad, mtl_backward

    aggregator = {
        "ew": lambda: agg.Sum(),
        "pcgrad": lambda: agg.PCGrad(),
        "mgda": lambda: agg.MGDA(),
        "cagrad": lambda: agg.CAGrad(c=0.5),
        "imtl": lambda: agg.IMTLG(),
        "nash": lambda: agg.NashMTL(n_tasks=tasks),
    }[method]()
    encoder, heads = reference_model(torch, case, tasks)
    copy_into(torch, encoder.parameters(), init["shared"], "torchjd encoder")
    for h, tensors in zip(heads, init["heads"], strict=True):
        copy_into(torch, h.parameters(), tensors, "torchjd head")
    shared = list(encoder.parameters())
    head_params = [list(h.parameters()) for h in heads]
    loss = peer_loss(torch, case, tasks, rows)

    def step(x, y):
        rep = encoder(x)
        mtl_backward(loss([h(rep) for h in heads], y), features=rep, tasks_params=head_params, shared_params=shared)
        jac_to_grad(shared, aggregator)

    return shared + [p for ps in head_params for p in ps], step, shared


BUILDERS = {"polyskill": polyskill_step, "libmtl": libmtl_step, "torchjd": torchjd_step}


# --- worker: one library's process, timing (case, method) pairs on request ----------------------------------------


def training_step(torch, params, step, bundle: dict):
    """`one(i)`: a full training step (zero grads, the library's step on batch i, Adam) over pre-built batches."""
    optimizer = torch.optim.Adam(params, lr=1e-3)
    batches = list(zip(bundle["x"], bundle["y"], strict=True))

    def one(i):
        optimizer.zero_grad(set_to_none=True)
        step(*batches[i % len(batches)])
        optimizer.step()

    return one


def measure(
    torch,
    lib: str,
    case: str,
    method: str,
    bundle: dict,
    steps: int,
    warmup: int,
    max_seconds: float,
    check: str | None,
) -> dict:
    """Time `steps` steps of one method (after `warmup`), or with `check` save its first-step shared gradient."""
    if (lib, method) in UNAVAILABLE:
        return {"status": "n/a", "why": UNAVAILABLE[(lib, method)]}
    try:
        params, step, shared = BUILDERS[lib](torch, case, method, bundle["init"], bundle["tasks"], bundle["rows"])
    except (ImportError, AttributeError, KeyError) as exc:
        return {"status": "missing", "why": f"{type(exc).__name__}: {exc}"}
    one = training_step(torch, params, step, bundle)

    try:
        if check:
            for p in params:
                p.grad = None
            step(bundle["x"][0], bundle["y"][0])
            torch.save(
                torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in shared])
                .detach()
                .clone(),
                check,
            )
            return {"status": "ok"}
        begin = time.perf_counter()
        for i in range(max(1, warmup)):  # at least one warm-up step, more while under the time cap
            one(i)
            if time.perf_counter() - begin > max_seconds:
                break
        start, times = time.perf_counter(), []
        while len(times) < steps:  # at least one timed step; stop early past the cap (very slow steps)
            t = time.perf_counter()
            one(warmup + len(times))
            times.append(1000 * (time.perf_counter() - t))
            if time.perf_counter() - start > max_seconds:
                break
        # the median step resists the load spikes of a shared machine; the mean is kept for the record
        return {
            "status": "ok",
            "ms_per_step": statistics.median(times),
            "mean_ms": statistics.fmean(times),
            "steps": len(times),
        }
    except Exception as exc:  # a peer failing on one method (e.g. no convergence) is a result, not a crash
        return {"status": "error", "why": f"{type(exc).__name__}: {str(exc)[:200]}"}


def serve(lib: str, data: str, threads: int) -> None:
    """Answer one JSON request per stdin line ({case, method, steps, warmup, max_seconds, check}) with one JSON line."""
    import warnings

    import torch

    warnings.filterwarnings("ignore")
    torch.set_num_threads(threads)
    bundles = torch.load(data, weights_only=True)
    answers, sys.stdout = sys.stdout, sys.stderr  # whatever the libraries print stays off the answer channel
    print(json.dumps({"ready": lib}), file=answers, flush=True)
    for line in sys.stdin:
        r = json.loads(line)
        out = measure(
            torch,
            lib,
            r["case"],
            r["method"],
            bundles[r["case"]],
            r["steps"],
            r["warmup"],
            r["max_seconds"],
            r.get("check"),
        )
        print(json.dumps(out), file=answers, flush=True)


# --- the main process: data, initial weights, alternation, table ------------------------------------------------


def multifashion_batches(torch, count: int, batch: int):
    """`count` batches of MultiFashion training composites, or random tensors of the same shape as a fallback."""
    generator = torch.Generator().manual_seed(0)
    try:
        from polyskill.data.multifashion import multifashion

        data = multifashion("train")
        index = torch.randperm(len(data), generator=generator)[: count * batch].view(count, batch)
        return (
            [data.x[i].contiguous() for i in index],
            [data.y[i].contiguous() for i in index],
            "MultiFashion train composites (polyskill.data.multifashion)",
        )
    except ImportError:
        xs = [torch.rand(batch, 1, 28, 28, generator=generator) for _ in range(count)]
        ys = [torch.randint(0, 10, (batch, 2), generator=generator) for _ in range(count)]
        return xs, ys, "RANDOM tensors of the MultiFashion shape (polyskill.data.multifashion missing)"


def school_batches(torch, count: int):
    """`count` batches of 8 training students per school, school by school, and the number of schools."""
    generator = torch.Generator().manual_seed(0)
    try:
        from polyskill.data.school import school

        data = school("train")
        source = "School training split (polyskill.data.school)"
    except ImportError:
        data = None
    if data is None:
        import numpy as np
        import scipy.io

        from polyskill.data.root import data_root

        mat = scipy.io.loadmat(data_root() / "school" / "school.mat")
        xs = [torch.from_numpy(np.asarray(x, dtype=np.float32)) for x in mat["X"][0]]
        ys = [torch.from_numpy(np.asarray(y, dtype=np.float32).reshape(-1)) for y in mat["Y"][0]]
        task = torch.cat([torch.full((len(y),), i) for i, y in enumerate(ys)])
        x_all, y_all = torch.cat(xs), torch.cat(ys)
        x_all = (x_all - x_all.mean(0)) / x_all.std(0).clamp_min(1e-6)
        source = "school.mat read with scipy (all students, standardised)"
    else:
        x_all, y_all, task = data.x, data.y, data.task
    schools = int(task.max()) + 1
    members = [torch.nonzero(task == s).squeeze(1) for s in range(schools)]
    xs, ys = [], []
    for _ in range(count):
        rows = torch.cat(
            [
                m[torch.randint(len(m), (ROWS_PER_SCHOOL,), generator=generator)]
                if len(m) < ROWS_PER_SCHOOL
                else m[torch.randperm(len(m), generator=generator)[:ROWS_PER_SCHOOL]]
                for m in members
            ]
        )
        xs.append(x_all[rows].contiguous())
        ys.append(y_all[rows].contiguous())
    return xs, ys, schools, source


def prepare(path: Path, count: int) -> dict[str, str]:
    """Batches and initial weights of both cases, saved to `path`; returns where each case's data came from."""
    import torch

    bundle, sources = {}, {}
    for case in CASES:
        if case == "multifashion-2":
            xs, ys, sources[case] = multifashion_batches(torch, count, 256)
            tasks, rows = 2, 256
        else:
            xs, ys, tasks, sources[case] = school_batches(torch, count)
            rows = ROWS_PER_SCHOOL
        torch.manual_seed(0)
        encoder, heads = reference_model(torch, case, tasks)
        init = {
            "shared": [p.detach().clone() for p in encoder.parameters()],
            "heads": [[p.detach().clone() for p in h.parameters()] for h in heads],
        }
        bundle[case] = {"x": xs, "y": ys, "tasks": tasks, "rows": rows, "init": init}
    torch.save(bundle, path)
    return sources


class Worker:
    """One library's `--serve` process (the peers in the peer interpreter), asked for one measurement at a time."""

    def __init__(self, lib: str, python: str, data: Path, threads: int, env: dict, tmp: Path) -> None:
        self.lib, self.log = lib, tmp / f"{lib}.stderr"
        with open(self.log, "w") as err:
            self.process = subprocess.Popen(
                [python, __file__, "--serve", lib, str(data), "--threads", str(threads)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env=env,
            )
        self._read()

    def _read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            sys.exit(f"the {self.lib} worker died:\n{self.log.read_text()[-3000:]}")
        return json.loads(line)

    def ask(self, **request) -> dict:
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return self._read()

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


def correctness(workers: dict, tmp: Path) -> list[str]:
    """Max differences of the first-step shared gradient, polyskill against each peer, for EW and MGDA."""
    import torch

    grads: dict = {}
    for lib, w in workers.items():
        for method in CHECKED:
            out = tmp / f"grad-{lib}-{method}.pt"
            answer = w.ask(case="multifashion-2", method=method, steps=0, warmup=0, max_seconds=0, check=str(out))
            if answer["status"] == "ok":
                grads.setdefault(lib, {})[method] = torch.load(out, weights_only=True)
    lines = []
    for method in CHECKED:
        ref = grads.get("polyskill", {}).get(method)
        for peer in LIBS[1:]:
            other = grads.get(peer, {}).get(method)
            if ref is None or other is None:
                lines.append(f"  {LABELS[method]:8s} polyskill vs {peer:8s}: n/a")
                continue
            diff = (ref - other).abs().max().item()
            scale = max(ref.abs().max().item(), 1e-12)
            cos = torch.nn.functional.cosine_similarity(ref, other, dim=0).item()
            lines.append(
                f"  {LABELS[method]:8s} polyskill vs {peer:8s}: max |diff| {diff:.2e} "
                f"(relative {diff / scale:.1e}), cosine {cos:.6f}"
            )
    return lines


def profile(args, data: Path) -> None:
    """torch.profiler's top operators (self CPU time) over a few polyskill steps of one case and method."""
    import torch
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    case, method = args.profile.split(":")
    torch.set_num_threads(args.threads)
    bundle = torch.load(data, weights_only=True)[case]
    params, step, _ = polyskill_step(torch, case, method, bundle["init"], bundle["tasks"], bundle["rows"])
    one = training_step(torch, params, step, bundle)

    for i in range(args.warmup):
        one(i)
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(5):
            one(i)
    print(f"torch.profiler, polyskill {case} {LABELS[method]}, 5 steps:")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))


def table(results, cases, methods, args) -> tuple[list[str], dict]:
    def median(lib, case, method):
        runs = results.get((lib, case, method), [])
        if runs and all(r["status"] == "ok" for r in runs):
            return statistics.median(r["ms_per_step"] for r in runs)
        return None

    def why(lib, case, method):
        runs = results.get((lib, case, method), [])
        bad = [r for r in runs if r["status"] != "ok"]
        return bad[0]["status"] if bad else "-"

    lines = [
        (
            f"{'case':15s} {'method':9s} {'polyskill':>10s} {'LibMTL':>10s} {'torchjd':>10s} "
            f"{'LibMTL/ps':>10s} {'torchjd/ps':>10s} {'ps/ps-EW':>9s}"
        )
    ]
    summary: dict = {}
    notes: set[str] = set()
    for case in cases:
        ew = median("polyskill", case, "ew")
        for method in methods:
            ms = {lib: median(lib, case, method) for lib in LIBS}
            cells = [f"{ms[lib]:10.1f}" if ms[lib] else f"{why(lib, case, method):>10s}" for lib in LIBS]
            ratios = [
                f"{ms[p] / ms['polyskill']:9.2f}x" if ms[p] and ms["polyskill"] else f"{'':10s}" for p in LIBS[1:]
            ]
            own = f"{ms['polyskill'] / ew:8.2f}x" if ms["polyskill"] and ew else f"{'':9s}"
            lines.append(f"{case:15s} {LABELS[method]:9s} {' '.join(cells)} {' '.join(ratios)} {own}")
            summary[f"{case}/{method}"] = {
                lib: {"ms_per_step": ms[lib], "runs": results.get((lib, case, method))} for lib in LIBS
            }
            for lib in LIBS:
                for r in results.get((lib, case, method), []):
                    if r["status"] != "ok":
                        notes.add(f"{lib} {LABELS[method]} ({case}): {r['status']}: {r['why']}")
                capped = [
                    r["steps"]
                    for r in results.get((lib, case, method), [])
                    if r["status"] == "ok"
                    and r["steps"] < (args.steps if case == "multifashion-2" else args.school_steps)
                ]
                if capped:
                    notes.add(
                        f"{lib} {LABELS[method]} ({case}): timed steps per repeat cut to {capped} by "
                        f"--max-seconds {args.max_seconds:g}"
                    )
    lines += [f"  note: {n}" for n in sorted(notes)]
    lines.append("goals:")
    for case in cases:
        ew = median("polyskill", case, "ew")
        for method in methods:
            ps = median("polyskill", case, method)
            if method == "ew" or ps is None:
                continue
            peers = [m for m in (median(p, case, method) for p in LIBS[1:]) if m]
            if case == "school-139":
                if peers:
                    r = min(peers) / ps
                    lines.append(
                        f"  {case} {LABELS[method]:8s}: faster peer / polyskill = {r:6.2f}x "
                        f"(goal >= 5x: {'met' if r >= 5 else 'NOT met'})"
                    )
                else:
                    lines.append(f"  {case} {LABELS[method]:8s}: no peer time")
            elif ew and method in REP_GRAD:
                lines.append(
                    f"  {case} {LABELS[method]:8s}: polyskill step / polyskill EW step = {ps / ew:5.2f}x "
                    f"(representation gradients: another method, not judged against the goal)"
                )
            elif ew:
                r = ps / ew
                lines.append(
                    f"  {case} {LABELS[method]:8s}: polyskill step / polyskill EW step = {r:5.2f}x "
                    f"(goal <= 1.5x: {'met' if r <= 1.5 else 'NOT met'})"
                )
    return lines, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per repeat, multifashion-2")
    parser.add_argument("--school-steps", type=int, default=5, help="timed steps per repeat, school-139")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="torch threads, the same for every library")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=15.0,
        help="per method and repeat: stop warming up / timing once this is exceeded (>= 1 step each)",
    )
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--libs", default=",".join(LIBS))
    parser.add_argument("--no-check", dest="check", action="store_false", help="skip the first-step gradient check")
    parser.add_argument(
        "--profile", metavar="CASE:METHOD", help="only profile polyskill's step instead (e.g. school-139:mgda)"
    )
    parser.add_argument("--peers", default=os.environ.get("POLYSKILL_PEERS", "/tmp/peers/bin/python"))
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--serve", nargs=2, metavar=("LIB", "DATA"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], args.serve[1], args.threads)
        return
    cases, methods, libs = args.cases.split(","), args.methods.split(","), args.libs.split(",")
    if any(lib != "polyskill" for lib in libs) and not Path(args.peers).is_file():
        sys.exit(
            f"no peer interpreter at {args.peers}: run bash ../shared/bench/setup_peers.sh (builds /tmp/peers) "
            "or pass --peers PATH"
        )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "PYTHONWARNINGS": "ignore"}
    results: dict[tuple[str, str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "batches.pt"
        sources = prepare(data, max(4, args.warmup + 2))
        if args.profile:
            profile(args, data)
            return
        workers = {
            lib: Worker(lib, sys.executable if lib == "polyskill" else args.peers, data, args.threads, env, Path(tmp))
            for lib in libs
        }
        check_lines = (
            correctness(workers, Path(tmp))
            if args.check and "multifashion-2" in cases and set(libs) == set(LIBS)
            else []
        )
        for r in range(args.repeats):  # every (case, method) is measured back to back for all libraries
            for case in cases:
                steps = args.steps if case == "multifashion-2" else args.school_steps
                for m, method in enumerate(methods[r % len(methods) :] + methods[: r % len(methods)]):
                    k = (r + m) % len(libs)  # rotate who goes first
                    for lib in libs[k:] + libs[:k]:
                        out = workers[lib].ask(
                            case=case, method=method, steps=steps, warmup=args.warmup, max_seconds=args.max_seconds
                        )
                        results.setdefault((lib, case, method), []).append(out)
        for w in workers.values():
            w.close()
    print(
        f"Multi-task training step (forward, per-task gradients, aggregation, Adam), ms/step: median over "
        f"{args.repeats} repeats of the median step of ({args.steps} multifashion-2 | "
        f"{args.school_steps} school-139) timed steps after {args.warmup} warm-up"
    )
    for case in cases:
        print(f"  {case}: {sources[case]}")
    print("  " + describe(args.threads))
    lines, summary = table(results, cases, methods, args)
    print("\n".join(lines))
    print(
        "polyskill-dense (school-139, partitioned=False): skipped, not expressible: dense_losses takes the mean over "
        "all B rows for every task, with no per-task mask"
    )
    if check_lines:
        print("first-step shared gradient (multifashion-2, same weights and batch):")
        print("\n".join(check_lines))
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "machine": machine(),
                    "sources": sources,
                    "args": vars(args),
                    "check": check_lines,
                    "results": summary,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
