"""Peak memory and time of transductive batch norm over a large query set: MAML's predictor (Conv4-64, 28x28,
5-way) scoring N queries through `FewShotClassifier` in one forward pass, against batches of 256 with the whole
set's statistics gathered layer by layer first (`transduce_in_chunks`). Each case runs in a fresh process; the
memory is the rise of its peak resident set over what it held just before scoring.

    python benchmarks/transductive_memory.py [--queries 2000 8000] [--chunk 256]
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import time

import torch


def _case(queries: int, batch_size: int, results: multiprocessing.Queue) -> None:
    from polyskill.classifier import FewShotClassifier
    from polyskill.meta import MAML
    from polyskill.nn import Conv4

    torch.set_num_threads(1)
    torch.manual_seed(0)
    algo = MAML(Conv4(out_features=5), inner_steps=1).eval()
    clf = FewShotClassifier(algo, None, batch_size=batch_size)
    adapted = clf.adapt_task(torch.rand(5, 1, 28, 28), torch.arange(5))
    x = torch.rand(queries, 1, 28, 28)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    probabilities = clf.task_probabilities(adapted, x)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    results.put(((peak - before) / 2**10, seconds, probabilities[:50].tolist()))  # plain lists: no shared memory


def run(queries: int, batch_size: int) -> tuple[float, float, torch.Tensor]:
    """(peak memory rise in MiB, seconds, the first 50 rows of probabilities) in a fresh process."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    process = context.Process(target=_case, args=(queries, batch_size, results))
    process.start()
    outcome = results.get()
    process.join()
    memory, seconds, rows = outcome
    return memory, seconds, torch.tensor(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, nargs="+", default=[2000, 8000])
    parser.add_argument("--chunk", type=int, default=256)
    args = parser.parse_args()
    print("queries | one pass: memory, time | chunks: memory, time | largest difference in probabilities")
    for queries in args.queries:
        whole_memory, whole_seconds, whole = run(queries, queries)
        chunk_memory, chunk_seconds, chunked = run(queries, args.chunk)
        difference = (whole - chunked).abs().max().item()
        print(
            f"{queries} | {whole_memory:.0f} MiB, {whole_seconds:.1f} s | {chunk_memory:.0f} MiB, {chunk_seconds:.1f} s"
            f" | {difference:.1e}",
            flush=True,
        )


if __name__ == "__main__":
    main()
