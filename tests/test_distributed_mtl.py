"""Multi-task training on 2 gloo processes: every rank holds the gradients, task weights and aggregator state of
the global batch, and a run ends with the parameters one process reaches on the same global batches (each rank's
stream's share, joined in rank order; a partitioned batch joined task by task)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp
from rank_support import train_on_ranks
from torch import Tensor, nn

from polyskill.data.mtl_batches import MultiTaskBatches
from polyskill.distributed import DistContext
from polyskill.distributed.reduction import RankReduction
from polyskill.distributed.streams import ShardedBatches
from polyskill.errors import ConfigError
from polyskill.mtl import aggregator_class
from polyskill.mtl.base import MultiTaskModel
from polyskill.mtl.step import multitask_backward
from polyskill.recipes import load
from polyskill.recipes.kinds.datasets import multitask_data
from polyskill.recipes.kinds.multitask import learner, rank_batches
from polyskill.train import load_checkpoint
from polyskill.train.multitask import MultiTaskTrainer

pytestmark = pytest.mark.heavy  # see conftest: handed to a worker first

WORLD = 2
STEPS = 8
# plain SGD: Adam turns float-summation noise in near-zero gradients into lr-sized steps; a rate large enough
# that a wrong gradient shows in the parameters
COMMON = [
    "train.optimizer=sgd",
    "train.momentum=0",
    "train.lr=0.05",
    f"train.steps={STEPS}",
    f"train.val_every={STEPS}",
    "train.log_every=4",
    "data.val=null",
]
# Whole runs, one per kind of state a weighting carries between steps (the gradient paths of every kind are
# compared rank by rank in-process below, in CASES): a random generator on every rank, loss windows in buffers,
# and losses measured after the optimiser step.
WEIGHTINGS = {
    "pcgrad": ["mtl.weighting=pcgrad"],
    "dwa": ["mtl.weighting=dwa", "mtl.options.period=2"],  # dynamic weights from step 5 on
    "famo": ["mtl.weighting=famo"],  # the losses after each step, averaged over the ranks
}


# -- one backward pass on two ranks, against one process on the global batch -----------------------------------


class Net(MultiTaskModel):
    """A shared tanh layer and one head per task (classes or 1 outputs); `trunk` off makes partitioned batches
    take the whole-model vmap path, `penalty` adds an L2 term on the heads."""

    def __init__(self, classes: tuple[int, ...], trunk: bool = True, penalty: bool = False) -> None:
        super().__init__()
        self.tasks = tuple(f"t{i}" for i in range(len(classes)))
        self.trunk = nn.Sequential(nn.Linear(5, 6), nn.Tanh())
        self.heads = nn.ModuleDict({t: nn.Linear(6, c or 1) for t, c in zip(self.tasks, classes, strict=True)})
        self.has_trunk, self.has_penalty = trunk, penalty

    def forward_with_representation(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        rep = self.trunk(x)
        return rep, {t: h(rep) for t, h in self.heads.items()}

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return self.forward_with_representation(x)[1]

    def shared_parameters(self) -> list[nn.Parameter]:
        return list(self.trunk.parameters())

    def shared_trunk(self) -> nn.Module | None:
        return self.trunk if self.has_trunk else None

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        return list(self.heads[task].parameters())

    def penalty(self) -> Tensor | None:
        return sum((h.weight**2).sum() for h in self.heads.values()) * 0.1 if self.has_penalty else None


DENSE_CLASSES = (3, 0, 0, 2)  # classification and regression heads
PARTITIONED_CLASSES = (0, 0, 0, 0)  # the whole-model vmap path gives every head every task's labels
CASES = {  # name: (aggregator, options, partitioned, rep_grad, trunk, penalty)
    "pcgrad-dense-trunk": ("pcgrad", {}, False, False, True, False),
    "mgda-partitioned-trunk": ("mgda", {"normalization": "loss"}, True, False, True, False),
    "nash-partitioned-vmap": ("nash", {}, True, False, False, True),
    "gradnorm-dense-generic": ("gradnorm", {"num_tasks": 4}, False, False, False, True),
    "cagrad-dense-rep": ("cagrad", {}, False, True, True, False),
    "imtl-partitioned-rep": ("imtl", {}, True, True, True, False),
    "dwa-dense": ("dwa", {"num_tasks": 4, "period": 1}, False, False, True, True),
    "uw-partitioned": ("uw", {"num_tasks": 4}, True, False, True, False),
    "rlw-dense": ("rlw", {}, False, False, True, False),
    "dbmtl-dense-trunk": ("dbmtl", {"num_tasks": 4}, False, False, True, False),
    "moco-partitioned-vmap": ("moco", {"num_tasks": 4}, True, False, False, False),
    "excessmtl-partitioned-trunk": ("excessmtl", {"num_tasks": 4}, True, False, True, False),
    "graddrop-dense-trunk": ("graddrop", {}, False, False, True, False),
    "upgrad-partitioned-trunk": ("upgrad", {}, True, False, True, False),
    "imtl_hybrid-dense": ("imtl_hybrid", {"num_tasks": 4}, False, False, True, False),
    "stch-dense": ("stch", {"num_tasks": 4, "warmup_steps": 1}, False, False, True, False),
}
CALLS = 3  # backward passes per case, on fresh batches: the later ones see the aggregators' state


def _batch(call: int, partitioned: bool, rows: int = 8) -> tuple[Tensor, Tensor]:
    """The global batch of a call: `rows` examples, dense (y [rows, T]) or of every task, laid out task by task
    (y [T * rows])."""
    g = torch.Generator().manual_seed(100 + call)
    if partitioned:
        t = len(PARTITIONED_CLASSES)
        return torch.randn(t * rows, 5, generator=g), torch.randn(t * rows, generator=g)
    x = torch.randn(rows, 5, generator=g)
    labels = [
        torch.randint(c, (rows,), generator=g).float() if c else torch.randn(rows, generator=g) for c in DENSE_CLASSES
    ]
    return x, torch.stack(labels, 1)


def _share(x: Tensor, y: Tensor, rank: int, world: int, partitioned: bool) -> tuple[Tensor, Tensor]:
    """Rank `rank`'s part of a global batch: a block of rows, or a block of every task's rows."""
    if not partitioned:
        n = len(x) // world
        return x[rank * n : (rank + 1) * n], y[rank * n : (rank + 1) * n]
    t = len(PARTITIONED_CLASSES)
    xs, ys = x.reshape(t, -1, *x.shape[1:]), y.reshape(t, -1)
    n = xs.shape[1] // world
    return xs[:, rank * n : (rank + 1) * n].reshape(-1, *x.shape[1:]), ys[:, rank * n : (rank + 1) * n].reshape(-1)


def _run_cases(rank: int, world: int) -> dict[str, list[dict[str, Tensor]]]:
    """Every case's calls on rank `rank` of `world` (world 1: the whole batch): gradients, weights, losses, Gram."""
    dist = DistContext(rank, world, backend="gloo") if world > 1 else DistContext()
    out = {}
    for name, (weighting, options, partitioned, rep_grad, trunk, penalty) in CASES.items():
        classes = PARTITIONED_CLASSES if partitioned else DENSE_CLASSES
        torch.manual_seed(0)
        model = Net(classes, trunk, penalty)
        aggregator = aggregator_class(weighting)(**options)
        params = [*model.parameters(), *aggregator.parameters()]
        calls = []
        for call in range(CALLS):
            for p in params:
                p.grad = None
            x, y = _share(*_batch(call, partitioned), rank, world, partitioned)
            info = multitask_backward(
                model,
                aggregator,
                x,
                y,
                classes,
                partitioned=partitioned,
                rep_grad=rep_grad,
                want_gram=True,
                reduction=RankReduction(dist),
            )
            record = {
                f"grad.{k}": p.grad.clone()
                for k, p in [*model.named_parameters(), *aggregator.named_parameters()]
                if p.grad is not None
            }
            record.update(weights=info.weights.clone(), losses=info.losses.clone())
            if info.gram is not None:
                record["gram"] = info.gram.clone()
            calls.append(record)
        out[name] = calls
    return out


def _worker(rank: int, world: int, init: str, folder: str) -> None:
    torch.set_num_threads(1)
    torch_dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        torch.save(_run_cases(rank, world), Path(folder) / f"rank{rank}.pt")
    finally:
        torch_dist.destroy_process_group()


def test_every_rank_holds_the_global_batch_gradients_weights_and_state(tmp_path):
    mp.spawn(_worker, args=(WORLD, f"file://{tmp_path / 'rendezvous'}", str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    reference = _run_cases(0, 1)
    for name, calls in reference.items():
        for call, expected in enumerate(calls):
            for rank in range(WORLD):
                got = ranks[rank][name][call]
                assert got.keys() == expected.keys(), (name, call, rank)
                for key, value in expected.items():
                    assert torch.allclose(got[key], value, atol=1e-5, rtol=1e-4), (
                        name,
                        call,
                        rank,
                        key,
                        (got[key] - value).abs().max(),
                    )
                    assert torch.equal(got[key], ranks[0][name][call][key]), (name, call, rank, key)


# -- whole runs, as `--nproc` starts them -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def distributed_runs(tmp_path_factory) -> Path:
    """Every weighting of WEIGHTINGS trained on 2 gloo processes (one start-up for all of them)."""
    folder = tmp_path_factory.mktemp("distributed-mtl")
    train_on_ranks(
        [("mtl-synthetic-affinity", [*WEIGHTINGS[name], *COMMON], str(folder / name)) for name in sorted(WEIGHTINGS)],
        WORLD,
    )
    return folder


def _reference(overrides: list[str], world: int) -> dict[str, object]:
    """One process trained on the global batches: each rank stream's share, joined in rank order."""
    recipe = load("mtl-synthetic-affinity", overrides)
    data = multitask_data(recipe.data, "train")
    model = learner(recipe, data)
    stream = ShardedBatches(
        lambda seed: MultiTaskBatches(data, recipe.mtl.batch_size // world, recipe.mtl.task_batch, seed=seed),
        recipe.train.seed,
        list(range(world)),
    )
    MultiTaskTrainer(model, stream, recipe.train, progress=False).fit()  # type: ignore[arg-type]
    return model.state_dict()


@pytest.mark.parametrize("name", sorted(WEIGHTINGS))
def test_two_processes_end_where_one_does_on_the_same_global_batches(name, distributed_runs):
    overrides = [*WEIGHTINGS[name], *COMMON]
    run = distributed_runs / name
    distributed = load_checkpoint(run / "last.pt")
    samplers = [r["sampler"]["generator"] for r in distributed["ranks"]]
    assert len(samplers) == WORLD and not torch.equal(samplers[0], samplers[1])  # each rank its own stream
    assert (run / "affinity.json").is_file() and (run / "summary.json").is_file()
    model = distributed["model"]
    reference = _reference(overrides, WORLD)
    start = _reference_start(overrides)
    assert model.keys() == reference.keys()
    moved = 0.0
    for key, value in reference.items():  # parameters, and buffers: affinity sums, DWA's windows, step counts
        if torch.is_tensor(value):
            assert torch.allclose(model[key].to(value.dtype), value, atol=1e-5, rtol=1e-5), (
                key,
                (model[key] - value).abs().max(),
            )
        else:  # an aggregator's extra state: PCGrad's and RLW's generators
            assert value.keys() == model[key].keys() and all(
                torch.equal(v, model[key][k]) if torch.is_tensor(v) else v == model[key][k] for k, v in value.items()
            )
        if key.startswith("model.") and value.is_floating_point():
            moved = max(moved, float((value - start[key]).abs().max()))
    assert moved > 1e-2  # the run moved the parameters well beyond the tolerance


def _reference_start(overrides: list[str]) -> dict[str, Tensor]:
    """The parameters every run starts from."""
    recipe = load("mtl-synthetic-affinity", overrides)
    return learner(recipe, multitask_data(recipe.data, "train")).state_dict()


def test_the_global_batch_must_split_evenly_over_the_ranks():
    recipe = load("mtl-synthetic-affinity", ["mtl.batch_size=63"])
    data = multitask_data(recipe.data, "train")
    with pytest.raises(ConfigError, match=r"batch_size .*split evenly over 2"):
        rank_batches(recipe, data, DistContext(0, 2))
    assert rank_batches(recipe, data, DistContext(1, 3)).batch_size == 21
