"""The four few-shot text benchmarks by name and split: HuffPost headlines, CLINC150 and BANKING77 intents, FewRel
relations. Every file is fetched (SHA-256-checked) and parsed once per process; splits are documented, with the
exact class lists, in docs/text-data.md.

HuffPost follows Bao et al. (2020); CLINC150 and BANKING77 split their sorted intent names by position mod 5
(0, 1, 2 train, 3 val, 4 test) and also give the standard all-intents splits; FewRel's 16 validation relations are
the evaluation set, split 6 / 5 / 5 by sorted relation number when training is needed.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..errors import ConfigError
from .files import fetch
from .text_classes import TextClasses

Root = str | os.PathLike | None

# The label ids of Bao et al.'s HuffPost file are the News Category Dataset's (2018) categories in descending order
# of frequency; Bao et al.'s code names only ids, MetaPrompter's verbalizers list the names (docs/text-data.md).
HUFFPOST_CATEGORIES = (
    "POLITICS", "WELLNESS", "ENTERTAINMENT", "TRAVEL", "STYLE & BEAUTY", "PARENTING", "HEALTHY LIVING",
    "QUEER VOICES", "FOOD & DRINK", "BUSINESS", "COMEDY", "SPORTS", "BLACK VOICES", "HOME & LIVING", "PARENTS",
    "THE WORLDPOST", "WEDDINGS", "WOMEN", "IMPACT", "DIVORCE", "CRIME", "MEDIA", "WEIRD NEWS", "GREEN", "WORLDPOST",
    "RELIGION", "STYLE", "SCIENCE", "WORLD NEWS", "TASTE", "TECH", "MONEY", "ARTS", "FIFTY", "GOOD NEWS",
    "ARTS & CULTURE", "ENVIRONMENT", "COLLEGE", "LATINO VOICES", "CULTURE & ARTS", "EDUCATION",
)  # fmt: skip
HUFFPOST_SPLITS = {"train": range(20), "val": range(20, 25), "test": range(25, 41), "all": range(41)}
MOD5_SPLITS = {"train": (0, 1, 2), "val": (3,), "test": (4,)}
FEWREL_SPLITS = {"train": range(6), "val": range(6, 11), "test": range(11, 16), "all": range(16)}


@dataclass(frozen=True)
class TextSet:
    """One benchmark: what it is, its split names, and `loader(split, root) -> TextClasses`."""

    description: str
    splits: tuple[str, ...]
    loader: Callable[[str, Root], TextClasses]


@lru_cache(maxsize=16)
def _read_json(path: str, size: int, mtime_ns: int) -> object:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


@lru_cache(maxsize=16)
def _read_json_lines(path: str, size: int, mtime_ns: int) -> tuple[dict, ...]:
    with open(path, encoding="utf-8") as f:
        return tuple(json.loads(line) for line in f if line.strip())


@lru_cache(maxsize=16)
def _read_csv(path: str, size: int, mtime_ns: int) -> tuple[tuple[str, str], ...]:
    with open(path, encoding="utf-8", newline="") as f:
        return tuple((row["text"], row["category"]) for row in csv.DictReader(f))


def _load(reader: Callable[[str, int, int], object], name: str, root: Root):
    """A registered file, checksum-verified on every call, parsed once per (path, size, mtime)."""
    path = fetch(name, root)
    stat = path.stat()
    return reader(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


def _grouped(pairs, names: list[str]) -> TextClasses:
    """(text, class name) pairs -> TextClasses in the order of `names`, texts in file order."""
    groups: dict[str, list[str]] = {name: [] for name in names}
    for text, label in pairs:
        if label in groups:
            groups[label].append(text)
    return TextClasses([groups[n] for n in names], list(names))


def _mod5(names: list[str], split: str) -> list[str]:
    """The sorted names whose position mod 5 falls in the split: 0, 1, 2 train, 3 val, 4 test."""
    return [name for i, name in enumerate(sorted(names)) if i % 5 in MOD5_SPLITS[split]]


def huffpost(split: str, root: Root = None) -> TextClasses:
    """HuffPost headlines (41 categories x 900), class split of Bao et al. (2020): 20 / 5 / 16, or all 41."""
    rows = _load(_read_json_lines, "text/huffpost.json", root)
    ids = list(HUFFPOST_SPLITS[split])
    groups: dict[int, list[str]] = {i: [] for i in ids}
    for row in rows:
        if row["label"] in groups:
            groups[row["label"]].append(row["raw"])
    return TextClasses([groups[i] for i in ids], [HUFFPOST_CATEGORIES[i] for i in ids])


def clinc150(split: str, root: Root = None) -> TextClasses:
    """CLINC150's 150 in-scope intents: class splits by sorted position mod 5 with every in-scope example
    (150 each), or `full-*`: all intents with the examples of one part of the file. Out-of-scope is not used."""
    data = _load(_read_json, "text/clinc150_data_full.json", root)
    intents = sorted({intent for part in ("train", "val", "test") for _, intent in data[part]})
    if split.startswith("full-"):
        return _grouped(data[split.removeprefix("full-")], intents)
    return _grouped([pair for part in ("train", "val", "test") for pair in data[part]], _mod5(intents, split))


def banking77(split: str, root: Root = None) -> TextClasses:
    """BANKING77's 77 intents: `full-train` / `full-test` (the standard few-shot protocol draws K per intent from
    the first and scores the whole second), or class splits by sorted position mod 5 over both files pooled."""
    intents = sorted(_load(_read_json, "text/banking77_categories.json", root))
    parts = {part: _load(_read_csv, f"text/banking77_{part}.csv", root) for part in ("train", "test")}
    if split.startswith("full-"):
        return _grouped(parts[split.removeprefix("full-")], intents)
    return _grouped(parts["train"] + parts["test"], _mod5(intents, split))


def mark_entities(tokens: list[str], head: list[int], tail: list[int]) -> str:
    """The sentence with `[E1] ... [/E1]` around the head's token positions and `[E2] ... [/E2]` around the tail's,
    tokens joined by spaces."""
    words = []
    for i, token in enumerate(tokens):
        words += ["[E1]"] if i == min(head) else []
        words += ["[E2]"] if i == min(tail) else []
        words.append(token)
        words += ["[/E2]"] if i == max(tail) else []
        words += ["[/E1]"] if i == max(head) else []
    return " ".join(words)


def fewrel(split: str, root: Root = None) -> TextClasses:
    """FewRel 1.0's 16 validation relations x 700, entities marked; `all` for evaluation, or a disjoint
    6 / 5 / 5 train / val / test split of the relations sorted by number."""
    relations = _load(_read_json, "text/fewrel_val_wiki.json", root)
    names = _load(_read_json, "text/fewrel_pid2name.json", root)
    ids = sorted(relations, key=lambda pid: int(pid[1:]))
    chosen = [ids[i] for i in FEWREL_SPLITS[split]]
    texts = [[mark_entities(e["tokens"], e["h"][2][0], e["t"][2][0]) for e in relations[pid]] for pid in chosen]
    return TextClasses(texts, [f"{pid} ({names[pid][0]})" for pid in chosen])


TEXT_SETS: dict[str, TextSet] = {
    "huffpost": TextSet("HuffPost headlines, 41 news categories x 900", tuple(HUFFPOST_SPLITS), huffpost),
    "clinc150": TextSet(
        "CLINC150 intents, 150 in-scope intents x 150",
        ("train", "val", "test", "full-train", "full-val", "full-test"),
        clinc150,
    ),
    "banking77": TextSet(
        "BANKING77 intents, 77 banking intents (10003 train, 3080 test)",
        ("train", "val", "test", "full-train", "full-test"),
        banking77,
    ),
    "fewrel": TextSet("FewRel 1.0 validation relations, 16 x 700, entities marked", tuple(FEWREL_SPLITS), fewrel),
}


def text_set(name: str, split: str, root: Root = None) -> TextClasses:
    """The classes of one split of a text benchmark; an unknown name or split is a ConfigError listing the known."""
    entry = TEXT_SETS.get(name)
    if entry is None:
        raise ConfigError(f"unknown text data set {name!r}; choose one of {', '.join(TEXT_SETS)}")
    if split not in entry.splits:
        raise ConfigError(f"unknown {name} split {split!r}; choose one of {', '.join(entry.splits)}")
    return entry.loader(split, root)
