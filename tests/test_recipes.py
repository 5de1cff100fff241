"""Recipe validation: every bad key, type or override is one clear ConfigError naming the key."""

from __future__ import annotations

import pytest

from polyskill.errors import ConfigError
from polyskill.recipes import available, load, parse_override


def test_shipped_recipe_loads_with_the_papers_settings():
    recipe = load("omniglot-protonet")
    assert "omniglot-protonet" in available()
    assert (recipe.episodes.way, recipe.episodes.shot, recipe.episodes.query) == (60, 1, 5)
    assert recipe.train.optimizer == "adam" and recipe.train.lr == 1e-3
    assert (recipe.train.lr_step, recipe.train.lr_gamma) == (2000, 0.5)
    assert recipe.algo == {"name": "protonet"}


def test_overrides_are_typed():
    recipe = load(
        "omniglot-protonet",
        ["train.steps=500", "train.lr=1e-3", "episodes.shot=5", "eval.ways=[5]", "eval.shots=1", "data.val=null"],
    )
    assert recipe.train.steps == 500 and recipe.train.lr == 0.001 and recipe.episodes.shot == 5
    assert recipe.eval.ways == [5] and recipe.eval.shots == [1] and recipe.data.val is None


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.stesp=5", "unknown key 'train.stesp' (did you mean 'train.steps'?)"),
        ("trian.steps=5", "unknown key 'trian' (did you mean 'train'?)"),
        ("train.steps=many", "train.steps must be an integer, got 'many'"),
        ("train.steps=2.5", "train.steps must be an integer"),
        ("train.steps=true", "train.steps must be an integer"),
        ("train.lr=fast", "train.lr must be a number"),
        ("train.steps=0", "train.steps must be >= 1"),
        ("episodes.way=0", "episodes.way must be >= 1, got 0"),
        ("validation.shot=0", "validation.shot must be >= 1"),
        ("eval.ways=[5, -1]", "eval.ways must be >= 1, got -1"),
        ("eval.episodes=0", "eval.episodes must be >= 1"),
        ("model.hidden=0", "model.hidden must be >= 1"),
        ("data.channels=2", "data.channels must be 1 for omniglot"),
        ("train.precision=fp8", "train.precision must be one of fp32, bf16, auto"),
        ("train.optimizer=lbfgs", "train.optimizer must be one of adam, sgd"),
        ("eval.ways=[5, x]", "eval.ways[1] must be an integer"),
        ("data.dataset=imagenet", "data.dataset must be one of omniglot, folder"),
        ("algo.name=maml9", "algo.name must be one of"),
        ("algo.distance=cosine", "unknown key 'algo.distance'"),
        ("train=5", "train must be a mapping"),
        ("train.steps.deep=1", "train.steps is not a section"),
        ("train.steps", "expected key=value"),
        ("=5", "the key must be dotted names"),
        ("train..steps=5", "the key must be dotted names"),
    ],
)
def test_bad_overrides(override, message):
    assert message in _refusal("omniglot-protonet", override)


@pytest.mark.parametrize(
    "recipe, override, message",
    [
        ("omniglot-tim", "algo.steps=1000000000000", "algo.steps must be at most 100,000"),
        ("omniglot-maml", "algo.eval_steps=100001", "algo.eval_steps must be at most 100,000"),  # an `int | None`
        ("omniglot-maml", "eval.steps=[1, 1000000]", "eval.steps[1] must be at most 100,000"),
        ("sinusoid-imaml", "algo.cg_steps=100001", "algo.cg_steps must be at most 100,000"),
        ("sinusoid-maml", "eval.steps=[200000]", "eval.steps[0] must be at most 100,000"),
        ("omniglot-metaoptnet-svm", "algo.svm_iterations=100001", "algo.svm_iterations must be at most 100,000"),
    ],
)
def test_adaptation_step_counts_beyond_the_bound_name_their_key(recipe, override, message):
    assert message in _refusal(recipe, override)
    assert load(recipe, [f"{override.split('=')[0]}={'[100000]' if '[' in override else 100000}"])


def _refusal(recipe: str, override: str) -> str:
    """The one-line ConfigError that loading `recipe` with `override` gives."""
    with pytest.raises(ConfigError) as err:
        load(recipe, [override])
    assert "\n" not in str(err.value)
    return str(err.value)


def test_recipe_files(tmp_path):
    good = tmp_path / "mine.yaml"
    good.write_text("kind: fewshot\ndata: {dataset: folder, train: a, val: null, test: b}\ntrain: {steps: 3}\n")
    recipe = load(good)
    assert recipe.name == "mine" and recipe.data.dataset == "folder" and recipe.train.steps == 3
    broken = tmp_path / "broken.yaml"
    broken.write_text("train:\n  steps: [1,\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml, line 3 is not valid YAML"):
        load(broken)
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load(tmp_path / "list.yaml")
    with pytest.raises(ConfigError, match="no recipe named 'nothing-here'"):
        load("nothing-here")


def test_parse_override_reads_yaml_values():
    assert parse_override("a.b=[1, 2]") == (["a", "b"], [1, 2])
    assert parse_override("a=hello world") == (["a"], "hello world")
    assert parse_override("a=") == (["a"], None)


@pytest.mark.parametrize("name", sorted(available()))
def test_every_shipped_recipe_builds_its_algorithm(name):
    from polyskill.recipes import kind_of

    recipe = load(name)
    algo = kind_of(recipe).model(recipe)
    assert sum(p.numel() for p in algo.parameters()) > 0


def test_gradient_based_recipes_carry_the_papers_settings():
    maml = load("omniglot-maml")
    assert (maml.algo["inner_lr"], maml.algo["inner_steps"], maml.algo["eval_steps"]) == (0.4, 1, 3)
    assert (maml.train.meta_batch, maml.train.lr, maml.episodes.way) == (32, 1e-3, 5)
    wide = load("omniglot-maml-20way")
    assert (wide.algo["inner_lr"], wide.algo["inner_steps"], wide.train.meta_batch, wide.episodes.way) == (
        0.1,
        5,
        16,
        20,
    )
    assert load("omniglot-fomaml").algo["first_order"] is True
    assert load("omniglot-anil").algo["head_only"] is True
    assert load("omniglot-metasgd").algo["learn_lr"] == "per_parameter"
    reptile = load("omniglot-reptile")
    assert (reptile.algo["inner_steps"], reptile.algo["inner_batch"], reptile.train.meta_batch) == (5, 10, 5)
    assert (reptile.train.optimizer, reptile.train.lr, reptile.train.schedule) == ("sgd", 1.0, "linear")
    sinusoid = load("sinusoid-maml")
    assert (sinusoid.model.widths, sinusoid.episodes.shot, sinusoid.eval.steps) == ([40, 40], 10, [1, 10])
    assert load("sinusoid-pretrained").algo["inner_steps"] == 0


def test_bad_algorithm_options_are_config_errors():
    from polyskill.recipes import kind_of

    recipe = load("omniglot-maml", ["algo.learn_lr=sometimes"])
    with pytest.raises(ConfigError, match="learn_lr"):
        kind_of(recipe).model(recipe)
    with pytest.raises(ConfigError, match=r"train\.schedule"):
        load("omniglot-reptile", ["train.schedule=exponential"])
