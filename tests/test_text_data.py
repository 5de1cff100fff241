"""Text data: the four benchmarks' checksums, splits and class lists (rules recomputed here from the raw files),
FewRel's entity markers, TextClasses' encoding and K-shot draws, and a user's text files, good and bad."""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from polyskill.data.registry import FILES
from polyskill.data.text_classes import TextClasses, draw_shots
from polyskill.data.text_sets import TEXT_SETS, mark_entities, text_set
from polyskill.data.user_text import read_labelled_text, read_query_text
from polyskill.errors import ConfigError, DataError

ROOT = Path(os.environ["POLYSKILL_DATA"])
TEXT = ROOT / "text"

HUFFPOST_TRAIN = [
    "POLITICS", "WELLNESS", "ENTERTAINMENT", "TRAVEL", "STYLE & BEAUTY", "PARENTING", "HEALTHY LIVING",
    "QUEER VOICES", "FOOD & DRINK", "BUSINESS", "COMEDY", "SPORTS", "BLACK VOICES", "HOME & LIVING", "PARENTS",
    "THE WORLDPOST", "WEDDINGS", "WOMEN", "IMPACT", "DIVORCE",
]  # fmt: skip
HUFFPOST_VAL = ["CRIME", "MEDIA", "WEIRD NEWS", "GREEN", "WORLDPOST"]
HUFFPOST_TEST = [
    "RELIGION", "STYLE", "SCIENCE", "WORLD NEWS", "TASTE", "TECH", "MONEY", "ARTS", "FIFTY", "GOOD NEWS",
    "ARTS & CULTURE", "ENVIRONMENT", "COLLEGE", "LATINO VOICES", "CULTURE & ARTS", "EDUCATION",
]  # fmt: skip


# --- checksums ----------------------------------------------------------------------------------------------------

LOADERS = {  # each registered text file and a split that reads it
    "text/huffpost.json": ("huffpost", "val"),
    "text/clinc150_data_full.json": ("clinc150", "val"),
    "text/banking77_train.csv": ("banking77", "full-train"),
    "text/banking77_test.csv": ("banking77", "full-test"),
    "text/banking77_categories.json": ("banking77", "test"),
    "text/fewrel_val_wiki.json": ("fewrel", "val"),
    "text/fewrel_pid2name.json": ("fewrel", "val"),
}


def test_every_text_file_has_a_loader():
    assert set(LOADERS) == {name for name in FILES if name.startswith("text/")}


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_a_corrupted_file_is_refused_with_its_digest(tmp_path, name):
    (tmp_path / "text").mkdir()
    for other in LOADERS:
        (tmp_path / other).symlink_to(ROOT / other)
    (tmp_path / name).unlink()
    content = bytearray((ROOT / name).read_bytes())
    content[len(content) // 2] ^= 1
    (tmp_path / name).write_bytes(bytes(content))
    with pytest.raises(DataError, match=FILES[name].sha256):
        text_set(*LOADERS[name], root=tmp_path)


def test_a_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="missing"):
        text_set("fewrel", "all", root=tmp_path)


# --- splits -------------------------------------------------------------------------------------------------------

SIZES = {  # (set, split): (classes, examples)
    ("huffpost", "train"): (20, 18000),
    ("huffpost", "val"): (5, 4500),
    ("huffpost", "test"): (16, 14400),
    ("huffpost", "all"): (41, 36900),
    ("clinc150", "train"): (90, 13500),
    ("clinc150", "val"): (30, 4500),
    ("clinc150", "test"): (30, 4500),
    ("clinc150", "full-train"): (150, 15000),
    ("clinc150", "full-val"): (150, 3000),
    ("clinc150", "full-test"): (150, 4500),
    ("banking77", "train"): (47, None),
    ("banking77", "val"): (15, None),
    ("banking77", "test"): (15, None),
    ("banking77", "full-train"): (77, 10003),
    ("banking77", "full-test"): (77, 3080),
    ("fewrel", "train"): (6, 4200),
    ("fewrel", "val"): (5, 3500),
    ("fewrel", "test"): (5, 3500),
    ("fewrel", "all"): (16, 11200),
}


def test_every_split_is_sized_and_the_class_splits_are_disjoint():
    assert set(SIZES) == {(name, split) for name, entry in TEXT_SETS.items() for split in entry.splits}
    for (name, split), (classes, examples) in SIZES.items():
        data = text_set(name, split)
        assert data.num_classes == classes, (name, split)
        assert examples is None or data.num_examples == examples, (name, split)
    for name in TEXT_SETS:
        parts = [set(text_set(name, split).names) for split in ("train", "val", "test")]
        assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2]), name
        whole = "all" if "all" in TEXT_SETS[name].splits else "full-test"
        assert parts[0] | parts[1] | parts[2] == set(text_set(name, whole).names), name
    banking = sum(text_set("banking77", s).num_examples for s in ("train", "val", "test"))
    assert banking == 10003 + 3080


def test_huffpost_classes_are_bao_et_al_s_and_hold_their_label_s_headlines():
    assert text_set("huffpost", "train").names == HUFFPOST_TRAIN
    assert text_set("huffpost", "val").names == HUFFPOST_VAL
    assert text_set("huffpost", "test").names == HUFFPOST_TEST
    assert text_set("huffpost", "all").names == HUFFPOST_TRAIN + HUFFPOST_VAL + HUFFPOST_TEST
    rows = [json.loads(line) for line in (TEXT / "huffpost.json").read_text().splitlines()]
    test = text_set("huffpost", "test")
    for i in (0, 7, 15):  # label ids 25.. in Bao et al.'s file
        assert test.texts[i] == [r["raw"] for r in rows if r["label"] == 25 + i]
    assert "scientists turn to dna technology to search for loch ness monster" in test.texts[2]  # SCIENCE


def _mod5_independently(names: list[str]) -> dict[str, set[str]]:
    ordered = sorted(names)
    return {
        "train": set(ordered[0::5]) | set(ordered[1::5]) | set(ordered[2::5]),
        "val": set(ordered[3::5]),
        "test": set(ordered[4::5]),
    }


def test_clinc150_sorted_mod_5_rule_and_full_splits():
    raw = json.loads((TEXT / "clinc150_data_full.json").read_text())
    intents = {intent for part in ("train", "val", "test") for _, intent in raw[part]}
    assert len(intents) == 150
    for split, names in _mod5_independently(list(intents)).items():
        data = text_set("clinc150", split)
        assert set(data.names) == names and data.names == sorted(names)
        assert {len(t) for t in data.texts} == {150}
    for part, per_class in (("train", 100), ("val", 20), ("test", 30)):
        data = text_set("clinc150", f"full-{part}")
        assert data.names == sorted(intents) and {len(t) for t in data.texts} == {per_class}
        transfer = data.names.index("transfer")
        assert data.texts[transfer] == [text for text, intent in raw[part] if intent == "transfer"]
    oos = {text for part in ("oos_train", "oos_val", "oos_test") for text, _ in raw[part]}
    assert not oos & {t for s in ("train", "val", "test") for group in text_set("clinc150", s).texts for t in group}


def test_banking77_sorted_mod_5_rule_and_the_standard_protocol():
    categories = json.loads((TEXT / "banking77_categories.json").read_text())
    files = {}
    for part in ("train", "test"):
        with open(TEXT / f"banking77_{part}.csv", newline="", encoding="utf-8") as f:
            files[part] = [(row["text"], row["category"]) for row in csv.DictReader(f)]
    for part in ("train", "test"):
        data = text_set("banking77", f"full-{part}")
        assert data.names == sorted(categories)
        counts = Counter(category for _, category in files[part])
        assert [len(t) for t in data.texts] == [counts[name] for name in data.names]
    pooled = Counter(category for part in files.values() for _, category in part)
    for split, names in _mod5_independently(categories).items():
        data = text_set("banking77", split)
        assert set(data.names) == names and [len(t) for t in data.texts] == [pooled[n] for n in data.names]
    card = text_set("banking77", "full-test")
    assert "How do I know if I will get my card, or if it is lost?" not in card.texts[card.names.index("card_arrival")]
    train = text_set("banking77", "full-train")
    assert "How do I know if I will get my card, or if it is lost?" in train.texts[train.names.index("card_arrival")]


def test_fewrel_relations_split_by_number_and_entities_marked():
    data = text_set("fewrel", "all")
    numbers = [int(name.split()[0][1:]) for name in data.names]
    assert numbers == sorted(numbers) and data.names[4] == "P155 (follows)"
    assert text_set("fewrel", "train").names == data.names[:6]
    assert text_set("fewrel", "val").names == data.names[6:11]
    assert text_set("fewrel", "test").names == data.names[11:]
    assert data.texts[4][0] == (
        'Hot Dance Club Play chart , along with album tracks " [E2] Whammy Kiss [/E2] " and '
        '" [E1] Song for a Future Generation [/E1] " .'
    )
    assert all(t.count("[E1]") == t.count("[/E1]") == t.count("[E2]") == t.count("[/E2]") == 1 for t in data.texts[0])


def test_mark_entities_on_single_and_adjacent_spans():
    assert mark_entities(["a", "b", "c"], [0], [1]) == "[E1] a [/E1] [E2] b [/E2] c"
    assert mark_entities(["a", "b", "c", "d"], [2, 3], [0]) == "[E2] a [/E2] b [E1] c d [/E1]"


def test_unknown_set_or_split_lists_the_known_ones():
    with pytest.raises(ConfigError, match="huffpost, clinc150, banking77, fewrel"):
        text_set("agnews", "train")
    with pytest.raises(ConfigError, match="train, val, test, full-train, full-test"):
        text_set("banking77", "full-val")


# --- TextClasses --------------------------------------------------------------------------------------------------


def test_encode_calls_the_encoder_once_and_pads_with_counts():
    classes = TextClasses([["a0", "a1"], ["b0", "b1", "b2"], ["c0"]], ["a", "b", "c"])
    calls = []

    def featurize(texts: list[str]) -> torch.Tensor:
        calls.append(list(texts))
        return torch.tensor([[float(i), 10.0 + i] for i in range(len(texts))])

    data = classes.encode(featurize)
    assert calls == [["a0", "a1", "b0", "b1", "b2", "c0"]]
    assert data.data.shape == (3, 3, 2) and data.counts.tolist() == [2, 3, 1] and data.names == ["a", "b", "c"]
    expected = torch.tensor(
        [[[0, 10], [1, 11], [0, 0]], [[2, 12], [3, 13], [4, 14]], [[5, 15], [0, 0], [0, 0]]], dtype=torch.float32
    )
    assert torch.equal(data.data, expected)
    ids = classes.encode(lambda texts: torch.arange(len(texts) * 8).reshape(len(texts), 2, 4))
    assert ids.data.dtype == torch.int64 and ids.data.shape == (3, 3, 2, 4)
    assert torch.equal(ids.data[2, 0], torch.arange(40, 48).reshape(2, 4)) and not ids.data[2, 1:].any()
    with pytest.raises(DataError, match="6 texts"):
        classes.encode(lambda texts: torch.zeros(len(texts) - 1, 2))


def test_text_classes_checks_flat_and_subset():
    with pytest.raises(DataError, match="2 class names for 1"):
        TextClasses([["x"]], ["a", "b"])
    with pytest.raises(DataError, match="repeated: a"):
        TextClasses([["x"], ["y"]], ["a", "a"])
    with pytest.raises(DataError, match="'b' has no example"):
        TextClasses([["x"], []], ["a", "b"])
    classes = TextClasses([["x", "y"], ["z"]], ["a", "b"])
    texts, labels = classes.flat()
    assert texts == ["x", "y", "z"] and labels.tolist() == [0, 0, 1] and labels.dtype == np.int64
    assert classes.subset([1, 0]).names == ["b", "a"] and classes.subset([1]).texts == [["z"]]
    assert repr(classes) == "TextClasses(2 classes, 3 examples)" and len(classes) == 2


def test_draw_shots_is_seeded_without_replacement_and_names_a_short_class():
    pool = TextClasses([[f"a{i}" for i in range(30)], [f"b{i}" for i in range(12)]], ["a", "b"])
    first, again, other = draw_shots(pool, 5, 0), draw_shots(pool, 5, 0), draw_shots(pool, 5, 1)
    assert first.texts == again.texts and first.texts != other.texts and first.names == ["a", "b"]
    for drawn, texts in zip(first.texts, pool.texts, strict=True):
        assert len(set(drawn)) == 5 and set(drawn) <= set(texts)
    with pytest.raises(DataError, match=r"b \(12\)"):
        draw_shots(pool, 13, 0)
    with pytest.raises(ConfigError, match="at least 1"):
        draw_shots(pool, 0, 0)


# --- a user's text ------------------------------------------------------------------------------------------------


def test_csv_jsonl_and_folder_of_labelled_text(tmp_path):
    csv_file = tmp_path / "support.csv"
    csv_file.write_text(
        '\ufeffid,Text,label\n1,"Hello, World",greet\n2,"two\nlines  ",greet\n\n3,  BYE now ,leave\n', "utf-8"
    )
    data = read_labelled_text(csv_file)
    assert data.names == ["greet", "leave"] and data.texts == [["Hello, World", "two\nlines"], ["BYE now"]]
    jsonl = tmp_path / "support.jsonl"
    jsonl.write_text('{"text": "ünïcode OK", "label": 2}\n\n{"text": "x", "label": "1", "extra": 0}\n', "utf-8")
    assert read_labelled_text(jsonl).names == ["1", "2"] and read_labelled_text(jsonl).texts[1] == ["ünïcode OK"]
    folder = tmp_path / "classes"
    folder.mkdir()
    (folder / "zebra.txt").write_text("Stripes\n\n  Black and white \n")
    (folder / "ant.txt").write_text("Six legs\n")
    (folder / ".DS_Store").write_text("ignored")
    data = read_labelled_text(folder)
    assert data.names == ["ant", "zebra"] and data.texts[1] == ["Stripes", "Black and white"]


def test_query_text_from_txt_csv_and_jsonl(tmp_path):
    (tmp_path / "q.txt").write_text("\ufeff first \n\nsecond\n", "utf-8")
    assert read_query_text(tmp_path / "q.txt") == ["first", "second"]
    (tmp_path / "q.csv").write_text("label,text\nx,one\n,two\n")
    assert read_query_text(tmp_path / "q.csv") == ["one", "two"]
    (tmp_path / "q.jsonl").write_text('{"text": "one"}\n{"text": "two", "label": 3}\n')
    assert read_query_text(tmp_path / "q.jsonl") == ["one", "two"]


def _write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, str):
        path.write_text(content, "utf-8")
    else:
        path.write_bytes(content)
    return path


BAD_LABELLED = {  # name: (file name, content, what the message must say)
    "not utf-8": ("s.csv", b"text,label\nhi,a\ncaf\xe9,b\n", r"s\.csv is not UTF-8 text: byte 19 \(line 3\)"),
    "empty": ("s.csv", b"", r"s\.csv is empty"),
    "blank": ("s.jsonl", "\n  \n", r"s\.jsonl is empty"),
    "binary": ("s.csv", b"text,label\n\x00\x01\x02", r"binary data \(a NUL byte at byte 11, line 2\)"),
    "utf-16": ("s.csv", "text,label\nhi,a\n".encode("utf-16"), "NUL byte"),
    "no header": ("s.csv", "hello,greet\nbye,leave\n", r"no 'text' or 'label' column.*'hello', 'greet'"),
    "no label column": ("s.csv", "text,category\nhi,a\n", r"no 'label' column.*'text', 'category'"),
    "empty text": ("s.csv", "text,label\nhi,a\n  ,b\nyo,b\n", r"line 3: empty text"),
    "empty label": ("s.csv", "text,label\nhi,a\nyo,\nho,b\n", r"line 3: empty label"),
    "short row": ("s.csv", "id,text,label\n1,hi,a\n2,yo\n3,x,b\n", r"line 3: 2 field\(s\), the header has 3"),
    "only a header": ("s.csv", "text,label\n", "has a header but no examples"),
    "one class": ("s.csv", "text,label\nhi,a\nyo,a\n", r"at least 2 classes, found 1 \(a\)"),
    "jsonl not an object": ("s.jsonl", '{"text": "a", "label": 1}\n[1, 2]\n', r"line 2: a JSON list"),
    "jsonl missing key": ("s.jsonl", '{"text": "a", "label": 1}\n{"text": "b"}\n', r"line 2: no 'label' key"),
    "jsonl not json": ("s.jsonl", '{"text": "a", "label": 1}\n{"text": \n', r"line 2: not JSON"),
    "jsonl text not a string": ("s.jsonl", '{"text": 5, "label": 1}\n', r"line 1: 'text' is 5, expected a string"),
    "jsonl null label": ("s.jsonl", '{"text": "a", "label": null}\n', r"line 1: 'label' is null"),
    "wrong kind of file": ("s.txt", "hello\n", r"s\.txt: expected a \.csv or \.jsonl file"),
}


@pytest.mark.parametrize("case", sorted(BAD_LABELLED))
def test_bad_labelled_file_is_one_data_error_naming_it(tmp_path, case):
    name, content, message = BAD_LABELLED[case]
    path = _write(tmp_path / name, content)
    with pytest.raises(DataError, match=message) as caught:
        read_labelled_text(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value).replace(str(path), "")


def test_every_problem_of_a_file_is_gathered(tmp_path):
    rows = "".join(f"{'' if i % 3 == 0 else 'text'},{'x' if i % 2 else 'y'}\n" for i in range(40))
    path = _write(tmp_path / "s.csv", "text,label\n" + rows)
    with pytest.raises(DataError, match=r"14 problem\(s\): line 2: empty text; line 5: empty text.*and 4 more"):
        read_labelled_text(path)


def test_bad_folders_and_paths(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_labelled_text(tmp_path / "nowhere.csv")
    with pytest.raises(DataError, match="is a folder"):
        read_query_text(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.md").write_text("hello")
    with pytest.raises(DataError, match=r"holds no \.txt files"):
        read_labelled_text(empty)
    folder = tmp_path / "classes"
    folder.mkdir()
    _write(folder / "a.txt", "one\n")
    _write(folder / "b.txt", "\n \n")
    _write(folder / "c.txt", b"caf\xe9\n")
    _write(folder / "d.csv", "x")
    (folder / "e.txt").mkdir()
    with pytest.raises(DataError, match=r"4 problem\(s\)") as caught:
        read_labelled_text(folder)
    for expected in ("d.csv (not a <class>.txt file)", "e.txt (not", "b.txt (is empty)", "c.txt (is not UTF-8"):
        assert expected in str(caught.value)
    only = tmp_path / "only"
    only.mkdir()
    _write(only / "a.txt", "one\n")
    with pytest.raises(DataError, match="at least 2 classes"):
        read_labelled_text(only)


def test_bad_query_files(tmp_path):
    with pytest.raises(DataError, match=r"q\.txt does not exist"):
        read_query_text(tmp_path / "q.txt")
    with pytest.raises(DataError, match=r"q\.txt is empty"):
        read_query_text(_write(tmp_path / "q.txt", " \n\n"))
    with pytest.raises(DataError, match=r"no 'text' column.*'sentence'"):
        read_query_text(_write(tmp_path / "q.csv", "sentence\nhi\n"))
    with pytest.raises(DataError, match=r"line 3: empty text"):
        read_query_text(_write(tmp_path / "q.jsonl", '{"text": "a"}\n\n{"text": " "}\n'))
    with pytest.raises(DataError, match=r"expected a \.txt file"):
        read_query_text(_write(tmp_path / "q.xlsx", "x"))


def test_an_absurdly_large_file_is_refused_unread(tmp_path):
    path = tmp_path / "huge.csv"
    with open(path, "wb") as f:
        f.truncate(101 * 2**20)  # sparse: no disk used, and the reader must refuse it before reading
    with pytest.raises(DataError, match="over 100 MB are refused"):
        read_labelled_text(path)
