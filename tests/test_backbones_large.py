"""The real-size image backbones: ResNet-12, WRN and Conv4 at 84x84 (shapes, parameter counts written out from the
architectures), DropBlock against its definition, channels_last against the default layout, MAML's functional inner
loop on ResNet-12 against autograd on the plain module, every learner built through a recipe, and real learning."""

from __future__ import annotations

import copy
import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from polyskill.data import EpisodeSampler
from polyskill.data.classes import ClassDataset
from polyskill.data.episodes import TaskBatch
from polyskill.errors import ConfigError
from polyskill.eval import few_shot
from polyskill.meta import ALGORITHMS, MAML
from polyskill.meta.protonet import PrototypicalNetworks
from polyskill.nn import Backbone, Conv4, DropBlock, FeatureMapBackbone, ResNet12, WideResNet, drop_block
from polyskill.recipes import kind_of, recipe_from_dict
from polyskill.train import fit

NARROW = (8, 16, 32, 64)


def resnet12_parameters(in_channels: int, widths: tuple[int, ...]) -> int:
    """Per block: three 3x3 convolutions without bias, three batch norms, a 1x1 shortcut with its batch norm."""
    total = 0
    for a, b in zip((in_channels, *widths[:-1]), widths, strict=True):
        total += 9 * a * b + 2 * 9 * b * b + 3 * 2 * b + a * b + 2 * b
    return total


def wrn_parameters(depth: int, widen: int, in_channels: int = 3) -> int:
    """Stem conv3x3 to 16; per block BN, conv3x3, BN, conv3x3 and, where the width or stride changes, a 1x1
    shortcut; a final BN."""
    n, channels, total = (depth - 4) // 6, 16, 9 * in_channels * 16
    for group, width in enumerate((16 * widen, 32 * widen, 64 * widen)):
        for i in range(n):
            shortcut = i == 0 and (channels != width or group > 0)
            total += 2 * channels + 9 * channels * width + 2 * width + 9 * width * width
            total += channels * width if shortcut else 0
            channels = width
    return total + 2 * channels


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# -- shapes and sizes -------------------------------------------------------------------------------------------
@torch.no_grad()
def test_full_size_backbones_have_the_papers_shapes_and_parameter_counts():
    resnet, wrn = ResNet12().eval(), WideResNet().eval()
    x = torch.rand(1, 3, 84, 84)
    assert resnet(x).shape == (1, 640) and resnet.feature_maps(x).shape == (1, 640, 5, 5)
    assert resnet.feature_shape == (640, 5, 5) and resnet.embedding_dim == 640
    small = torch.rand(1, 3, 16, 16)  # WRN-28-10 at 84x84 costs 80 GFLOPs an image: its side is checked narrow below
    assert wrn(small).shape == (1, 640) and wrn.feature_maps(small).shape == (1, 640, 4, 4)
    assert wrn.feature_shape == (640, 21, 21) and wrn.embedding_dim == 640
    assert count(resnet) == resnet12_parameters(3, (64, 160, 320, 640)) == 12_424_320  # "12.4 M"
    assert count(wrn) == wrn_parameters(28, 10) == 36_472_784  # "36.5 M" (36,479,194 with CIFAR's 10-way head)
    assert isinstance(resnet, FeatureMapBackbone) and isinstance(wrn, FeatureMapBackbone)


@pytest.mark.parametrize("size", [84, 32])
def test_narrow_backbones_compute_the_declared_shapes(size):
    torch.manual_seed(0)
    x = torch.rand(3, 3, size, size)
    side = size // 16  # four 2x2 poolings
    resnet = ResNet12(widths=NARROW, image_size=size).eval()
    assert resnet.feature_shape == (64, side, side) and resnet.feature_maps(x).shape == (3, 64, side, side)
    assert torch.allclose(resnet(x), resnet.feature_maps(x).mean((2, 3)))  # the global average pool
    assert ResNet12(widths=NARROW, out_features=7, image_size=size)(x).shape == (3, 7)
    assert count(resnet) == resnet12_parameters(3, NARROW)
    wrn = WideResNet(depth=10, widen=1, image_size=size).eval()
    wide_side = math.ceil(math.ceil(size / 2) / 2)  # strides 1, 2, 2 with padding 1
    assert wrn.feature_shape == (64, wide_side, wide_side) and wrn.feature_maps(x).shape == (
        3,
        64,
        wide_side,
        wide_side,
    )
    assert wrn(x).shape == (3, 64) and WideResNet(10, 1, out_features=7, image_size=size)(x).shape == (3, 7)
    assert count(wrn) == wrn_parameters(10, 1) and count(WideResNet(16, 2)) == wrn_parameters(16, 2)


def test_conv4_at_84x84_colour_gives_the_papers_1600_features():
    x = torch.rand(2, 3, 84, 84)
    for hidden, features in ((64, 1600), (32, 800)):  # MAML's miniImageNet Conv4 has 32 filters, ProtoNet's 64
        net = Conv4(in_channels=3, hidden=hidden, image_size=84)
        assert net.feature_shape == (hidden, 5, 5) and net.embedding_dim == features and net(x).shape == (2, features)
    assert Conv4(in_channels=3, out_features=5, image_size=84)(x).shape == (2, 5)


def test_sizes_and_options_a_network_cannot_have_are_refused():
    for bad, message in (
        (lambda: ResNet12(image_size=15), "too small"),
        (lambda: ResNet12(widths=(8, 8, 8)), "4 positive widths"),
        (lambda: ResNet12(drop_block=True), "drop_rate > 0"),
        (lambda: WideResNet(depth=27), "depth = 6n"),
        (lambda: WideResNet(drop_rate=1.0), "drop_rate must be"),
    ):
        with pytest.raises(ValueError, match=message):
            bad()


# -- DropBlock ---------------------------------------------------------------------------------------------------
def test_dropblock_drops_whole_blocks_at_the_rate_of_its_definition():
    torch.manual_seed(0)
    maps, side, size, rate = 4096, 10, 5, 0.1
    out = drop_block(torch.ones(maps, 1, side, side), rate, size)
    dropped = out == 0
    # every dropped unit lies in a fully dropped size x size square inside the map (a union of blocks)
    for m in range(64):
        d = dropped[m, 0]
        covered = torch.zeros_like(d)
        for i, j in itertools.product(range(side - size + 1), repeat=2):
            if d[i : i + size, j : j + size].all():
                covered[i : i + size, j : j + size] = True
        assert torch.equal(covered, d)
    # expected fraction: unit p is kept iff none of the k_p seeds whose block covers it fires, each with the paper's
    # gamma = rate / size^2 * side^2 / (side - size + 1)^2
    gamma = rate / size**2 * side**2 / (side - size + 1) ** 2
    k = torch.zeros(side, side)
    for i, j in itertools.product(range(side - size + 1), repeat=2):
        k[i : i + size, j : j + size] += 1
    expected = 1 - ((1 - gamma) ** k).mean()
    assert abs(dropped.float().mean() - expected) < 0.012  # sd of the mean over 4096 maps is about 0.004
    assert abs(expected - rate) < 0.02  # the rate asked for, up to the overlap of blocks
    # the kept units are scaled by count / count_ones, so the total is preserved
    kept = out[~dropped]
    assert torch.allclose(kept, torch.full_like(kept, dropped.numel() / (~dropped).sum().item()))
    assert torch.isclose(out.sum(), torch.tensor(float(out.numel())), rtol=1e-5)


def test_dropblock_module_is_off_in_eval_and_ramps_its_rate_as_metaoptnet():
    block = DropBlock(0.1, block_size=5, schedule=40000)
    x = torch.rand(2, 3, 10, 10)
    assert torch.equal(block.eval()(x), x)
    block.train()
    assert block.rate() == pytest.approx(0.1 / 40000)  # MetaOptNet: keep = max(1 - 0.1 / 40000 * n, 0.9), n = 1
    block(x)
    block(x)
    assert block.count == 2 and block.rate() == pytest.approx(0.1 * 3 / 40000)
    net = ResNet12(widths=NARROW, image_size=32, drop_rate=0.1, drop_block=True).train()
    net(torch.rand(2, 3, 32, 32))
    state = net.state_dict()  # the pass count is checkpointed with the network and read back
    assert int(state["blocks.3.drop.passes"]) == 1
    fresh = ResNet12(widths=NARROW, image_size=32, drop_rate=0.1, drop_block=True)
    fresh.load_state_dict(state)
    assert fresh.blocks[3].drop.count == 1
    block.count = 10**6
    assert block.rate() == pytest.approx(0.1)
    assert torch.equal(DropBlock(0.0).train()(x), x)


def test_resnet12_places_dropout_and_dropblock_as_metaoptnet():
    net = ResNet12(widths=NARROW, image_size=32, drop_rate=0.1, drop_block=True)
    kinds = [type(block.drop).__name__ for block in net.blocks]
    assert kinds == ["Dropout", "Dropout", "DropBlock", "DropBlock"]
    assert [type(b.drop).__name__ for b in ResNet12(widths=NARROW, drop_rate=0.1).blocks] == ["Dropout"] * 4
    assert all(isinstance(b.drop, torch.nn.Identity) for b in ResNet12(widths=NARROW).blocks)


# -- layout ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make",
    [
        lambda cl: ResNet12(widths=NARROW, image_size=32, channels_last=cl),
        lambda cl: WideResNet(10, 2, image_size=32, channels_last=cl),
    ],
)
def test_channels_last_gives_the_same_outputs_and_gradients(make):
    torch.manual_seed(0)
    dense, last = make(False), make(True)
    last.load_state_dict(dense.state_dict())
    conv = next(m for m in last.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) and conv.weight.shape[1] > 1
    x = torch.rand(4, 3, 32, 32)
    for mode in ("train", "eval"):
        getattr(dense, mode)(), getattr(last, mode)()
        a, b = dense(x), last(x)
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5)
    a.sum().backward()
    b.sum().backward()
    for (name, p), q in zip(dense.named_parameters(), last.parameters(), strict=True):
        assert torch.allclose(p.grad, q.grad, atol=1e-4, rtol=1e-4), name


# -- MAML's functional inner loop ---------------------------------------------------------------------------------
def tasks(n: int = 2, way: int = 3, shot: int = 2, query: int = 2, size: int = 16, seed: int = 0) -> TaskBatch:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(way)
    return TaskBatch(
        torch.rand(n, way * shot, 3, size, size, generator=g),
        labels.repeat_interleave(shot).expand(n, -1).clone(),
        torch.rand(n, way * query, 3, size, size, generator=g),
        labels.repeat_interleave(query).expand(n, -1).clone(),
        way,
    )


def reference_meta_gradient(net, batch, lr, first_order, adapt):
    """MAML's meta-gradient written out with autograd on the plain module in training mode (batch norm on each
    task's batch statistics): one inner step on the support loss, then the mean query loss over tasks."""
    params = dict(net.named_parameters())
    total = 0.0
    for b in range(len(batch)):
        loss = F.cross_entropy(functional_call(net, params, (batch.support_x[b],)), batch.support_y[b])
        names = [n for n in params if adapt(n)]
        grads = torch.autograd.grad(loss, [params[n] for n in names], create_graph=not first_order)
        adapted = {**params, **{n: params[n] - lr * g for n, g in zip(names, grads, strict=True)}}
        total = total + F.cross_entropy(functional_call(net, adapted, (batch.query_x[b],)), batch.query_y[b])
    return dict(zip(params, torch.autograd.grad(total / len(batch), list(params.values())), strict=True))


@pytest.mark.parametrize(
    "options",
    [
        {"vectorize": "vmap", "query_pass": "vmap"},
        {"vectorize": "loop", "query_pass": "loop"},
        {"first_order": True},
        {"head_only": True},
    ],
    ids=["second-order-vmap", "second-order-loop", "first-order", "anil"],
)
def test_maml_on_resnet12_matches_autograd_on_the_plain_module(options):
    torch.manual_seed(0)
    net = ResNet12(widths=(4, 8, 8, 8), out_features=3, image_size=16, channels_last=True).double()
    reference = copy.deepcopy(net).train()
    batch = tasks()
    batch = TaskBatch(batch.support_x.double(), batch.support_y, batch.query_x.double(), batch.query_y, batch.way)
    algo = MAML(net, inner_lr=0.3, inner_steps=1, **options)
    algo.meta_backward(batch)
    adapt = (lambda n: n.startswith("head.")) if options.get("head_only") else (lambda n: True)
    expected = reference_meta_gradient(reference, batch, 0.3, options.get("first_order", False), adapt)
    got = {n: p.grad for n, p in algo.inner.model.named_parameters()}
    assert set(got) == set(expected)
    for name, g in expected.items():
        assert torch.allclose(got[name], g, atol=1e-9, rtol=1e-6), name
    assert expected["blocks.0.conv1.weight"].abs().sum() > 0


def test_maml_runs_resnet12_with_dropblock_in_its_inner_loop():
    torch.manual_seed(0)
    net = ResNet12(widths=(4, 8, 8, 8), out_features=3, image_size=16, drop_rate=0.1, drop_block=True, block_size=2)
    algo = MAML(net, inner_lr=0.3, inner_steps=2, vectorize="vmap", query_pass="vmap")
    metrics = algo.meta_backward(tasks())
    assert torch.isfinite(metrics["loss"]) and all(p.grad is not None for p in algo.parameters())
    assert net.blocks[2].drop.count > 0  # counted through the torch.func transforms
    assert algo.predict(tasks(seed=1)).shape == (2, 6, 3)


def test_maml_adapts_the_modules_it_is_told_and_leaves_the_others_at_the_initialisation():
    """`adapt: [blocks.3, head]`: the last residual block and the head take inner steps; every other parameter of
    the adapted network is the meta-parameter itself (one inner step checked against the update equation)."""
    torch.manual_seed(0)
    net = ResNet12(widths=(4, 4, 4, 4), out_features=3, image_size=16)
    algo = MAML(net, inner_lr=0.3, inner_steps=1, adapt=["blocks.3", "head"], vectorize="loop")
    names = algo.inner.adapt_names
    assert names and all(n.startswith(("blocks.3.", "head.")) for n in names)
    assert {n for n, _ in net.named_parameters() if n.startswith(("blocks.3.", "head."))} == set(names)
    batch = tasks()
    params = dict(net.named_parameters())
    [adapted] = algo.inner.adapt(params, (batch.support_x[:1], batch.support_y[:1]))
    loss = F.cross_entropy(functional_call(net, params, (batch.support_x[0],)), batch.support_y[0])
    grads = dict(zip(names, torch.autograd.grad(loss, [params[n] for n in names]), strict=True))
    for name in names:
        torch.testing.assert_close(adapted[name][0], params[name] - 0.3 * grads[name], rtol=1e-4, atol=1e-5)
    assert all(adapted.get(n, params[n]) is params[n] for n in params if n not in grads)
    with pytest.raises(ValueError, match=r"'blocks\.9' names no parameters of the network \(its modules: blocks, head"):
        MAML(net, adapt=["blocks.9"])
    with pytest.raises(ValueError, match="give head_only or adapt, not both"):
        MAML(net, adapt=["head"], head_only=True)


# -- recipes -----------------------------------------------------------------------------------------------------
MODELS = {
    "resnet12": {"backbone": "resnet12", "widths": [4, 8, 8, 16], "drop_rate": 0.1, "drop_block": True},
    "wrn": {"backbone": "wrn", "depth": 10, "widen": 1},
    "conv4": {"backbone": "conv4", "hidden": 8},
}


def recipe(model: dict, algo: dict, size: int = 84) -> object:
    return recipe_from_dict(
        {
            "kind": "fewshot",
            "data": {"dataset": "folder", "train": "x", "val": None, "test": "x", "image_size": size, "channels": 3},
            "model": model,
            "algo": algo,
            "episodes": {"way": 5, "shot": 1, "query": 2},
        }
    )


@pytest.mark.parametrize("backbone", sorted(MODELS))
def test_every_learner_builds_on_each_backbone_through_a_recipe(backbone):
    for name, cls in ALGORITHMS.items():
        options = {"name": name, "num_classes": 10} if "num_classes" in cls.contract.builder_args else {"name": name}
        r = recipe(MODELS[backbone], options)
        algo = kind_of(r).model(r)
        assert sum(p.numel() for p in algo.parameters()) > 0, name
    batch = tasks(n=1, way=5, shot=1, query=2, size=84)
    for options in ({"name": "protonet"}, {"name": "maml", "first_order": True}, {"name": "maml", "head_only": True}):
        r = recipe(MODELS[backbone], options)
        algo = kind_of(r).model(r)
        with torch.no_grad():
            assert algo.eval().predict(batch).shape == (1, 10, 5)
        head = getattr(getattr(algo, "backbone", None), "head", None)
        assert (head is not None) == (options["name"] == "maml")


def test_the_default_resnet12_recipe_is_metaoptnets_network():
    r = recipe({"backbone": "resnet12", "drop_rate": 0.1, "drop_block": True}, {"name": "protonet"})
    net = kind_of(r).model(r).backbone
    assert isinstance(net, ResNet12) and isinstance(net, Backbone) and net.embedding_dim == 640
    assert count(net) == resnet12_parameters(3, (64, 160, 320, 640))


def build(model: dict, algo: str, size: int) -> None:
    r = recipe(model, {"name": algo}, size)
    kind_of(r).model(r)


@pytest.mark.parametrize(
    "model, algo, size, message",
    [
        (
            {"backbone": "resnet12", "hidden": 64},
            "protonet",
            84,
            "model.hidden is a setting of model.backbone conv4 or mlp, not resnet12; .* 'model=.backbone: resnet12.'",
        ),
        (
            {"backbone": "conv4", "drop_block": True},
            "protonet",
            84,
            "model.drop_block is a setting of model.backbone resnet12,",
        ),
        (
            {"backbone": "wrn", "widths": [8]},
            "protonet",
            84,
            "model.widths is a setting of model.backbone conv4 or mlp or resnet12,",
        ),
        ({"backbone": "wrn", "nosuch": 1}, "protonet", 84, "unknown key 'model.nosuch'"),
        ({"backbone": "wrn", "depth": 27}, "protonet", 84, "model.depth must be 6n \\+ 4"),
        ({"backbone": "resnet12", "drop_block": True}, "protonet", 84, "set drop_rate > 0"),
        ({"backbone": "resnet12", "widths": [8, 8]}, "protonet", 84, "4 blocks"),
        ({"backbone": "resnet12", "drop_rate": 1.5}, "protonet", 84, "drop_rate must be in"),
        ({"backbone": "mlp"}, "relation", 84, "needs model.backbone conv4, resnet12 or wrn"),
        ({"backbone": "resnet12"}, "protonet", 12, "too small"),
        ({"backbone": "wrn", "depth": 100000}, "protonet", 84, "model.depth must be <= 1000"),
        # built without storage first: refused in one line, not allocated until the system kills the process
        ({"backbone": "mlp", "widths": [10**6] * 3}, "maml", 84, r"[\d,]+ M parameters need at least [\d,]+ GiB"),
    ],
)
def test_bad_backbone_options_are_one_config_error(model, algo, size, message):
    with pytest.raises(ConfigError, match=message) as caught:
        build(model, algo, size)
    assert "\n" not in str(caught.value)


# -- learning -------------------------------------------------------------------------------------------------------
def stripes(classes: int, per_class: int, seed: int, size: int = 84) -> ClassDataset:
    """Colour stripe classes: a class is an orientation and a frequency (2-8 cycles per image); each image has its
    own phase, its own colour (a gain per RGB channel) and noise."""
    g = torch.Generator().manual_seed(seed)
    theta = (torch.rand(classes, generator=g) * math.pi).view(-1, 1, 1, 1)
    freq = (2 + 6 * torch.rand(classes, generator=g)).view(-1, 1, 1, 1)
    ys, xs = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    phase = torch.rand(classes, per_class, 1, 1, generator=g) * 2 * math.pi
    wave = torch.sin(2 * math.pi * freq * (xs * torch.cos(theta) + ys * torch.sin(theta)) + phase)
    colour = 0.3 + 0.7 * torch.rand(classes, per_class, 3, 1, 1, generator=g)
    noise = 0.05 * torch.randn(classes, per_class, 3, size, size, generator=g)
    return ClassDataset((0.5 + 0.4 * colour * wave.unsqueeze(2) + noise).clamp(0, 1), [str(c) for c in range(classes)])


def test_protonet_on_a_narrow_resnet12_learns_colour_stripes_at_84x84():
    """25 real training episodes on 32 classes, judged on 10 unseen classes."""
    torch.manual_seed(0)
    train, test = stripes(32, 8, seed=0), stripes(10, 8, seed=1)
    algo = PrototypicalNetworks(ResNet12(widths=NARROW, image_size=84, channels_last=True))
    untrained = few_shot(algo, test, way=5, shot=1, query=3, episodes=15, seed=0).accuracy
    fit(
        algo, EpisodeSampler(train, way=5, shot=1, query=3, seed=0), steps=25, lr=5e-3, progress=False, precision="fp32"
    )
    trained = few_shot(algo, test, way=5, shot=1, query=3, episodes=15, seed=0).accuracy
    assert trained > 0.65, trained  # chance is 20%; observed 0.827 (untrained 0.533) on 2026-12-03
    assert trained > untrained + 0.15
