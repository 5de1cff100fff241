"""Sentences per second of the frozen sentence encoder, polyskill's `SentenceEncoder.embed` against
sentence-transformers' own `encode` on the same texts and threads, and the on-disk cache's second call.

    POLYSKILL_DATA=../shared/data HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/text_encoding.py --texts 2000

The texts are the first `--texts` utterances of CLINC150's training intents (short, as intents are). Each encoder
is timed `--repeats` times, alternating, and the median kept; the cache rows are the first call of
`cached_embeddings` on an empty cache folder (encode + write) and the second (read back).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from machine import describe

from polyskill.data import text_set
from polyskill.nn.text import SentenceEncoder, cached_embeddings
from polyskill.nn.text.models import DEFAULT_ENCODER


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--encoder", default=DEFAULT_ENCODER)
    parser.add_argument("--max-length", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    texts, _ = text_set("clinc150", "train").flat()
    texts = texts[: args.texts]
    encoder = SentenceEncoder(args.encoder, max_length=args.max_length)
    model = encoder.model
    ours = encoder.embed(texts[:64], args.batch_size)
    theirs = torch.as_tensor(model.encode(texts[:64], batch_size=args.batch_size))
    print(f"max |ours - sentence-transformers| on 64 texts: {float((ours - theirs).abs().max()):.2e}")
    runs: dict[str, list[float]] = {"polyskill embed": [], "sentence-transformers encode": []}
    for _ in range(args.repeats):
        runs["polyskill embed"].append(timed(lambda: encoder.embed(texts, args.batch_size)))
        runs["sentence-transformers encode"].append(
            timed(lambda: model.encode(texts, batch_size=args.batch_size, convert_to_tensor=True))
        )
    with tempfile.TemporaryDirectory() as folder:
        first = timed(lambda: cached_embeddings(encoder, texts, Path(folder), args.batch_size))
        second = timed(lambda: cached_embeddings(encoder, texts, Path(folder), args.batch_size))
    print(describe(args.threads))
    print(
        f"{len(texts)} CLINC150 utterances, {args.threads} threads, batch {args.batch_size}, "
        f"max_length {args.max_length}"
    )
    print(f"{'':32s} {'seconds':>8s} {'sentences/s':>12s}")
    base = statistics.median(runs["sentence-transformers encode"])
    for name, seconds in runs.items():
        median = statistics.median(seconds)
        print(f"{name:32s} {median:8.2f} {len(texts) / median:12.0f}   ({base / median:.2f}x sentence-transformers)")
    print(f"{'cache, first call (encode+write)':32s} {first:8.2f} {len(texts) / first:12.0f}")
    print(
        f"{'cache, second call (read)':32s} {second:8.3f} {len(texts) / second:12.0f}   ({first / second:.0f}x faster)"
    )


if __name__ == "__main__":
    main()
