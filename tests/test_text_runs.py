"""Few-shot text end to end: every learner trains on text, a learner on frozen sentence embeddings classifies unseen
intents well above chance, the whole-test-set protocol against a brute-force computation, the embedding cache of a
run, and FewShotClassifier / `polyskill adapt` on a user's texts, bad ones included."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
import torch
import yaml

from polyskill.classifier import ClassifierError, FewShotClassifier
from polyskill.cli import main
from polyskill.data.classes import ClassDataset
from polyskill.data.text_sets import text_set
from polyskill.eval.full_test import FullTestAccuracy
from polyskill.meta import PrototypicalNetworks
from polyskill.nn.encoder_network import EncoderNetwork
from polyskill.recipes import load
from polyskill.recipes.runner import train_run

# 24 CLINC150 intents (30 examples each): the first 12 train, the next 6 validate, the last 6 are the unseen test set
TRAIN, VAL, TEST = range(12), range(12, 18), range(18, 24)
SHOTS = 30


def write_csv(path, classes, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for c in rows:
            for text in classes.texts[c][:SHOTS]:
                writer.writerow([text, classes.names[c]])
    return path


@pytest.fixture(scope="module")
def intents(tmp_path_factory):
    folder = tmp_path_factory.mktemp("intents")
    classes = text_set("clinc150", "full-train")
    paths = {
        split: write_csv(folder / f"{split}.csv", classes, rows)
        for split, rows in (("train", TRAIN), ("val", VAL), ("test", TEST))
    }
    return classes, paths


def text_recipe(paths, model, algo="protonet", steps=4, **extra):
    recipe = {
        "kind": "fewshot",
        "name": "text",
        "data": {
            "dataset": "files",
            "train": str(paths["train"]),
            "val": str(paths["val"]),
            "test": str(paths["test"]),
        },
        "model": model,
        "algo": {"name": algo},
        "episodes": {"way": 5, "shot": 2, "query": 3},
        "validation": {"way": 5, "shot": None, "query": 3},
        "train": {"steps": steps, "val_every": steps, "val_episodes": 4, "meta_batch": 2, "precision": "fp32"},
        "eval": {"ways": [5], "shots": [1], "episodes": 20},
    }
    for key, value in extra.items():
        recipe[key] = {**recipe.get(key, {}), **value}
    return recipe


def write_recipe(folder, recipe):
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


TEXTCNN = {"backbone": "textcnn", "vocab_size": 4096, "max_length": 24, "embed_dim": 16, "filters": 8}
MINILM = {"backbone": "sentence", "finetune": "none", "max_length": 32, "widths": [64]}


@pytest.mark.parametrize(
    "algo", ["protonet", "matching", "metaoptnet", "baseline", "maml", "reptile", "contrastive", "task_conditioned"]
)
def test_every_learner_trains_and_tests_on_text(intents, tmp_path, capsys, algo):
    """Each learner meta-trains a text CNN on hashed words and is tested on unseen intents (a smoke run: the
    learning test below measures accuracy)."""
    _, paths = intents
    fast = {"reptile": {"inner_steps": 2, "eval_steps": 2}, "maml": {"eval_steps": 1}}.get(algo, {})
    recipe = text_recipe(paths, TEXTCNN, algo, steps=2)
    recipe["algo"].update(fast)
    path = write_recipe(tmp_path, recipe)
    assert main(["train", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    [test] = summary["test"]
    assert 0.0 <= test["accuracy"] <= 1.0 and test["way"] == 5


def test_a_learner_that_needs_feature_maps_refuses_text_in_one_line(intents, tmp_path, capsys):
    _, paths = intents
    path = write_recipe(tmp_path, text_recipe(paths, TEXTCNN, "relation"))
    assert main(["train", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "relation compares image feature maps" in err and "\n" not in err
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_an_image_backbone_on_text_and_a_frozen_encoder_with_nothing_to_train_are_refused(intents, tmp_path, capsys):
    _, paths = intents
    path = write_recipe(tmp_path, text_recipe(paths, {"backbone": "conv4"}))
    assert main(["train", str(path), "--out", str(tmp_path / "a"), "--quiet"]) == 2
    assert "conv4 does not take text data" in capsys.readouterr().err
    path = write_recipe(tmp_path, text_recipe(paths, {**MINILM, "widths": []}))
    assert main(["train", str(path), "--out", str(tmp_path / "b"), "--quiet"]) == 2
    assert "no weights to train" in capsys.readouterr().err


@pytest.fixture(scope="module")
def minilm_run(intents, tmp_path_factory):
    """ProtoNet with a 64-wide projection of frozen all-MiniLM-L6-v2 embeddings, meta-trained for 30 episodes on
    12 intents; its embeddings are cached in a fresh cache folder."""
    _, paths = intents
    folder = tmp_path_factory.mktemp("minilm")
    os.environ["POLYSKILL_CACHE"] = str(folder / "cache")
    try:
        recipe = load(write_recipe(folder, text_recipe(paths, MINILM, steps=30, eval={"episodes": 100})))
        train_run(recipe, folder / "run", progress=False)
    finally:
        del os.environ["POLYSKILL_CACHE"]
    return folder


def test_protonet_on_frozen_sentence_embeddings_learns_unseen_intents(minilm_run):
    """5-way 1-shot on 6 intents never trained on: chance is 20%; observed 82.4 +- 1.7% (100 episodes, 15 queries)."""
    summary = json.loads((minilm_run / "run" / "summary.json").read_text())
    [test] = summary["test"]
    assert test["way"] == 5 and test["shot"] == 1
    assert test["accuracy"] > 0.6, f"observed {test['accuracy']:.3f}, chance 0.2"


def test_frozen_embeddings_are_cached_once_per_split(minilm_run):
    files = sorted((minilm_run / "cache" / "text-embeddings").glob("*.npy"))
    assert len(files) == 3  # train, val and test: each split's texts embedded once, then read back
    sizes = sorted(np.load(f).shape[0] for f in files)
    assert sizes == [6 * SHOTS, 6 * SHOTS, 12 * SHOTS]


def support_and_queries(classes, rows, shots=5):
    texts, labels, queries, truth = [], [], [], []
    for c in rows:
        texts += classes.texts[c][:shots]
        labels += [classes.names[c]] * shots
        queries += classes.texts[c][shots : shots + 4]
        truth += [classes.names[c]] * 4
    return texts, labels, queries, truth


def test_classifier_fits_and_predicts_lists_of_strings(minilm_run, intents, tmp_path, monkeypatch):
    classes, _ = intents
    texts, labels, queries, truth = support_and_queries(classes, TEST)
    monkeypatch.setenv("POLYSKILL_CACHE", str(tmp_path / "cache"))
    clf = FewShotClassifier.from_run(minilm_run / "run").fit(texts, labels)
    predicted = clf.predict(queries)
    assert not (tmp_path / "cache" / "text-embeddings").exists()  # a user's texts are never written to the cache
    assert set(predicted) <= set(labels)
    accuracy = float(np.mean(predicted == np.asarray(truth)))
    assert accuracy > 0.6, f"observed {accuracy:.3f} on 6 unseen intents, chance 0.17"
    assert clf.predict_proba(queries).shape == (len(queries), len(TEST))
    with pytest.raises(ClassifierError, match="empty text"):
        clf.predict(["fine", "   "])
    with pytest.raises(ClassifierError, match="list of texts"):
        clf.predict("one string")
    with pytest.raises(ClassifierError, match="longer than the encoder's 32 tokens"):
        clf.predict(["word " * 100])


def test_adapt_labels_a_text_file_from_a_csv(minilm_run, intents, tmp_path, capsys):
    classes, _ = intents
    texts, labels, queries, truth = support_and_queries(classes, TEST)
    support = tmp_path / "support.csv"
    with open(support, "w", newline="") as f:
        csv.writer(f).writerows([["text", "label"], *zip(texts, labels, strict=True)])
    query = tmp_path / "query.txt"
    query.write_text("\n".join(queries) + "\n")
    out = tmp_path / "out" / "predictions.csv"
    code = main(["adapt", str(minilm_run / "run"), "--support", str(support), "--query", str(query), "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert f"labelled {len(queries)} text(s) into 6 classes" in capsys.readouterr().out
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["text"] for r in rows] == queries
    accuracy = np.mean([r["label"] == t for r, t in zip(rows, truth, strict=True)])
    assert accuracy > 0.6, f"observed {accuracy:.3f}"


BAD_INPUTS = {
    "empty text": (b"text,label\nhello there,a\n   ,b\nok,b\n", b"what\n", "empty"),
    "no label column": (b"text,category\nhello,a\nbye,b\n", b"what\n", "label"),
    "not UTF-8": (b"text,label\nhello,a\n\xff\xfe bye,b\n", b"what\n", "UTF-8"),
    "one class": (b"text,label\nhello,a\nhi,a\n", b"what\n", "2 classes"),
    "query not UTF-8": (b"text,label\nhello,a\nbye,b\n", b"\xff\xfe\n", "UTF-8"),
    "too long": (b"text,label\nhello,a\nbye,b\n", ("word " * 100).encode() + b"\n", "longer than the encoder"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_adapt_bad_text_input_is_one_line_and_exit_2(minilm_run, tmp_path, capsys, case):
    support_bytes, query_bytes, needle = BAD_INPUTS[case]
    support, query = tmp_path / "support.csv", tmp_path / "query.txt"
    support.write_bytes(support_bytes)
    query.write_bytes(query_bytes)
    out = tmp_path / "predictions.csv"
    code = main(["adapt", str(minilm_run / "run"), "--support", str(support), "--query", str(query), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and needle in err and "\n" not in err and "Traceback" not in err
    assert not out.exists()


def test_adapt_truncates_long_texts_when_asked(minilm_run, tmp_path, capsys):
    support, query = tmp_path / "support.csv", tmp_path / "query.txt"
    support.write_text("text,label\nbook a flight to paris,travel\nwhat is my balance,bank\n")
    query.write_text("please book a flight " + "to paris " * 40 + "\n")
    args = ["adapt", str(minilm_run / "run"), "--support", str(support), "--query", str(query), "--truncate"]
    assert main(args) == 0
    assert "travel" in capsys.readouterr().out.splitlines()[1]


def test_adapt_reads_a_folder_of_class_files(minilm_run, tmp_path, capsys):
    support = tmp_path / "support"
    support.mkdir()
    (support / "travel.txt").write_text("book a flight to rome\nI need a plane ticket\n")
    (support / "bank.txt").write_text("what is my account balance\nhow much money do I have\n")
    (support / "empty.txt").write_text("\n\n")
    query = tmp_path / "q.txt"
    query.write_text("get me a flight to berlin\n")
    assert main(["adapt", str(minilm_run / "run"), "--support", str(support), "--query", str(query)]) == 2
    assert "empty.txt" in capsys.readouterr().err  # a class with no example
    (support / "empty.txt").unlink()
    assert main(["adapt", str(minilm_run / "run"), "--support", str(support), "--query", str(query)]) == 0
    assert capsys.readouterr().out.splitlines()[1].split(",")[1] == "travel"


def test_full_test_protocol_equals_a_brute_force_nearest_centroid():
    """Every draw's support set is `shot` distinct examples of each class from the pool, and accuracy over the
    whole test set equals nearest-centroid classification computed here by hand from the same draws."""
    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 6, generator=gen) * 2
    counts = torch.tensor([7, 9, 5, 8])
    pool = ClassDataset(centres[:, None] + torch.randn(4, 9, 6, generator=gen), ["a", "b", "c", "d"], counts)
    test = ClassDataset(centres[[2, 0, 3, 1], None] + torch.randn(4, 11, 6, generator=gen), ["c", "a", "d", "b"])
    algo = PrototypicalNetworks(EncoderNetwork(None, 6))
    protocol = FullTestAccuracy(pool, test, shot=3, draws=6, seed=4)
    result = protocol.evaluate(algo)
    x, y = protocol.queries()
    accuracies = []
    for draw in range(6):
        support = protocol.support(draw)
        for c, name in enumerate(test.names):
            rows = support.x[support.y == c]
            source = pool.data[pool.names.index(name)][: int(pool.counts[pool.names.index(name)])]
            assert len(rows) == 3 and len({tuple(r.tolist()) for r in rows}) == 3
            assert all(any(torch.equal(r, s) for s in source) for r in rows)
        centroids = torch.stack([support.x[support.y == c].mean(0) for c in range(4)])
        predicted = torch.cdist(x, centroids).argmin(1)
        accuracies.append(float((predicted == y).float().mean()))
    assert result.way == 4 and result.examples == 44 and result.draws == 6
    assert result.accuracy == pytest.approx(np.mean(accuracies), abs=1e-9)
    assert result.ci95 == pytest.approx(1.96 * np.std(accuracies, ddof=1) / np.sqrt(6), abs=1e-9)
    assert protocol.support(2).x.tolist() == FullTestAccuracy(pool, test, 3, 6, 4).support(2).x.tolist()
    assert protocol.support(2).x.tolist() != protocol.support(3).x.tolist()


def test_full_test_protocol_names_a_class_it_cannot_draw_from():
    pool = ClassDataset(torch.zeros(2, 3, 4), ["a", "b"])
    with pytest.raises(Exception, match="'z'"):
        FullTestAccuracy(pool, ClassDataset(torch.zeros(2, 3, 4), ["a", "z"]), shot=1)
    with pytest.raises(Exception, match="fewer than 5"):
        FullTestAccuracy(pool, ClassDataset(torch.zeros(2, 3, 4), ["a", "b"]), shot=5)


@pytest.mark.parametrize(
    "name",
    [
        "huffpost-baseline",
        "huffpost-textcnn-protonet",
        "clinc150-baseline",
        "banking77-baseline",
        "banking77-protonet-finetune",
        "fewrel-baseline",
    ],
)
def test_text_recipes_load(name):
    recipe = load(name)
    assert recipe.kind == "fewshot" and recipe.data.dataset in name


def test_a_test_split_that_cannot_be_read_is_refused_before_training(intents, tmp_path, capsys):
    """Nothing is trained or written for a run whose test protocols cannot be built (a missing test file, a
    support split of the whole-test-set protocol that does not exist)."""
    _, paths = intents
    recipe = text_recipe(paths, TEXTCNN)
    recipe["data"]["test"] = str(tmp_path / "missing.csv")
    assert main(["train", str(write_recipe(tmp_path, recipe)), "--out", str(tmp_path / "a"), "--quiet"]) == 2
    assert "missing.csv does not exist" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()
    recipe = text_recipe(paths, TEXTCNN, eval={"protocol": "full", "support": str(tmp_path / "nope.csv")})
    assert main(["train", str(write_recipe(tmp_path, recipe)), "--out", str(tmp_path / "b"), "--quiet"]) == 2
    assert "nope.csv does not exist" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_a_classifier_over_the_training_classes_counts_them_without_encoding_the_texts(intents, tmp_path, monkeypatch):
    """Building Baseline's classifier needs the number of training classes only: counting must not run the
    encoder over the whole training set (minutes for a large set); the count is the encoded set's."""
    from polyskill.recipes.kinds import fewshot_text
    from polyskill.recipes.kinds.fewshot import algorithm, dataset

    _, paths = intents
    recipe = load(write_recipe(tmp_path, text_recipe(paths, TEXTCNN, "baseline")))
    encoded = dataset(recipe, "train")
    calls = []
    monkeypatch.setattr(fewshot_text, "_encoded", lambda *args: calls.append(args))
    algo = algorithm(recipe)
    assert calls == []
    assert algo.num_classes == encoded.num_classes == len(TRAIN)
