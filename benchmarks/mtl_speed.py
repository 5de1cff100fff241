"""Multi-task training-step time and memory: polyskill against LibMTL and torchjd, in one run.

    bash benchmarks/setup_libmtl_head.sh      # LibMTL's current source, into /tmp/libmtl-head
    POLYSKILL_DATA=../shared/data .venv/bin/python benchmarks/mtl_speed.py --repeats 3

One step = forward, the per-task gradients as each library gets them, the aggregation and an Adam step (batches
are pre-built; no data loading), for every gradient method (EW, PCGrad, MGDA, CAGrad, IMTL-G, Nash-MTL, MGDA-UB,
FairGrad, UPGrad, DualProj, ConFIG, GradVac, SDMGrad, IMTL, DB-MTL, MoCo, GradDrop, GradDrop on representation
gradients, ExcessMTL) and, as extra rows, the loss weightings GLS, STCH, FAMO and Auto-Lambda, in two cases:

* `multifashion-2`: batches of 256 MultiFashion images [1, 28, 28] (polyskill.data.multifashion, built from the
  Fashion-MNIST training images) with two 10-class labels; hard parameter sharing with the LeNet encoder
  (conv5x5(10)-maxpool2-ReLU-conv5x5(20)-maxpool2-ReLU-flatten-linear(320, 50)-ReLU) and one head
  linear(50, 50)-ReLU-linear(50, 10) per task; cross-entropy.
* `school-139`: School, 139 tasks; encoder linear(28, 128)-ReLU-linear(128, 128)-ReLU, heads linear(128, 1); one
  batch = 8 training students of every school, laid out school by school (1112 rows); each task's loss is the MSE
  of its head on its own school's rows. polyskill uses its partitioned path (`partitioned=True`); the peers run all 139
  heads on the shared representation of the whole batch and take each task's loss on its rows (their natural
  formulation).

polyskill: `HardSharing` + `multitask_backward` with the registered weightings (options as registered, but STCH
with `warmup_steps=1`), or its `MultiTaskLearner` (`backward(x, y, meta=next batch)`, `after_step`) for the
weightings that need a meta batch (Auto-Lambda) or the losses after the step (FAMO), as its trainer drives them.

LibMTL: its current source, commit 4336804847eaa5e0b924b743d76beec7ac3fdc97 (2025-05-14; the PyPI release 1.1.5 of
2021 lacks most of the new methods), exported by benchmarks/setup_libmtl_head.sh and put first on the LibMTL worker's
PYTHONPATH (`--libmtl-src ''` runs the peers venv's 1.1.5 instead; the table header says which ran). It runs as its
`Trainer` drives it: `HPS` combined with the weighting class, `init_param()`, `rep_grad=False` (True for the
representation-gradient rows), losses written into a zero tensor, `model.backward(losses, **weight_args)` with
config.py's defaults (`LIBMTL`), three batches per step for SDMGrad as its trainer feeds it, `update_w` on the
step's batch after the optimiser step for FAMO, and its Trainer's `bacth_forward_AutoLambda` (which also runs the
optimiser) called on a stand-in object for Auto-Lambda. Patches: `zero_grad_share_params` = `zero_grad(set_to_none=
False)` (a no-op on the head; 1.1.5 predates torch 2), `numpy.alltrue` = `numpy.all` (removed in numpy 2, called by
its SDMGrad), and an empty `torch_geometric` module (its trainer imports it for QM9 only). LibMTL has no DualProj or
ConFIG, its IMTL is the hybrid (learned loss scales, the IMTL row; IMTL-G is n/a) and its GradDrop takes
representation gradients only (the GradDrop-rep row).

torchjd 0.18 (the peers venv; it has every aggregator below): `autojac.mtl_backward(losses, features=rep)` then
`autojac.jac_to_grad(encoder parameters, aggregator)` with `Sum` (EW), `PCGrad`, `MGDA`, `CAGrad(c=0.5)`, `IMTLG`,
`NashMTL(n_tasks=T)`, `FairGrad(alpha=1)`, `UPGrad`, `DualProj`, `ConFIG`, `GradVac(beta=0.5)`, `GradDrop`,
`ExcessMTL(robust_step_size=0.01)` and, for SDMGrad, `GramianWeightedAggregator(SDMGradWeighting())` on the step's
own Gramian. It has no IMTL (hybrid), DB-MTL, MoCo, representation-gradient mode or loss weightings (n/a).

Every implementation gets the same initial weights (one plain-torch reference model drawn from seed 0, copied
parameter by parameter) and the same batches (saved once to a temporary file). Each library runs in its own
long-lived process (the peers in the peer venv, ../shared/bench/setup_peers.sh) with the same number of torch
threads; every (case, method) is measured for the three libraries back to back, in an order that rotates between
repeats, so that all see the same machine load; a repeat's time is its median step (robust to load spikes) and the
table gives the median over repeats.

Memory (school-139; `--memory-only` for nothing else, `--no-memory` to skip): for each method and library a fresh
model runs its first two steps (the first allocates Adam's and the weighting's state) with the profiler's memory
reporting on (torch._C's `_enable_profiler` with `profile_memory` and only a record scope these steps never enter,
so that no operator is recorded and the steps run at their plain speed; the full torch.profiler took 38 s and 4 GB
for one of LibMTL's 139-task steps), which reports every allocation and free of torch's CPU allocator; their running
sum, counted from what was held before (model, batches), gives the peak tensor memory of a step and what stays held
after (state, gradients). It is exact for tensors and deterministic, and blind to memory outside torch's allocator
(numpy and solver arrays: T x T here) and to the allocator's and the heap's own overhead. The process's peak RSS is
not used: in one long-lived process the same EW step showed RSS rises from 7 to 90 MB depending on what ran before.

`--check` (on by default) compares the first-step shared-parameter gradient of polyskill with the peers' for EW
and MGDA. `--json OUT` saves a run and `--merge A.json B.json ...` prints the tables of runs split by `--methods`
(their repeats pooled). `--profile CASE:METHOD` only prints torch.profiler's top operators for polyskill's step.
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
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from machine import describe, machine

LIBS = ("polyskill", "libmtl", "torchjd")
# Gradient methods (the per-task gradients of the shared parameters, or of the representation for REP_GRAD), then
# loss weightings (one backward of a weighted loss; shown for the record, not judged against the 2-task goal).
GRADIENT_METHODS = (
    "ew",
    "pcgrad",
    "mgda",
    "cagrad",
    "imtl",
    "nash",
    "mgda_ub",
    "fairgrad",
    "upgrad",
    "dualproj",
    "config",
    "gradvac",
    "sdmgrad",
    "imtl_hybrid",
    "dbmtl",
    "moco",
    "graddrop",
    "graddrop_rep",
    "excessmtl",
)
LOSS_METHODS = ("gls", "stch", "famo", "autol")
METHODS = GRADIENT_METHODS + LOSS_METHODS
LABELS = {
    "ew": "EW",
    "pcgrad": "PCGrad",
    "mgda": "MGDA",
    "cagrad": "CAGrad",
    "imtl": "IMTL-G",
    "nash": "Nash-MTL",
    "mgda_ub": "MGDA-UB",
    "fairgrad": "FairGrad",
    "upgrad": "UPGrad",
    "dualproj": "DualProj",
    "config": "ConFIG",
    "gradvac": "GradVac",
    "sdmgrad": "SDMGrad",
    "imtl_hybrid": "IMTL",
    "dbmtl": "DB-MTL",
    "moco": "MoCo",
    "graddrop": "GradDrop",
    "graddrop_rep": "GradDrop-rep",
    "excessmtl": "ExcessMTL",
    "gls": "GLS",
    "stch": "STCH",
    "famo": "FAMO",
    "autol": "Auto-Lambda",
}
# methods run on gradients of the shared representation -> their polyskill weighting
REP_GRAD = {"mgda_ub": "mgda", "graddrop_rep": "graddrop"}
CASES = ("multifashion-2", "school-139")
MEMORY_CASES = ("school-139",)
ROWS_PER_SCHOOL = 8
CHECKED = ("ew", "mgda")
# polyskill options that differ from its defaults: STCH past its warm-up (LibMTL's is set the same way), so that the
# step timed is the smooth Tchebycheff one and not the warm-up's plain sum of log losses.
POLYSKILL_ARGS: dict[str, dict] = {"stch": {"warmup_steps": 1}}
# LibMTL: weighting class and `weight_args`, its config.py defaults (rep_grad=True for REP_GRAD methods); STCH's
# warm-up is one "epoch" (its step sets `epoch` to 0 on the first step, 1 after: the nadir point is taken after one
# step); Auto-Lambda is a method of its Trainer (see libmtl_autol).
LIBMTL = {
    "ew": ("EW", {}),
    "pcgrad": ("PCGrad", {}),
    "mgda": ("MGDA", {"mgda_gn": "none"}),
    "mgda_ub": ("MGDA", {"mgda_gn": "none"}),
    "cagrad": ("CAGrad", {"calpha": 0.5, "rescale": 1}),
    "nash": ("Nash_MTL", {"update_weights_every": 1, "optim_niter": 20, "max_norm": 1.0}),
    "fairgrad": ("FairGrad", {"FairGrad_alpha": 1.0}),
    "upgrad": ("UPGrad", {"UPGrad_norm_eps": 1e-4, "UPGrad_reg_eps": 1e-4}),
    "gradvac": ("GradVac", {"GradVac_beta": 0.5, "GradVac_group_type": 0}),
    "sdmgrad": ("SDMGrad", {"SDMGrad_lamda": 0.3, "SDMGrad_niter": 20}),
    "imtl_hybrid": ("IMTL", {}),
    "dbmtl": ("DB_MTL", {"DB_beta": 0.9, "DB_beta_sigma": 0.0}),
    "moco": (
        "MoCo",
        {"MoCo_beta": 0.5, "MoCo_beta_sigma": 0.5, "MoCo_gamma": 0.1, "MoCo_gamma_sigma": 0.5, "MoCo_rho": 0.0},
    ),
    "graddrop_rep": ("GradDrop", {"leak": 0.0}),
    "excessmtl": ("ExcessMTL", {"robust_step_size": 1e-2}),
    "gls": ("GLS", {}),
    "stch": ("STCH", {"STCH_mu": 1.0, "STCH_warmup_epoch": 0}),
    "famo": ("FAMO", {"FAMO_w_lr": 0.025, "FAMO_w_gamma": 1e-3}),
}
LIBMTL_SAMPLES = {"sdmgrad": 3}  # batches per step: its trainer feeds SDMGrad three (zeta, xi, xi')
# What the peers lack, and why (shown instead of a time).
NO_LOSS_WEIGHTING = "torchjd aggregates Jacobians; it has no loss weightings"
UNAVAILABLE = {
    ("libmtl", "imtl"): "LibMTL's IMTL is the hybrid with learned loss scales (the IMTL row)",
    ("libmtl", "dualproj"): "LibMTL has no DualProj",
    ("libmtl", "config"): "LibMTL has no ConFIG",
    ("libmtl", "graddrop"): "LibMTL's GradDrop takes representation gradients only (the GradDrop-rep row)",
    ("torchjd", "mgda_ub"): "torchjd aggregates parameter gradients only",
    ("torchjd", "graddrop_rep"): "torchjd aggregates parameter gradients only",
    ("torchjd", "imtl_hybrid"): "torchjd has IMTL-G only, without IMTL-L's learned loss scales",
    ("torchjd", "dbmtl"): "torchjd has no DB-MTL",
    ("torchjd", "moco"): "torchjd has no MoCo",
    **{("torchjd", m): NO_LOSS_WEIGHTING for m in LOSS_METHODS},
}


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


class Setup(NamedTuple):
    """A library's training step for one (case, method): `step(batches, i, optimizer)` leaves the step's gradients
    in `.grad` (batch i, and i + 1, i + 2 for methods that read more batches), unless `steps_itself`, when it also
    runs the optimiser (LibMTL's Auto-Lambda); `after(batches, i)` runs after the optimiser step (FAMO)."""

    params: list
    step: Callable
    shared: list
    after: Callable | None = None
    steps_itself: bool = False


def nth(batches: list, i: int) -> tuple:
    """Batch i, cycling."""
    return batches[i % len(batches)]


def polyskill_step(torch, case, method, init, tasks, rows) -> Setup:
    """polyskill's HardSharing with `multitask_backward`, or its `MultiTaskLearner` for a weighting that needs a
    meta batch (Auto-Lambda) or the losses after the step (FAMO), as its trainer drives them."""
    from polyskill.mtl import aggregator_class, architecture_class
    from polyskill.mtl.learner import MultiTaskLearner
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
    cls = aggregator_class(REP_GRAD.get(method, method))
    kwargs = dict(POLYSKILL_ARGS.get(method, {}))
    if cls.needs_num_tasks:
        kwargs["num_tasks"] = tasks
    aggregator = cls(**kwargs)
    partitioned, rep_grad = case == "school-139", method in REP_GRAD
    params = list(model.parameters()) + list(aggregator.parameters())
    if aggregator.needs_meta_batch or aggregator.needs_losses_after_step:
        learner = MultiTaskLearner(model, aggregator, classes, partitioned=partitioned, rep_grad=rep_grad)
        meta = aggregator.needs_meta_batch
        return Setup(
            params,
            lambda batches, i, _: learner.backward(*nth(batches, i), meta=nth(batches, i + 1) if meta else None),
            model.shared_parameters(),
            lambda batches, i: learner.after_step(*nth(batches, i)),
        )

    def step(batches, i, _):
        x, y = nth(batches, i)
        multitask_backward(model, aggregator, x, y, classes, partitioned=partitioned, rep_grad=rep_grad)

    return Setup(params, step, model.shared_parameters())


def libmtl_model(torch, case, method, init, tasks):
    """The model LibMTL's Trainer builds: HPS combined with the weighting class, `init_param()` called."""
    import LibMTL.weighting as weighting
    from LibMTL.architecture import HPS

    cls = getattr(weighting, LIBMTL[method][0]) if method in LIBMTL else weighting.EW
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
    model.epoch, model.epochs = 0, 1  # what its trainer sets before the first step (read by DWA, STCH)
    return model, names, list(encoder.parameters())


def libmtl_step(torch, case, method, init, tasks, rows) -> Setup:
    """LibMTL: the model its Trainer builds (architecture x weighting), its loss gathering and model.backward."""
    from LibMTL.architecture.abstract_arch import AbsArchitecture

    if method == "autol":
        return libmtl_autol(torch, case, init, tasks, rows)
    if method not in LIBMTL:
        raise KeyError(f"no LibMTL weighting for {method}")
    # 1.1.5 predates torch 2's zero_grad(set_to_none=True); the head already does this
    AbsArchitecture.zero_grad_share_params = lambda self: self.encoder.zero_grad(set_to_none=False)
    model, names, shared = libmtl_model(torch, case, method, init, tasks)
    loss = peer_loss(torch, case, tasks, rows)
    kwargs = LIBMTL[method][1]
    samples = LIBMTL_SAMPLES.get(method, 1)

    def losses_of(x, y):
        preds = model(x)
        losses = torch.zeros(len(names))  # as Trainer._compute_loss
        for i, value in enumerate(loss([preds[t] for t in names], y)):
            losses[i] = value
        return losses

    def step(batches, i, _):
        losses = torch.stack([losses_of(*nth(batches, i + k)) for k in range(samples)]).squeeze(0)
        model.backward(losses, **kwargs)
        model.epoch = 1  # STCH: past its one-step warm-up

    after = None
    if method == "famo":

        def after(batches, i):
            with torch.no_grad():
                model.update_w(losses_of(*nth(batches, i)).detach())

    return Setup(list(model.parameters()), step, shared, after)


def libmtl_autol(torch, case, init, tasks, rows) -> Setup:
    """LibMTL's Auto-Lambda is a method of its Trainer (`bacth_forward_AutoLambda`, which runs the optimiser itself):
    it is called on a stand-in that has the few attributes it reads, with the inner batch = batch i, the outer
    (meta) batch = batch i + 1 and the update batch = batch i, as polyskill's step takes them."""
    from LibMTL.trainer import Trainer

    model, names, shared = libmtl_model(torch, case, "autol", init, tasks)
    loss = peer_loss(torch, case, tasks, rows)

    class Meter:
        def update(self, *args):
            pass

    class Stand(torch.nn.Module):
        multi_input, scheduler, task_num, device, meter = False, None, tasks, torch.device("cpu"), Meter()

        def __init__(self):
            super().__init__()
            self.kwargs = {"weight_args": {"inner_step": 1, "outer_lr": 1e-4}}

        def forward4loss(self, m, x, y, return_preds=False):
            preds = m(x)
            losses = torch.zeros(len(names))
            for i, value in enumerate(loss([preds[t] for t in names], y)):
                losses[i] = value
            return (losses, preds) if return_preds else losses

        def _process_data(self, loader):
            return loader

    stand = Stand()
    stand.model = model
    Trainer._prepare_tw(stand, stand.kwargs["weight_args"]["outer_lr"])

    def step(batches, i, optimizer):
        stand.optimizer = optimizer
        x, y = nth(batches, i)
        Trainer.bacth_forward_AutoLambda(stand, x, y, *nth(batches, i + 1), (x, y))

    return Setup(list(model.parameters()), step, shared, steps_itself=True)


def torchjd_aggregator(agg, method: str, tasks: int):
    """The torchjd aggregator of a method; KeyError where it has none."""
    return {
        "ew": lambda: agg.Sum(),
        "pcgrad": lambda: agg.PCGrad(),
        "mgda": lambda: agg.MGDA(),
        "cagrad": lambda: agg.CAGrad(c=0.5),
        "imtl": lambda: agg.IMTLG(),
        "nash": lambda: agg.NashMTL(n_tasks=tasks),
        "fairgrad": lambda: agg.FairGrad(alpha=1.0),
        "upgrad": lambda: agg.UPGrad(),
        "dualproj": lambda: agg.DualProj(),
        "config": lambda: agg.ConFIG(),
        "gradvac": lambda: agg.GradVac(beta=0.5),
        "graddrop": lambda: agg.GradDrop(),
        "excessmtl": lambda: agg.ExcessMTL(robust_step_size=1e-2),
        "sdmgrad": lambda: agg.GramianWeightedAggregator(agg.SDMGradWeighting()),
    }[method]()


def torchjd_step(torch, case, method, init, tasks, rows) -> Setup:
    """torchjd: autojac.mtl_backward on the shared representation, then jac_to_grad with the aggregator."""
    from torchjd import aggregation as agg
    from torchjd.autojac import jac_to_grad, mtl_backward

    aggregator = torchjd_aggregator(agg, method, tasks)
    encoder, heads = reference_model(torch, case, tasks)
    copy_into(torch, encoder.parameters(), init["shared"], "torchjd encoder")
    for h, tensors in zip(heads, init["heads"], strict=True):
        copy_into(torch, h.parameters(), tensors, "torchjd head")
    shared = list(encoder.parameters())
    head_params = [list(h.parameters()) for h in heads]
    loss = peer_loss(torch, case, tasks, rows)

    def step(batches, i, _):
        x, y = nth(batches, i)
        rep = encoder(x)
        mtl_backward(loss([h(rep) for h in heads], y), features=rep, tasks_params=head_params, shared_params=shared)
        jac_to_grad(shared, aggregator)

    return Setup(shared + [p for ps in head_params for p in ps], step, shared)


BUILDERS = {"polyskill": polyskill_step, "libmtl": libmtl_step, "torchjd": torchjd_step}


# --- worker: one library's process, timing (case, method) pairs on request ----------------------------------------


def training_step(torch, setup: Setup, bundle: dict):
    """`one(i)`: a full training step (zero grads, the library's step on batch i, Adam) over pre-built batches."""
    optimizer = torch.optim.Adam(setup.params, lr=1e-3)
    batches = list(zip(bundle["x"], bundle["y"], strict=True))

    def one(i):
        optimizer.zero_grad(set_to_none=True)
        setup.step(batches, i, optimizer)
        if not setup.steps_itself:
            optimizer.step()
        if setup.after is not None:
            setup.after(batches, i)

    return one


MEMORY_STEPS = 2  # the first step (which allocates Adam's and the weighting's state) and one in the steady state


def tensor_memory(torch, one, steps: int) -> dict:
    """Bytes held by torch tensors over `steps` fresh steps, from every allocation and free of torch's CPU allocator
    as the profiler reports them (its memory reporting alone: the one record scope enabled is one these steps never
    enter, so no operator is recorded, which keeps LibMTL's 139-task steps at their plain speed), counted from what
    was held before the first step (model, batches): the peak of their running sum and what is held after the last
    step (state, gradients)."""
    from torch._C._profiler import ProfilerActivity, RecordScope, _ExperimentalConfig
    from torch.autograd import ProfilerConfig, ProfilerState, _disable_profiler, _enable_profiler, _prepare_profiler

    config = ProfilerConfig(ProfilerState.KINETO, False, True, False, False, False, _ExperimentalConfig())
    _prepare_profiler(config, {ProfilerActivity.CPU})
    _enable_profiler(config, {ProfilerActivity.CPU}, {RecordScope.LITE_INTERPRETER})
    try:
        for i in range(steps):
            one(i)
    finally:
        recorded = _disable_profiler()
    events = sorted((e.start_ns(), e.nbytes()) for e in recorded.events() if e.name() == "[memory]")
    held = peak = 0
    for _, nbytes in events:
        held += nbytes
        peak = max(peak, held)
    return {"status": "ok", "peak_mb": peak / 2**20, "held_mb": held / 2**20}


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
    memory: bool = False,
) -> dict:
    """Time `steps` steps of one method (after `warmup`); or with `check` save its first-step shared gradient; or
    with `memory` give the tensor memory of its first steps instead (`tensor_memory`)."""
    if (lib, method) in UNAVAILABLE:
        return {"status": "n/a", "why": UNAVAILABLE[(lib, method)]}
    try:
        setup = BUILDERS[lib](torch, case, method, bundle["init"], bundle["tasks"], bundle["rows"])
    except (ImportError, AttributeError, KeyError) as exc:
        return {"status": "missing", "why": f"{type(exc).__name__}: {exc}"}
    one = training_step(torch, setup, bundle)

    try:
        if check:
            for p in setup.params:
                p.grad = None
            setup.step(list(zip(bundle["x"], bundle["y"], strict=True)), 0, None)
            torch.save(
                torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in setup.shared])
                .detach()
                .clone(),
                check,
            )
            return {"status": "ok"}
        if memory:
            return tensor_memory(torch, one, MEMORY_STEPS)
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


def library(lib: str) -> str:
    """Which version of the library this worker imports (LibMTL: its folder and, for the head, the commit)."""
    if lib == "polyskill":
        return "polyskill (this checkout)"
    if lib == "torchjd":
        from importlib.metadata import version

        return f"torchjd {version('torchjd')}"
    import LibMTL

    folder = Path(LibMTL.__file__).resolve().parents[1]
    commit = folder / "COMMIT"
    if commit.is_file():
        return f"LibMTL source at commit {commit.read_text().strip()} ({folder})"
    from importlib.metadata import version

    return f"LibMTL {version('LibMTL')} (PyPI, {folder})"


def serve(lib: str, data: str, threads: int) -> None:
    """Answer one JSON request per stdin line ({case, method, steps, warmup, max_seconds, check, memory}) with one
    JSON line."""
    import warnings

    import numpy as np
    import torch

    warnings.filterwarnings("ignore")
    if not hasattr(np, "alltrue"):  # removed in numpy 2; LibMTL's SDMGrad still calls it
        np.alltrue = np.all
    torch.set_num_threads(threads)
    bundles = torch.load(data, weights_only=True)
    answers, sys.stdout = sys.stdout, sys.stderr  # whatever the libraries print stays off the answer channel
    print(json.dumps({"ready": lib, "library": library(lib)}), file=answers, flush=True)
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
            r.get("memory", False),
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
        self.library = self._read()["library"]

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
    setup = polyskill_step(torch, case, method, bundle["init"], bundle["tasks"], bundle["rows"])
    one = training_step(torch, setup, bundle)

    for i in range(args.warmup):
        one(i)
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(5):
            one(i)
    print(f"torch.profiler, polyskill {case} {LABELS[method]}, 5 steps:")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))


def median_ms(results: dict, lib: str, case: str, method: str) -> float | None:
    runs = results.get((lib, case, method), [])
    if runs and all(r["status"] == "ok" for r in runs):
        return statistics.median(r["ms_per_step"] for r in runs)
    return None


def table(results: dict, cases: list[str], methods: list[str], steps: dict[str, int], max_seconds: float) -> list[str]:
    """The markdown table of step times and ratios, its notes (why a cell is empty, capped repeats) and the goals."""

    def why(lib, case, method):
        bad = [r for r in results.get((lib, case, method), []) if r["status"] != "ok"]
        return bad[0]["status"] if bad else "-"

    lines = [
        (
            "| case | method | polyskill ms | LibMTL ms | torchjd ms | LibMTL / polyskill | torchjd / polyskill "
            "| polyskill / polyskill EW |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    notes: dict[str, None] = {}
    for case in cases:
        ew = median_ms(results, "polyskill", case, "ew")
        for method in methods:
            ms = {lib: median_ms(results, lib, case, method) for lib in LIBS}
            cells = [f"{ms[lib]:.1f}" if ms[lib] else why(lib, case, method) for lib in LIBS]
            ratios = [f"{ms[p] / ms['polyskill']:.2f}x" if ms[p] and ms["polyskill"] else "" for p in LIBS[1:]]
            own = f"{ms['polyskill'] / ew:.2f}x" if ms["polyskill"] and ew else ""
            lines.append(f"| {case} | {LABELS[method]} | {' | '.join(cells)} | {' | '.join(ratios)} | {own} |")
            for lib in LIBS:
                runs = results.get((lib, case, method), [])
                for r in runs:
                    if r["status"] != "ok":
                        notes[f"{lib} {LABELS[method]} ({case}): {r['status']}: {r['why']}"] = None
                capped = [r["steps"] for r in runs if r["status"] == "ok" and r["steps"] < steps[case]]
                if capped:
                    notes[
                        f"{lib} {LABELS[method]} ({case}): timed steps per repeat cut to {capped} by "
                        f"--max-seconds {max_seconds:g}"
                    ] = None
    lines += ["", *[f"- {n}" for n in notes]]
    lines += ["", "goals:"]
    for case in cases:
        ew = median_ms(results, "polyskill", case, "ew")
        for method in methods:
            ps = median_ms(results, "polyskill", case, method)
            if method == "ew" or ps is None:
                continue
            peers = [m for m in (median_ms(results, p, case, method) for p in LIBS[1:]) if m]
            if case == "school-139" and method in LOSS_METHODS:
                if peers:
                    lines.append(
                        f"- {case} {LABELS[method]}: faster peer / polyskill = {min(peers) / ps:.2f}x "
                        "(a loss weighting: not judged against the goal)"
                    )
            elif case == "school-139":
                if peers:
                    r = min(peers) / ps
                    lines.append(
                        f"- {case} {LABELS[method]}: faster peer / polyskill = {r:.2f}x "
                        f"(goal >= 5x: {'met' if r >= 5 else 'NOT met'})"
                    )
                else:
                    lines.append(f"- {case} {LABELS[method]}: no peer time")
            elif ew and (method in REP_GRAD or method in LOSS_METHODS):
                kind = "representation gradients" if method in REP_GRAD else "a loss weighting"
                lines.append(
                    f"- {case} {LABELS[method]}: polyskill step / polyskill EW step = {ps / ew:.2f}x "
                    f"({kind}: not judged against the goal)"
                )
            elif ew:
                r = ps / ew
                lines.append(
                    f"- {case} {LABELS[method]}: polyskill step / polyskill EW step = {r:.2f}x "
                    f"(goal <= 1.5x: {'met' if r <= 1.5 else 'NOT met'})"
                )
    return lines


def memory_table(memory: dict, cases: list[str], methods: list[str]) -> list[str]:
    """Markdown: per method and library, the tensor peak over the first steps and what stays held after them."""
    lines = []
    for case in cases:
        if not any(key[1] == case for key in memory):
            continue
        lines += [
            (
                f"{case}: tensor memory, MB, over the first {MEMORY_STEPS} steps (peak above the model and batches "
                "held before them / held after them: optimiser and weighting state, gradients)"
            ),
            "",
            "| method | polyskill | LibMTL | torchjd | LibMTL / polyskill | torchjd / polyskill |",
            "|---|---|---|---|---|---|",
        ]
        for method in methods:
            cell = {lib: memory.get((lib, case, method), {}) for lib in LIBS}
            cells = [
                f"{c['peak_mb']:.1f} / {c['held_mb']:.1f}" if c.get("status") == "ok" else c.get("status", "-")
                for c in cell.values()
            ]
            ps = cell["polyskill"].get("peak_mb")
            ratios = [
                f"{cell[p]['peak_mb'] / ps:.1f}x" if ps and cell[p].get("status") == "ok" else "" for p in LIBS[1:]
            ]
            lines.append(f"| {LABELS[method]} | {' | '.join(cells)} | {' | '.join(ratios)} |")
        lines.append("")
    return lines


def report(runs: list[dict]) -> None:
    """Print the tables of one run, or of several runs' --json files merged (their repeats pooled)."""
    results: dict[tuple[str, str, str], list[dict]] = {}
    memory: dict[tuple[str, str, str], dict] = {}
    cases: list[str] = []
    methods: list[str] = []
    for run in runs:
        for key, values in run["raw"].items():
            results.setdefault(tuple(key.split("|")), []).extend(values)
        for key, value in run["memory"].items():
            memory[tuple(key.split("|"))] = value
    for _, case, method in [*results, *memory]:
        cases += [case] if case not in cases else []
        methods += [method] if method not in methods else []
    cases = [c for c in CASES if c in cases]
    methods = [m for m in METHODS if m in methods]
    args = runs[0]["args"]
    steps = {"multifashion-2": args["steps"], "school-139": args["school_steps"]}
    print(
        f"Multi-task training step (forward, per-task gradients, aggregation, Adam), ms/step: median over "
        f"{args['repeats']} repeats of the median step of ({args['steps']} multifashion-2 | "
        f"{args['school_steps']} school-139) timed steps after {args['warmup']} warm-up"
    )
    for run in runs:
        print(f"- `{run['command']}`: {run['described']}")
    for case in cases:
        print(f"- {case}: {runs[0]['sources'][case]}")
    for lib, text in runs[0]["libraries"].items():
        print(f"- {lib}: {text}")
    print()
    if results:
        print("\n".join(table(results, cases, methods, steps, args["max_seconds"])))
        print()
    print("\n".join(memory_table(memory, cases, methods)))
    print(
        "polyskill-dense (school-139, partitioned=False): skipped, not expressible: dense_losses takes the mean over "
        "all B rows for every task, with no per-task mask"
    )
    checks = [line for run in runs for line in run["check"]]
    if checks:
        print("first-step shared gradient (multifashion-2, same weights and batch):")
        print("\n".join(checks))


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
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated; 'gradient' or 'loss' too")
    parser.add_argument("--libs", default=",".join(LIBS))
    parser.add_argument("--no-check", dest="check", action="store_false", help="skip the first-step gradient check")
    parser.add_argument("--no-memory", dest="memory", action="store_false", help="skip the school-139 memory figures")
    parser.add_argument("--memory-only", action="store_true", help="only the school-139 memory figures, no timing")
    parser.add_argument(
        "--profile", metavar="CASE:METHOD", help="only profile polyskill's step instead (e.g. school-139:mgda)"
    )
    parser.add_argument("--peers", default=os.environ.get("POLYSKILL_PEERS", "/tmp/peers/bin/python"))
    parser.add_argument(
        "--libmtl-src",
        default=os.environ.get("POLYSKILL_LIBMTL_SRC", "/tmp/libmtl-head"),
        help="folder put first on the LibMTL worker's PYTHONPATH (benchmarks/setup_libmtl_head.sh); '' for the "
        "peers venv's LibMTL 1.1.5",
    )
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--merge", nargs="+", metavar="JSON", help="only print the tables of these --json files")
    parser.add_argument("--serve", nargs=2, metavar=("LIB", "DATA"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], args.serve[1], args.threads)
        return
    if args.merge:
        report([json.loads(Path(f).read_text()) for f in args.merge])
        return
    groups = {"gradient": list(GRADIENT_METHODS), "loss": list(LOSS_METHODS)}
    cases, libs = args.cases.split(","), args.libs.split(",")
    methods = [m for name in args.methods.split(",") for m in groups.get(name, [name])]
    unknown = [m for m in methods if m not in LABELS] + [c for c in cases if c not in CASES]
    unknown += [lib for lib in libs if lib not in LIBS]
    if unknown:
        sys.exit(f"unknown --cases / --methods / --libs: {', '.join(unknown)}")
    if any(lib != "polyskill" for lib in libs) and not Path(args.peers).is_file():
        sys.exit(
            f"no peer interpreter at {args.peers}: run bash ../shared/bench/setup_peers.sh (builds /tmp/peers) "
            "or pass --peers PATH"
        )
    if "libmtl" in libs and args.libmtl_src and not (Path(args.libmtl_src) / "LibMTL").is_dir():
        sys.exit(f"no LibMTL source in {args.libmtl_src}: run bash benchmarks/setup_libmtl_head.sh, or --libmtl-src ''")
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": root, "PYTHONWARNINGS": "ignore"}
    envs = dict.fromkeys(libs, env)
    if args.libmtl_src:
        envs["libmtl"] = {**env, "PYTHONPATH": f"{Path(args.libmtl_src).resolve()}{os.pathsep}{root}"}
    results: dict[tuple[str, str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "batches.pt"
        sources = prepare(data, max(4, args.warmup + 3))
        if args.profile:
            profile(args, data)
            return
        workers = {
            lib: Worker(
                lib, sys.executable if lib == "polyskill" else args.peers, data, args.threads, envs[lib], Path(tmp)
            )
            for lib in libs
        }
        check_lines = (
            correctness(workers, Path(tmp))
            if args.check and not args.memory_only and "multifashion-2" in cases and set(libs) == set(LIBS)
            else []
        )
        for r in range(0 if args.memory_only else args.repeats):  # each (case, method) back to back for all libs
            for case in cases:
                steps = args.steps if case == "multifashion-2" else args.school_steps
                for m, method in enumerate(methods[r % len(methods) :] + methods[: r % len(methods)]):
                    k = (r + m) % len(libs)  # rotate who goes first
                    for lib in libs[k:] + libs[:k]:
                        out = workers[lib].ask(
                            case=case,
                            method=method,
                            steps=steps,
                            warmup=args.warmup,
                            max_seconds=args.max_seconds,
                        )
                        results.setdefault((lib, case, method), []).append(out)
                        shown = f"{out['ms_per_step']:.1f} ms" if out["status"] == "ok" else out["status"]
                        print(f"repeat {r + 1} {case} {method} {lib}: {shown}", file=sys.stderr, flush=True)
        memory = {}
        for case in [c for c in cases if c in MEMORY_CASES and args.memory]:
            for method in methods:
                for lib in libs:
                    out = workers[lib].ask(case=case, method=method, steps=0, warmup=0, max_seconds=0, memory=True)
                    memory[(lib, case, method)] = out
                    shown = f"{out['peak_mb']:.1f} MB" if out["status"] == "ok" else out["status"]
                    print(f"memory {case} {method} {lib}: {shown}", file=sys.stderr, flush=True)
        for w in workers.values():
            w.close()
    run = {
        "command": " ".join(["benchmarks/mtl_speed.py", *sys.argv[1:]]),
        "described": describe(args.threads),
        "machine": machine(),
        "sources": sources,
        "libraries": {lib: w.library for lib, w in workers.items()},
        "args": vars(args),
        "check": check_lines,
        "raw": {"|".join(key): value for key, value in results.items()},
        "memory": {"|".join(key): value for key, value in memory.items()},
    }
    report([run])
    if args.json:
        Path(args.json).write_text(json.dumps(run, indent=2))


if __name__ == "__main__":
    main()
