"""Multi-task architectures: outputs, the shared/task parameter split, torch.func compatibility, each
architecture's defining property checked against an independent computation, and real learning."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
from torch import nn

from polyskill.errors import ConfigError
from polyskill.mtl.architectures import ARCHITECTURE_NAMES, architecture_class
from polyskill.mtl.architectures.cgc import CGC
from polyskill.mtl.architectures.common import check_partition
from polyskill.mtl.architectures.cross_stitch import CrossStitch
from polyskill.mtl.architectures.dselect_k import DSelectK
from polyskill.mtl.architectures.hard_sharing import HardSharing
from polyskill.mtl.architectures.ltb import LTB
from polyskill.mtl.architectures.mmoe import MMoE
from polyskill.mtl.architectures.mtan import MTAN
from polyskill.mtl.architectures.ple import PLE
from polyskill.mtl.architectures.single_task import SingleTask
from polyskill.mtl.architectures.sluice import Sluice
from polyskill.mtl.architectures.soft_sharing import SoftSharing
from polyskill.nn import LeNetEncoder, lenet_head

TASKS = ("a", "b")
CLASSES = {"a": 3, "b": 2, "c": 4}
IN = 6


def mlp_encoder() -> nn.Sequential:
    """Three stages of width 16."""
    return nn.Sequential(
        nn.Sequential(nn.Linear(IN, 16), nn.ReLU()),
        nn.Sequential(nn.Linear(16, 16), nn.ReLU()),
        nn.Sequential(nn.Linear(16, 16), nn.ReLU()),
    )


def mlp_head(task: str) -> nn.Module:
    return nn.Linear(16, CLASSES[task])


def lenet_task_head(task: str) -> nn.Module:
    return lenet_head(CLASSES[task])


SETUPS = {"mlp": (mlp_encoder, mlp_head, (IN,)), "lenet": (LeNetEncoder, lenet_task_head, (1, 28, 28))}


def build(name: str, setup: str, tasks=TASKS, **options):
    torch.manual_seed(0)
    encoder, head, shape = SETUPS[setup]
    return architecture_class(name)(tasks, encoder, head, shape, **options)


def batch(setup: str, n: int = 5, lead: tuple[int, ...] = ()) -> torch.Tensor:
    return torch.randn(*lead, n, *SETUPS[setup][2], generator=torch.Generator().manual_seed(1))


def independent(model, setup: str) -> dict[str, tuple[nn.Module, nn.Module]]:
    """Separately built towers and heads carrying the model's tower and head weights."""
    encoder, head, _ = SETUPS[setup]
    nets = {}
    for task in model.tasks:
        tower, task_head = encoder(), head(task)
        tower.load_state_dict(model.towers[task].state_dict())
        task_head.load_state_dict(model.heads[task].state_dict())
        nets[task] = (tower, task_head)
    return nets


@pytest.fixture(autouse=True)
def one_thread():
    """These models are tiny: a second intra-op thread only adds synchronisation (and contention)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def randomize(params, scale: float = 0.3, seed: int = 2) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in params:
            p.add_(scale * torch.randn(p.shape, generator=g))


# -- every architecture ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("setup", SETUPS)
@pytest.mark.parametrize("name", ARCHITECTURE_NAMES)
def test_outputs_and_parameter_partition(name, setup):
    model = build(name, setup, tasks=("a", "b", "c"))
    out = model(batch(setup))
    assert list(out) == ["a", "b", "c"]
    for task, y in out.items():
        assert y.shape == (5, CLASSES[task]) and torch.isfinite(y).all()
    shared = [id(p) for p in model.shared_parameters()]
    owned = [id(p) for task in model.tasks for p in model.task_parameters(task)]
    everything = [id(p) for p in model.parameters()]
    assert len(shared) + len(owned) == len(everything)
    assert set(shared) | set(owned) == set(everything) and not set(shared) & set(owned)
    for t, u in itertools.combinations(model.tasks, 2):
        assert not {id(p) for p in model.task_parameters(t)} & {id(p) for p in model.task_parameters(u)}
    check_partition(model)
    if name in ("single", "soft"):
        assert model.shared_parameters() == []
    else:
        assert shared


@pytest.mark.parametrize("setup", SETUPS)
@pytest.mark.parametrize("name", ARCHITECTURE_NAMES)
def test_functional_call_and_vmap(name, setup):
    model = build(name, setup)
    x = batch(setup)
    params = {n: p.detach() + 0.1 * torch.randn_like(p) for n, p in model.named_parameters()}
    reference = copy.deepcopy(model)
    with torch.no_grad():
        for n, p in reference.named_parameters():
            p.copy_(params[n])
    got = torch.func.functional_call(model, params, (x,))
    want = reference(x)
    for task in TASKS:
        torch.testing.assert_close(got[task], want[task], rtol=0, atol=1e-6)
    xs = batch(setup, n=3, lead=(2,))
    stacked = torch.func.vmap(model)(xs)
    for task in TASKS:
        torch.testing.assert_close(stacked[task], torch.stack([model(x_)[task] for x_ in xs]), rtol=1e-5, atol=1e-6)


def test_partition_check_names_offenders():
    class Leaky(HardSharing):
        def task_parameters(self, task):
            return [*super().task_parameters(task), *self.encoder[0].parameters()]

    class Forgetful(HardSharing):
        def shared_parameters(self):
            return super().shared_parameters()[1:]

    leaky = Leaky(TASKS, mlp_encoder, mlp_head, (IN,))
    with pytest.raises(ValueError, match=r"encoder\.0\.0\.weight is listed as \['shared', 'a', 'b'\]"):
        check_partition(leaky)
    with pytest.raises(ValueError, match=r"encoder\.0\.0\.weight is neither shared nor owned"):
        check_partition(Forgetful(TASKS, mlp_encoder, mlp_head, (IN,)))


def test_representation():
    x = batch("mlp")
    hps = build("hps", "mlp")
    rep, out = hps.forward_with_representation(x)
    torch.testing.assert_close(rep, hps.encoder(x))
    for task in TASKS:
        torch.testing.assert_close(out[task], hps.heads[task](rep))
    for name in ("single", "soft", "cross_stitch", "sluice", "mtan"):
        with pytest.raises(ValueError, match="no single shared representation"):
            build(name, "mlp").forward_with_representation(x)


@pytest.mark.parametrize(
    "name, options, message",
    [
        ("soft", {"penalty": -1.0}, "soft: option penalty must be a finite number >= 0"),
        ("cross_stitch", {"init": "eye"}, "cross_stitch: option init must be one of"),
        ("cross_stitch", {"alpha_self": 1.5}, "cross_stitch: option alpha_self must be a number in"),
        ("cross_stitch", {"per_channel": "yes"}, "cross_stitch: option per_channel must be true or false"),
        ("sluice", {"subspaces": 0}, "sluice: option subspaces must be an integer >= 1"),
        ("sluice", {"subspaces": 3}, "must divide the channel count of every stage but the last, and stage 0 has 16"),
        ("sluice", {"beta_init": "first"}, "sluice: option beta_init must be one of"),
        ("sluice", {"orthogonality": float("nan")}, "sluice: option orthogonality must be a finite number"),
        ("mmoe", {"experts": 0}, "mmoe: option experts must be an integer >= 1"),
        ("mtan", {"attention_layers": 3}, "mtan: option attention_layers must be 1 or 2"),
    ],
)
def test_bad_options(name, options, message):
    with pytest.raises(ConfigError, match=message):
        build(name, "mlp", **options)


@pytest.mark.parametrize("name", ARCHITECTURE_NAMES)
def test_bad_construction(name):
    cls = architecture_class(name)
    with pytest.raises(ConfigError, match="tasks must be a non-empty list"):
        cls([], mlp_encoder, mlp_head, (IN,))
    with pytest.raises(ConfigError, match="task names must be distinct"):
        cls(["a", "a"], mlp_encoder, mlp_head, (IN,))
    with pytest.raises(ConfigError, match=r"task name 'x\.y' is not usable"):
        cls(["x.y"], mlp_encoder, mlp_head, (IN,))
    with pytest.raises(ConfigError, match=r"encoder stage 0 \(Sequential\) does not accept inputs of shape \(7,\)"):
        cls(TASKS, mlp_encoder, mlp_head, (7,))
    with pytest.raises(ConfigError, match=r"encoder\(\) must return an nn\.Sequential"):
        cls(TASKS, lambda: nn.Linear(IN, 16), mlp_head, (IN,))
    with pytest.raises(ConfigError, match=r"head\('a'\) does not accept inputs of shape \(16,\)"):
        cls(TASKS, mlp_encoder, lambda task: nn.Linear(15, 2), (IN,))


def test_lenet():
    encoder = LeNetEncoder()
    assert len(encoder) == 3
    x = torch.randn(2, 1, 28, 28)
    shapes = []
    for stage in encoder:
        x = stage(x)
        shapes.append(tuple(x.shape[1:]))
    assert shapes == [(10, 12, 12), (20, 4, 4), (50,)]
    assert encoder[2][1].in_features == 320
    big = LeNetEncoder(in_channels=3, image_size=36)
    assert big(torch.randn(2, 3, 36, 36)).shape == (2, 50) and big[2][1].in_features == 20 * 6 * 6
    assert lenet_head(7)(torch.randn(2, 50)).shape == (2, 7)
    with pytest.raises(ConfigError, match="at least 16x16"):
        LeNetEncoder(image_size=15)


# -- each architecture's defining property ---------------------------------------------------------------------


@pytest.mark.parametrize("setup", SETUPS)
def test_single_task_is_independent_networks(setup):
    model = build("single", setup)
    x = batch(setup)
    out = model(x)
    for task, (tower, head) in independent(model, setup).items():
        assert torch.equal(out[task], head(tower(x)))


@pytest.mark.parametrize("per_channel", [True, False])
@pytest.mark.parametrize("setup", SETUPS)
def test_cross_stitch_identity_is_independent_networks(setup, per_channel):
    model = build("cross_stitch", setup, per_channel=per_channel)
    x = batch(setup)
    out = model(x)
    for task, (tower, head) in independent(model, setup).items():
        # the identity mix is exact, but it leaves strided views, and a linear layer on those may round its sums
        # differently (AVX-512: 3e-8 apart); any real mixing moves the outputs by orders of magnitude more
        torch.testing.assert_close(out[task], head(tower(x)), rtol=1e-6, atol=1e-6)


def test_cross_stitch_mixing_by_hand():
    model = build("cross_stitch", "mlp", tasks=("a", "b", "c"))
    assert [tuple(u.shape) for u in model.units] == [(16, 3, 3), (16, 3, 3)]
    randomize(model.units)
    x = batch("mlp")
    features = dict.fromkeys(model.tasks, x)
    for s in range(3):
        outs = {task: model.towers[task][s](features[task]) for task in model.tasks}
        if s < 2:
            unit = model.units[s]
            for t, task in enumerate(model.tasks):
                columns = [
                    sum(unit[c, t, u] * outs[other][:, c] for u, other in enumerate(model.tasks)) for c in range(16)
                ]
                features[task] = torch.stack(columns, dim=1)
        else:
            features = outs
    got = model(x)
    for task in model.tasks:
        torch.testing.assert_close(got[task], model.heads[task](features[task]))
    mixed = build("cross_stitch", "mlp", tasks=("a", "b", "c"), init="mixed", per_channel=False)
    torch.testing.assert_close(mixed.units[0], torch.tensor([[0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.05, 0.05, 0.9]]))


@pytest.mark.parametrize("setup", SETUPS)
def test_sluice_reduces_to_independent_networks(setup):
    model = build("sluice", setup)
    assert model.combined == ([0, 1, 2] if setup == "mlp" else [2])
    x = batch(setup)
    out = model(x)
    for task, (tower, head) in independent(model, setup).items():
        assert torch.equal(out[task], head(tower(x)))


def test_sluice_mixing_beta_and_orthogonality_by_hand():
    model = build("sluice", "mlp", subspaces=2, beta_init="uniform", orthogonality=0.01)
    assert [tuple(a.shape) for a in model.alphas] == [(4, 4), (4, 4)]
    torch.testing.assert_close(model.betas["a"], torch.full((3,), 1 / 3))
    randomize([*model.alphas, *model.betas.values()])
    x = batch("mlp")
    features = dict.fromkeys(TASKS, x)
    recorded = {task: [] for task in TASKS}
    ortho = torch.zeros(())
    for s in range(3):
        outs = {task: model.towers[task][s](features[task]) for task in TASKS}
        if s < 2:
            chunks = [outs[task][:, k * 8 : (k + 1) * 8] for task in TASKS for k in range(2)]  # index t * K + k
            for task in TASKS:
                ortho = ortho + (outs[task][:, :8].T @ outs[task][:, 8:]).pow(2).sum()
            alpha = model.alphas[s]
            mixed = [sum(alpha[i, j] * chunks[j] for j in range(4)) for i in range(4)]
            features = {task: torch.cat(mixed[2 * t : 2 * t + 2], dim=1) for t, task in enumerate(TASKS)}
        else:
            features = outs
        for task in TASKS:
            recorded[task].append(features[task])
    got = model(x)
    for task in TASKS:
        z = sum(model.betas[task][s] * recorded[task][s] for s in range(3))
        torch.testing.assert_close(got[task], model.heads[task](z))
    torch.testing.assert_close(model.penalty(), 0.01 * ortho)
    assert model.penalty().requires_grad
    copy.deepcopy(model)  # the recorded term is not part of the model's state
    torch.func.vmap(model)(batch("mlp", lead=(2,)))
    assert model.penalty() is None  # a forward under vmap records nothing
    assert build("sluice", "mlp").penalty() is None


def test_mmoe_gates_and_reductions():
    model = build("mmoe", "mlp", experts=3)
    x = batch("mlp")
    gates = model.gate_weights(x)
    for g in gates.values():
        assert g.shape == (5, 3) and (g >= 0).all()
        torch.testing.assert_close(g.sum(-1), torch.ones(5))
    rep, out = model.forward_with_representation(x)
    assert rep.shape == (3, 5, 16)
    for task in TASKS:
        z = sum(gates[task][:, e : e + 1] * model.experts[e](x) for e in range(3))
        torch.testing.assert_close(out[task], model.heads[task](z))
        torch.testing.assert_close(model(x)[task], out[task])
    single = build("mmoe", "mlp", experts=1)
    hps = build("hps", "mlp")
    hps.encoder.load_state_dict(single.experts[0].state_dict())
    hps.heads.load_state_dict(single.heads.state_dict())
    randomize(single.gates.parameters())
    got, want = single(x), hps(x)
    for task in TASKS:
        assert torch.equal(got[task], want[task])


def test_soft_sharing_penalty():
    model = build("soft", "mlp", tasks=("a", "b", "c"), penalty=0.1)
    towers = [dict(model.towers[task].named_parameters()) for task in model.tasks]
    want = sum(
        (towers[t][n] - towers[u][n]).pow(2).sum() for t, u in itertools.combinations(range(3), 2) for n in towers[0]
    )
    torch.testing.assert_close(model.penalty(), 0.1 * want)
    for task in ("b", "c"):
        model.towers[task].load_state_dict(model.towers["a"].state_dict())
    assert model.penalty().abs().item() < 1e-12
    assert build("soft", "mlp", penalty=0).penalty() is None


def test_mtan_by_hand():
    model = build("mtan", "mlp", attention_layers=1)
    assert isinstance(model.attention["a"][1][0], nn.Linear) and model.attention["a"][1][0].in_features == 32
    x = batch("mlp")
    h = x
    features = {}
    for s, stage in enumerate(model.trunk):
        h = stage(h)
        for task in TASKS:
            g = model.attention[task][s][0]
            inputs = h if s == 0 else torch.cat([h, stage(features[task])], dim=1)
            features[task] = torch.sigmoid(inputs @ g.weight.T + g.bias) * h
    got = model(x)
    for task in TASKS:
        torch.testing.assert_close(got[task], model.heads[task](features[task]))
    conv = build("mtan", "lenet")
    first, second = conv.attention["a"][0], conv.attention["a"][1]
    assert isinstance(first[0], nn.Conv2d) and first[0].kernel_size == (1, 1) and first[0].in_channels == 10
    assert second[0].in_channels == 40 and second[2].out_channels == 20 and isinstance(second[1], nn.ReLU)


# -- learning ----------------------------------------------------------------------------------------------------


def two_tasks(n: int, seed: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Task a: which of three linear scores is largest (3 classes); task b: whether x0 * x1 > 0 (XOR-like)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, IN, generator=g)
    w = torch.randn(IN, 3, generator=torch.Generator().manual_seed(0))
    return x, {"a": (x @ w).argmax(1), "b": (x[:, 0] * x[:, 1] > 0).long()}


@pytest.mark.parametrize("name", ARCHITECTURE_NAMES)
def test_learns_two_tasks(name):
    model = build(name, "mlp")
    x, y = two_tasks(256, seed=1)
    x_test, y_test = two_tasks(1000, seed=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    initial = None
    for _ in range(250):
        out = model(x)
        losses = {task: nn.functional.cross_entropy(out[task], y[task]) for task in TASKS}
        if initial is None:
            initial = {task: loss.item() for task, loss in losses.items()}
        loss = sum(losses.values())
        penalty = model.penalty()
        if penalty is not None:
            loss = loss + penalty
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        out = model(x_test)
    for task, chance in (("a", 1 / 3), ("b", 1 / 2)):
        assert losses[task].item() < 0.4 * initial[task], (task, initial[task], losses[task].item())
        accuracy = (out[task].argmax(1) == y_test[task]).float().mean().item()
        assert accuracy > chance + 0.3, (task, accuracy)


def test_registry_names_each_class():
    expected = [HardSharing, SingleTask, SoftSharing, CrossStitch, Sluice, MMoE, MTAN, CGC, PLE, DSelectK, LTB]
    assert [architecture_class(name) for name in ARCHITECTURE_NAMES] == expected
