"""Text as few-shot examples: the benchmark sets (HuffPost, CLINC150, BANKING77, FewRel) and a user's files, the
text backbones (a pretrained sentence encoder, frozen with cached embeddings or fine-tuned; a text CNN or a bag of
embeddings trained from scratch), and a user's own texts turned into the inputs of the run's model."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from torch import Tensor, nn

from ...data.classes import ClassDataset
from ...data.root import cache_dir, data_root
from ...data.text_classes import TextClasses
from ...data.text_sets import TEXT_SETS, text_set
from ...data.user_text import read_labelled_text, read_query_text
from ...errors import ClassifierError, ConfigError
from ...meta import ALGORITHMS
from ...meta.contract import Contract
from ...nn.encoder_network import EncoderNetwork
from ...nn.text.bag import BagOfEmbeddings
from ...nn.text.conv import TextCNN
from ...nn.text.embedding_cache import EmbeddingFeaturizer, TokenFeaturizer
from ...nn.text.hashing import HashingTokenizer
from ...nn.text.models import DEFAULT_ENCODER
from ...nn.text.sentence import SentenceEncoder
from ..spec import at_least, building, choice
from .base import Root
from .modality import Modality

USER_FILES = "files"
TEXT_DATASETS = (*TEXT_SETS, USER_FILES)
MAX_TOKENS = 8192  # longer than any encoder's window; an episode of longer token rows would not fit in memory


@dataclass
class TextData:
    """Which classes to train, validate and test on: splits of `dataset` (see docs/text-data.md: `train`, `val`,
    `test`, `full-train`, ...), a split of another set as `SET/SPLIT` (meta-train on CLINC150's intents, test on
    BANKING77's), or for `files` a CSV or JSONL of text,label or a folder of one <class>.txt per class."""

    dataset: str = choice("huffpost", TEXT_DATASETS)
    train: str = "train"
    val: str | None = "val"
    test: str = "test"


def _sizes(spec: Any) -> None:
    at_least(spec, max_length=1, widths=1)
    if spec.max_length > MAX_TOKENS:
        raise ValueError(f"max_length must be <= {MAX_TOKENS}, got {spec.max_length}")


@dataclass
class SentenceSpec:
    """A pretrained sentence encoder (sentence-transformers), by hub name or local directory. `finetune: none`
    keeps it frozen: its embeddings are computed once, cached on disk, and the learner trains the MLP of `widths`
    on them (none when empty); `top` also trains its last `top_layers` transformer layers, `all` every layer.
    Texts longer than `max_length` tokens are cut in training data and refused in a user's."""

    backbone: str = choice("sentence", ("sentence",))
    encoder: str = DEFAULT_ENCODER
    finetune: str = choice("none", ("none", "top", "all"))
    top_layers: int = 2
    max_length: int = 128
    widths: list[int] = field(default_factory=list)
    init: str | None = None

    def __post_init__(self) -> None:
        _sizes(self)
        at_least(self, top_layers=1)

    @property
    def frozen(self) -> bool:
        """Its embeddings are the data (computed once and cached), not part of the model."""
        return self.finetune == "none"

    def inputs_key(self) -> tuple[Any, ...]:
        return ("sentence", self.encoder, self.max_length, self.frozen)

    def featurizer(self, cache: Path | None) -> Any:
        """Texts -> frozen embeddings (kept in `cache` with a progress bar: a run's data splits; with None nothing
        is written: a user's texts) or, fine-tuned, token ids and mask."""
        encoder = frozen_encoder(self.encoder, self.max_length)
        if not self.frozen:
            return TokenFeaturizer(encoder)
        return EmbeddingFeaturizer(encoder, cache, progress=cache is not None)

    def input_shape(self) -> tuple[int, ...]:
        if self.frozen:
            return (frozen_encoder(self.encoder, self.max_length).embedding_dim,)
        return (2, self.max_length)

    def text_encoder(self) -> tuple[nn.Module | None, int]:
        if self.frozen:
            return None, self.input_shape()[0]
        encoder = SentenceEncoder(self.encoder, self.finetune, self.top_layers, self.max_length)
        return encoder, encoder.embedding_dim


class HashedWords:
    """What the encoders trained from scratch share: hashed word ids [n, max_length] as inputs."""

    vocab_size: int
    max_length: int
    ngrams: int
    backbone: str
    frozen = False

    def inputs_key(self) -> tuple[Any, ...]:
        return (self.backbone, self.vocab_size, self.max_length, self.ngrams)

    def featurizer(self, cache: Path | None) -> Any:
        return TokenFeaturizer(HashingTokenizer(self.vocab_size, self.max_length, self.ngrams))

    def input_shape(self) -> tuple[int, ...]:
        return (self.max_length,)


@dataclass
class TextCNNSpec(HashedWords):
    """A convolutional text encoder trained from scratch (Kim, 2014) over hashed words (`ngrams: 2` adds word
    pairs); `widths` adds an MLP on its features."""

    backbone: str = choice("textcnn", ("textcnn",))
    vocab_size: int = 65536
    ngrams: int = 1
    max_length: int = 64
    embed_dim: int = 128
    filters: int = 100
    kernel_sizes: list[int] = field(default_factory=lambda: [3, 4, 5])
    dropout: float = 0.1
    widths: list[int] = field(default_factory=list)
    init: str | None = None

    def __post_init__(self) -> None:
        _sizes(self)
        at_least(self, vocab_size=2, ngrams=1, embed_dim=1, filters=1, kernel_sizes=1)
        if not self.kernel_sizes:
            raise ValueError("kernel_sizes needs at least one size")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    def text_encoder(self) -> tuple[nn.Module | None, int]:
        encoder = TextCNN(self.vocab_size, self.embed_dim, self.filters, tuple(self.kernel_sizes), self.dropout)
        return encoder, encoder.embedding_dim


@dataclass
class BagSpec(HashedWords):
    """The mean of learned embeddings of hashed words (and word pairs with `ngrams: 2`), trained from scratch:
    fastText's encoder; `widths` adds an MLP on it."""

    backbone: str = choice("bag", ("bag",))
    vocab_size: int = 65536
    ngrams: int = 2
    max_length: int = 64
    embed_dim: int = 128
    widths: list[int] = field(default_factory=list)
    init: str | None = None

    def __post_init__(self) -> None:
        _sizes(self)
        at_least(self, vocab_size=2, ngrams=1, embed_dim=1)

    def text_encoder(self) -> tuple[nn.Module | None, int]:
        encoder = BagOfEmbeddings(self.vocab_size, self.embed_dim)
        return encoder, encoder.embedding_dim


@functools.lru_cache(maxsize=4)
def frozen_encoder(model: str, max_length: int) -> SentenceEncoder:
    """The sentence encoder `model` loaded once per process, frozen (its embeddings are what gets cached)."""
    with building(f"model.encoder {model}"):
        return SentenceEncoder(model, finetune="none", max_length=max_length)


#: one featurizer per model inputs and cache folder, for the process (a sentence encoder loads in seconds)
_featurizers: dict[tuple[Any, ...], Any] = {}


def _featurizer_key(recipe: Any, root: Root = None) -> tuple[Any, ...]:
    """The key of the recipe's featurizer in `_featurizers` (made on first use): what of the model section decides
    the inputs (not widths or init), and the embedding cache's folder as the environment gives it now."""
    spec = recipe.model
    cache: Path | None = None
    if spec.frozen:
        try:
            cache = cache_dir(data_root(root))
        except OSError:
            cache = None
    key = (*spec.inputs_key(), str(cache) if cache else None)
    if key not in _featurizers:
        _featurizers[key] = spec.featurizer(cache)
    return key


def text_classes(dataset: str, where: str, root: Root = None) -> TextClasses:
    """The classes a data section's split names: a split of `dataset`, `SET/SPLIT` of another set, or a path."""
    if dataset == USER_FILES:
        return read_labelled_text(where)
    head, _, rest = where.partition("/")
    if rest and head in TEXT_SETS:
        return text_set(head, rest, root)
    return text_set(dataset, where, root)


@functools.lru_cache(maxsize=8)
def _encoded(dataset: str, where: str, root: Root, model: Any, stamp: tuple[Any, ...]) -> ClassDataset:
    return text_classes(dataset, where, root).encode(_featurizers[model])


def _stamp(dataset: str, where: str) -> tuple[Any, ...]:
    """What makes a loaded split stale: the data root for the sets, a user's files' sizes and times (a file
    edited between two runs in one process is read again)."""
    if dataset != USER_FILES:
        return (os.environ.get("POLYSKILL_DATA"),)
    path = Path(where).expanduser()
    files = sorted(path.glob("*")) if path.is_dir() else [path]
    return tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files if f.exists())


class TextTooLong(ClassifierError):
    """A text with more tokens than the encoder's window, given without `truncate`."""


class TextInputs:
    """A user's texts as a run's model takes them: a list of strings, a CSV / JSONL of text,label or a folder of
    <class>.txt files for support, a .txt (one text a line), CSV or JSONL for queries. A text longer than the
    encoder's `max_length` tokens is refused (naming it) unless `truncate`."""

    column: ClassVar[str] = "text"

    def __init__(self, featurize: Any, truncate: bool = False) -> None:
        self.featurize, self.truncate = featurize, truncate

    def convert(self, X: Sequence[str]) -> Tensor:
        """A non-empty list of non-empty strings -> the model's inputs."""
        return self.featurize(self.check(X))

    def check(self, X: Sequence[str]) -> list[str]:
        """The texts of X, stripped, as `convert` will featurize them, or ClassifierError (not a list of strings,
        an empty text, one over the encoder's window unless `truncate`); featurizes nothing."""
        if X is None:
            raise ClassifierError("X is None: give a list of texts")
        if isinstance(X, (str, bytes)) or not isinstance(X, (Sequence, np.ndarray)):
            raise ClassifierError(f"X must be a list of texts (strings), got {type(X).__name__}")
        texts = list(X)
        if not texts:
            raise ClassifierError("no texts given")
        wrong = [i for i, t in enumerate(texts) if not isinstance(t, str)]
        if wrong:
            raise ClassifierError(f"X must hold strings; item {wrong[0]} is {type(texts[wrong[0]]).__name__}")
        empty = [i for i, t in enumerate(texts) if not t.strip()]
        if empty:
            raise ClassifierError(f"empty text at position(s) {', '.join(map(str, empty[:5]))}: every text needs words")
        if not self.truncate:
            long = self.featurize.too_long(texts)
            if long:
                raise TextTooLong(
                    f"{len(long)} text(s) are longer than the encoder's {self.featurize.max_length} tokens "
                    f"(first at position {long[0]}: {texts[long[0]][:60]!r}...); shorten them or truncate "
                    "(--truncate, or truncate=True)"
                )
        return [t.strip() for t in texts]

    def read_support(self, path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
        """Labelled texts from a CSV / JSONL file or a folder of <class>.txt -> (the texts, their class names)."""
        classes = read_labelled_text(path)
        texts, index = classes.flat()
        return texts, np.asarray(classes.names, dtype=object)[index]

    def read_query(self, path: str | os.PathLike) -> tuple[list[str], list[str]]:
        """Texts to label (.txt one a line, CSV or JSONL with a text column) -> (the texts, the texts)."""
        texts = read_query_text(path)
        return texts, texts


class TextModality(Modality):
    name = "text"
    data_type = TextData
    datasets = TEXT_DATASETS
    backbones: ClassVar[dict[str, type]] = {"sentence": SentenceSpec, "textcnn": TextCNNSpec, "bag": BagSpec}

    def classes(self, recipe: Any, where: str, root: Root = None) -> ClassDataset:
        key = _featurizer_key(recipe, root)
        return _encoded(recipe.data.dataset, where, root, key, _stamp(recipe.data.dataset, where))

    def num_classes(self, recipe: Any, where: str, root: Root = None) -> int:
        return text_classes(recipe.data.dataset, where, root).num_classes

    def input_shape(self, recipe: Any) -> tuple[int, ...]:
        return tuple(recipe.model.input_shape())

    def network(self, recipe: Any, outputs: int | None) -> nn.Module:
        with building("model"):
            encoder, dim = recipe.model.text_encoder()
            return EncoderNetwork(encoder, dim, recipe.model.widths, outputs)

    def check(self, recipe: Any, needs: Contract) -> None:
        name = recipe.algo["name"]
        if needs.feature_maps:
            vectors = ", ".join(n for n, c in ALGORITHMS.items() if not c.contract.feature_maps)
            raise ConfigError(f"{name} compares image feature maps; text backbones give vectors: use one of {vectors}")
        spec = recipe.model
        if needs.adaptation_steps and isinstance(spec, SentenceSpec) and not spec.frozen:
            raise ConfigError(
                f"{name} adapts its network by gradient steps inside each task, which a fine-tuned transformer "
                "does not support here: use model.finetune none (with model.widths for the layers it adapts)"
            )
        if recipe.data.dataset == USER_FILES and any(
            w in TEXT_SETS for w in (recipe.data.train, recipe.data.val, recipe.data.test) if w
        ):
            raise ConfigError("data.dataset files takes paths of CSV / JSONL files or folders, not set names")

    def inputs(self, recipe: Any, invert: str = "auto", truncate: bool = False) -> TextInputs:
        # a user's texts are embedded on each call and never written to the cache (a served model would fill it)
        return TextInputs(recipe.model.featurizer(None), truncate)
