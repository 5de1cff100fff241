"""The task-conditioned meta-learner: set encoder invariance, positive rates, exact reduction to MAML, FiLM
on parameters against FiLM on activations, gradient flow, and task embeddings that tell families apart."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.func import functional_call

from polyskill.data.episodes import TaskBatch
from polyskill.data.multimodal import FAMILIES, MultimodalTasks
from polyskill.meta import MAML, TaskConditioned
from polyskill.meta.strategy import StrategyGenerator
from polyskill.meta.task_encoder import TaskEncoder, holdout_mask
from polyskill.nn import Conv4
from polyskill.nn.film import film_sites, modulate
from polyskill.nn.mlp import MLP
from polyskill.train.task_selection import rank_by_embedding, rank_by_gradient, task_gradients, top_k


def _regression_batch(tasks: int = 3, shot: int = 6, query: int = 5, seed: int = 0) -> TaskBatch:
    return MultimodalTasks(shot, query, modes=5, seed=seed).sample(tasks)


def _image_batch(tasks: int = 2, way: int = 3, shot: int = 2, query: int = 2) -> TaskBatch:
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(way).repeat_interleave(shot).expand(tasks, -1)
    qlabels = torch.arange(way).repeat_interleave(query).expand(tasks, -1)
    return TaskBatch(
        torch.rand(tasks, way * shot, 1, 16, 16, generator=g),
        labels.clone(),
        torch.rand(tasks, way * query, 1, 16, 16, generator=g),
        qlabels.clone(),
        way,
    )


@pytest.mark.parametrize("classes", [None, 4])
def test_the_encoder_ignores_the_order_of_the_support_set(classes):
    torch.manual_seed(0)
    encoder = TaskEncoder(nn.Flatten(), 3, classes=classes, hidden=16, z_dim=8)
    x = torch.randn(5, 12, 3)
    y = torch.randint(4, (5, 12)) if classes else torch.randn(5, 12, 1)
    z = encoder(x, y)
    perm = torch.randperm(12)
    assert torch.allclose(encoder(x[:, perm], y[:, perm]), z, atol=1e-5)
    assert not torch.allclose(encoder(x, y.flip(1)), z, atol=1e-3)  # but it does see which target goes with which x
    assert z.shape == (5, 8)


def test_generated_rates_are_positive_and_bounded_for_any_read_out():
    shapes = {"a.weight": torch.Size([4, 3]), "a.bias": torch.Size([4])}
    for mode in ("per_layer", "per_parameter"):
        generator = StrategyGenerator(6, [], shapes, base_lr=0.1, rates=mode, rate_range=3.0)
        for layer in (generator.rate,):
            nn.init.normal_(layer.weight, std=10.0)
        if mode == "per_parameter":
            for p in generator.scales.values():
                nn.init.normal_(p, std=2.0)
        rates = generator(1e3 * torch.randn(50, 6)).rates
        for name, rate in rates.items():
            assert (rate > 0).all()
            assert rate.shape[0] == 50 and rate.dim() == 1 + len(shapes[name])
        if mode == "per_layer":
            assert all(((r >= 0.1 / 3 - 1e-6) & (r <= 0.3 + 1e-6)).all() for r in rates.values())


def test_film_on_parameters_equals_film_on_activations():
    torch.manual_seed(0)
    net = MLP([3, 5, 4, 2])
    sites = film_sites(net)
    assert [s.weight for s in sites] == ["0.weight", "2.weight"]
    gamma = [torch.randn(2, s.features) for s in sites]
    beta = [torch.randn(2, s.features) for s in sites]
    params = modulate(dict(net.named_parameters()), sites, gamma, beta)
    x = torch.randn(7, 3)
    for b in range(2):
        h = torch.relu(gamma[0][b] * net[0](x) + beta[0][b])
        h = torch.relu(gamma[1][b] * net[2](h) + beta[1][b])
        expected = net[4](h)
        task = {n: t[b] if n in {"0.weight", "0.bias", "2.weight", "2.bias"} else t for n, t in params.items()}
        assert torch.allclose(functional_call(net, task, (x,)), expected, atol=1e-5)
    assert [s.weight for s in film_sites(Conv4(hidden=4))][:1] == ["features.0.1.weight"]  # after batch norm


def _pair(backbone: nn.Module, **options) -> tuple[MAML, TaskConditioned]:
    maml = MAML(copy.deepcopy(backbone), **options)
    conditioned = TaskConditioned(
        copy.deepcopy(backbone),
        input_shape=(1,),
        film=False,
        rates="fixed",
        reconstruction=0.0,
        encoder_input="raw",
        **options,
    )
    return maml, conditioned


def _assert_same_as_maml(maml: MAML, conditioned: TaskConditioned, batch: TaskBatch, rtol: float, atol: float) -> None:
    """The network's meta-gradients (already accumulated) and the adapted predictions agree."""
    ours = dict(conditioned.named_parameters())
    for name, p in maml.named_parameters():
        assert torch.allclose(p.grad, ours[name].grad, rtol=rtol, atol=atol), name
    assert torch.allclose(maml.predict(batch), conditioned.predict(batch), atol=atol * 10)


@pytest.mark.parametrize("first_order", [False, True])
def test_without_film_and_learned_rates_it_is_exactly_maml(first_order):
    torch.manual_seed(0)
    maml, conditioned = _pair(MLP([1, 16, 16, 1]), inner_lr=0.05, inner_steps=3, first_order=first_order)
    batch = _regression_batch()
    loss_a, _ = maml.meta_loss(batch)
    loss_b, _ = conditioned.meta_loss(batch)
    loss_a.backward()
    loss_b.backward()
    assert torch.allclose(loss_a, loss_b, rtol=1e-6)
    _assert_same_as_maml(maml, conditioned, batch, rtol=1e-5, atol=1e-7)


def test_identity_film_and_base_rates_also_reduce_to_maml_on_a_convolutional_network():
    torch.manual_seed(0)
    backbone = Conv4(hidden=6, out_features=3, image_size=16)
    maml = MAML(copy.deepcopy(backbone), inner_lr=0.3, inner_steps=2)
    conditioned = TaskConditioned(
        copy.deepcopy(backbone), input_shape=(1, 16, 16), classes=3, inner_lr=0.3, inner_steps=2, reconstruction=0.0
    )
    for layer in (conditioned.generator.film, conditioned.generator.rate):
        nn.init.zeros_(layer.weight)  # gamma = 1, beta = 0 and every rate the base rate
    batch = _image_batch()
    maml.meta_backward(batch)
    conditioned.meta_backward(batch)
    # per-task (FiLM-batched) parameters take the per-task convolution path, MAML's shared ones vmap: the same
    # sums in another order, so agreement is to float32 rounding of second-order terms
    _assert_same_as_maml(maml, conditioned, batch, rtol=1e-3, atol=1e-5)


def test_gradients_reach_the_encoder_the_memory_the_generator_and_the_decoder():
    torch.manual_seed(0)
    algo = TaskConditioned(
        MLP([1, 16, 16, 1]),
        input_shape=(1,),
        inner_lr=0.05,
        inner_steps=2,
        encoder_input="raw",
        hidden=16,
        z_dim=8,
        slots=4,
    )
    algo.meta_backward(_regression_batch(shot=8))
    for part in (algo.encoder, algo.memory, algo.generator, algo.decoder):
        for name, p in part.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_holdout_keeps_one_example_of_every_class_in_the_context():
    torch.manual_seed(0)
    labels = torch.tensor([[0, 0, 1, 1, 2, 2, 2], [2, 1, 0, 2, 1, 0, 0]])
    for _ in range(20):
        held = holdout_mask(labels, 0.9)
        for b in range(2):
            assert set(labels[b][~held[b]].tolist()) == {0, 1, 2}
    assert not holdout_mask(torch.arange(5).expand(3, -1), 0.9).any()  # one shot: nothing to hold out


def test_multimodal_tasks_follow_their_families():
    tasks = MultimodalTasks(6, 4, modes=5, seed=3, noise=0.0)
    batch, family = tasks.labelled(400, seed=0)
    assert set(family.tolist()) == set(range(len(FAMILIES)))
    x, y = batch.support_x[..., 0], batch.support_y[..., 0]
    linear = family == FAMILIES.index("linear")
    design = torch.stack([x[linear], torch.ones_like(x[linear])], -1).double()
    fit = torch.linalg.lstsq(design, y[linear].double().unsqueeze(-1)).solution
    assert (design @ fit - y[linear].double().unsqueeze(-1)).abs().max() < 1e-4  # linear tasks are exactly lines
    sine = family == FAMILIES.index("sinusoid")
    assert y[sine].abs().max() <= 5.0 + 1e-5
    again, _ = tasks.labelled(400, seed=0)
    assert torch.equal(again.support_y, batch.support_y)
    two = MultimodalTasks(6, 4, modes=2, seed=3).labelled(200, seed=0)[1]
    assert set(two.tolist()) == {0, 1}


@pytest.fixture(scope="module")
def trained_on_three_families():
    """A task-conditioned learner trained shortly on 3-family multimodal regression, and its task sampler."""
    torch.manual_seed(0)
    tasks = MultimodalTasks(10, 5, modes=3, seed=0, noise=0.1)
    algo = TaskConditioned(
        MLP([1, 32, 32, 1]),
        input_shape=(1,),
        inner_lr=0.01,
        inner_steps=1,
        first_order=True,
        encoder_input="raw",
        hidden=64,
        z_dim=32,
        slots=4,
    )
    optimizer = torch.optim.Adam(algo.parameters(), 3e-3)
    for _ in range(200):
        optimizer.zero_grad()
        algo.meta_backward(tasks.sample(16))
        optimizer.step()
    return algo, tasks


def test_task_embeddings_separate_the_families_after_short_training(trained_on_three_families):
    algo, tasks = trained_on_three_families

    def embeddings(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        batch, family = tasks.labelled(600, seed)
        with torch.no_grad():
            z = algo.embed_tasks(batch.support_x, batch.support_y)
        return torch.cat([z, torch.ones(len(z), 1)], 1).double(), family

    z, family = embeddings(1)
    z_test, family_test = embeddings(2)
    centroids = torch.stack([z[family == f].mean(0) for f in range(3)])
    nearest = (torch.cdist(z_test, centroids).argmin(1) == family_test).double().mean().item()
    onehot = torch.nn.functional.one_hot(family, 3).double()
    probe = torch.linalg.solve(z.T @ z + 1e-3 * torch.eye(z.shape[1], dtype=z.dtype), z.T @ onehot)
    linear = ((z_test @ probe).argmax(1) == family_test).double().mean().item()
    assert linear > 0.6 and nearest > 0.45, (linear, nearest)  # chance is 1/3; observed 0.777, 0.598 on 2026-12-02


def test_embedding_ranking_prefers_tasks_of_the_target_family(trained_on_three_families):
    algo, tasks = trained_on_three_families
    batch, family = tasks.labelled(301, seed=5)
    data = [(batch.support_x[i], batch.support_y[i]) for i in range(301)]
    hits = []
    for target in range(20):
        others = [i for i in range(301) if i != target]
        order, similarity = rank_by_embedding(algo.embed_tasks, data[target], [data[i] for i in others])
        assert torch.all(similarity[order[:-1]] >= similarity[order[1:]])
        chosen = [others[i] for i in top_k(order, 20)]
        hits.append((family[chosen] == family[target]).double().mean())
    # a random pick of 20 matches the family about a third of the time; observed 0.66 on 2026-12-02
    assert torch.stack(hits).mean() > 0.5


def test_gradient_ranking_finds_the_tasks_that_pull_the_same_way():
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    w = torch.randn(4)

    def task(weights: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(n, 4)
        return x, (x @ weights).unsqueeze(-1)

    aligned = [task(c * w, n) for c, n in ((0.5, 30), (2.0, 50), (1.3, 40))]
    others = [task(torch.randn(4), 40) for _ in range(6)]
    candidates = others[:3] + aligned + others[3:]
    order, _ = rank_by_gradient(model, torch.nn.functional.mse_loss, task(w, 60), candidates)
    assert set(top_k(order, 3)) == {3, 4, 5}
    x, y = candidates[0]  # against the closed form: dL/dW = 2/n (W x + b - y) x^T
    with torch.no_grad():
        err = model(x) - y
        closed = torch.cat([(2 * err * x).mean(0), (2 * err).mean(0)])
    grads = task_gradients(model, torch.nn.functional.mse_loss, [(x, y)])[0]
    assert torch.allclose(grads, closed, atol=1e-5)
    with pytest.raises(ValueError, match="k must be"):
        top_k(order, 0)


def test_school_as_tasks_trains_and_is_scored_like_the_multitask_models(tmp_path, data_root):
    from polyskill.cli import main
    from polyskill.data import school
    from polyskill.recipes.runner import evaluate_run

    out = tmp_path / "school"
    code = main(
        [
            "train",
            "school-task-conditioned",
            "--out",
            str(out),
            "--quiet",
            "--set",
            "train.steps=40",
            "--set",
            "train.log_every=20",
        ]
    )
    assert code == 0
    summary = evaluate_run(out, echo=lambda _: None)
    (result,) = summary["test"]
    test = school("test", root=data_root)
    assert result["tasks"] == 139 and result["examples"] == len(test)
    # pooled explained variance: better than predicting every student the mean score
    assert 0.1 < result["explained_variance"] < 1


def test_multimodal_recipe_runs_end_to_end(tmp_path):
    from polyskill.cli import main

    out = tmp_path / "mm"
    code = main(
        [
            "train",
            "multimodal-task-conditioned",
            "--out",
            str(out),
            "--quiet",
            "--set",
            "train.steps=4",
            "--set",
            "data.modes=2",
            "--set",
            "eval.episodes=20",
            "--set",
            "train.log_every=2",
        ]
    )
    assert code == 0
    import json

    (result,) = json.loads((out / "summary.json").read_text())["test"]
    assert result["episodes"] == 20 and result["mse"] > 0


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.modes=7", "data.modes must be <= 5"),
        ("data.as_tasks=true", "unknown key 'data.as_tasks'"),  # a few-shot recipe has no as_tasks
        ("algo.rates=sometimes", "rates must be one of fixed, per_layer, per_parameter"),
        ("algo.encoder_input=pixels", "encoder_input must be one of features, raw"),
        ("train.grad_clip=0", "train.grad_clip must be a finite number > 0"),
    ],
)
def test_bad_task_conditioned_settings_are_one_line_errors(tmp_path, capsys, override, message):
    from polyskill.cli import main

    recipe = "omniglot-task-conditioned" if "as_tasks" in override else "multimodal-task-conditioned"
    code = main(["train", recipe, "--out", str(tmp_path / "x"), "--quiet", "--set", override, "--set", "train.steps=1"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "x" / "config.yaml").exists()


def test_one_shot_labels_can_be_reconstructed_from_z():
    """With one example per class nothing is held out: the decoder must read each support label back from z,
    which per-class slots make learnable (chance is ln 5 = 1.61)."""
    from polyskill.meta.task_encoder import TaskDecoder, reconstruction_loss

    torch.manual_seed(0)
    encoder = TaskEncoder(nn.Flatten(), 16, classes=5, hidden=64, z_dim=32)
    decoder = TaskDecoder(16, 32, 5, hidden=64)
    optimizer = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], 1e-3)
    for _ in range(400):
        x = torch.randn(32, 5, 16)
        y = torch.stack([torch.randperm(5) for _ in range(32)])
        loss = reconstruction_loss(encoder, decoder, x, y, 0.5)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.6, loss.item()  # observed 0.310 on 2026-12-02
