"""Episodes per second of polyskill's EpisodeSampler against learn2learn's TaskDataset, side by side.

Both samplers draw N-way K-shot Q-query episodes from the same Omniglot "vinyals/train" images (4112 classes x 20,
1x28x28, float32 in [0, 1]). learn2learn runs in its own interpreter (the peers venv built by
shared/bench/setup_peers.sh) as a long-lived subprocess of this script, and the two are timed in turn
(ours, peer, ours, peer, ...) so both see the same machine load; the table gives medians and ratios.

    POLYSKILL_DATA=../shared/data .venv/bin/python benchmarks/episode_sampling.py --repeats 5 --seconds 3

The subprocess is this same file run with `--peer-worker DIR`; it imports only numpy, torch and learn2learn.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO, Any

from machine import machine

CONFIGS: tuple[tuple[int, int, int], ...] = ((5, 1, 15), (20, 5, 15))
SPLIT = "vinyals/train"
SETUP_HINT = "bash ../shared/bench/setup_peers.sh   (from the repository root; PEERS=DIR builds elsewhere)"
OURS_1, OURS_B, PEER, PEER_FUSED = "ours-1", "ours-batch", "peer", "peer-fused"


def timed_loop(step: Callable[[], object], seconds: float, per_call: int = 1) -> tuple[int, float]:
    """Call `step` until `seconds` have passed; (episodes drawn, elapsed). Shared by both sides so they time alike."""
    clock = time.perf_counter
    calls, start = 0, clock()
    end = start + seconds
    while True:
        step()
        calls += 1
        now = clock()
        if now >= end:
            return calls * per_call, now - start


# --- peer side: runs under the peers interpreter, no polyskill import -------------------------------------------


def peer_worker(data_dir: Path, configs: list[list[int]], threads: int, seed: int) -> None:
    """Serve timing requests for learn2learn TaskDatasets over the saved tensors, one JSON line per reply.

    Protocol lines go to a private copy of stdout; fd 1 is pointed at stderr so that library chatter
    cannot corrupt them.
    """
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    import random

    import learn2learn as l2l
    import numpy as np
    import torch
    from learn2learn.data.transforms import ConsecutiveLabels, FusedNWaysKShots, KShots, LoadData, NWays, RemapLabels

    torch.set_num_threads(threads)
    random.seed(seed)
    torch.manual_seed(seed)
    x = torch.from_numpy(np.load(data_dir / "x.npy"))
    y = torch.from_numpy(np.load(data_dir / "y.npy"))
    dataset = l2l.data.MetaDataset(torch.utils.data.TensorDataset(x, y))

    tasksets: dict[str, Any] = {}
    shapes: dict[str, list[int]] = {}
    for way, shot, query in configs:
        pipelines = {
            PEER: [
                NWays(dataset, n=way),
                KShots(dataset, k=shot + query),
                LoadData(dataset),
                RemapLabels(dataset),
                ConsecutiveLabels(dataset),
            ],
            PEER_FUSED: [
                FusedNWaysKShots(dataset, n=way, k=shot + query),
                LoadData(dataset),
                RemapLabels(dataset),
                ConsecutiveLabels(dataset),
            ],
        }
        for name, transforms in pipelines.items():
            key = f"{way}-{shot}-{query}/{name}"
            tasksets[key] = l2l.data.TaskDataset(dataset, task_transforms=transforms, num_tasks=-1)
            for _ in range(20):
                images, labels = tasksets[key].sample()
            shapes[key] = [*images.shape, int(labels.max()) + 1]

    def reply(message: dict) -> None:
        channel.write(json.dumps(message) + "\n")

    reply(
        {
            "ready": True,
            "learn2learn": l2l.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "checksum": float(x.sum(dtype=torch.float64)),
            "shapes": shapes,
        }
    )
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("cmd") == "quit":
            return
        episodes, elapsed = timed_loop(tasksets[request["key"]].sample, request["seconds"])
        reply({"episodes": episodes, "seconds": elapsed})


# --- driver side: polyskill's venv ----------------------------------------------------------------------------


class PeerFailed(Exception):
    """The peer subprocess exited or answered unexpectedly."""


class Peer:
    """The learn2learn subprocess: started once, asked to time one taskset at a time."""

    def __init__(
        self,
        python: str,
        data_dir: Path,
        configs: tuple[tuple[int, int, int], ...],
        threads: int,
        seed: int,
        log: IO[str],
    ) -> None:
        self.log = log
        command = [
            python,
            str(Path(__file__).resolve()),
            "--peer-worker",
            str(data_dir),
            "--peer-configs",
            json.dumps([list(c) for c in configs]),
            "--threads",
            str(threads),
            "--seed",
            str(seed),
        ]
        try:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                bufsize=1,
                cwd=tempfile.gettempdir(),
            )
        except OSError as exc:
            raise PeerFailed(f"cannot start the peer {python}: {exc}") from None
        self.info = self._read()

    def _read(self) -> dict:
        line = self.process.stdout.readline() if self.process.stdout else ""
        if not line:
            self.process.wait(timeout=30)
            self.log.flush()
            self.log.seek(0)
            tail = "".join(self.log.readlines()[-15:])
            raise PeerFailed(f"the peer exited with code {self.process.returncode}:\n{tail}")
        return json.loads(line)

    def time(self, key: str, seconds: float) -> float:
        """Episodes per second of taskset `key` over about `seconds`."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"key": key, "seconds": seconds}) + "\n")
        self.process.stdin.flush()
        answer = self._read()
        return answer["episodes"] / answer["seconds"]

    def close(self) -> None:
        """Ask the worker to quit; stop it if it does not."""
        if self.process.poll() is None:
            try:
                assert self.process.stdin is not None
                self.process.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self.process.stdin.close()
                self.process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()


@dataclass
class Row:
    """One sampler's rates over the repeats of one configuration."""

    key: str
    label: str
    rates: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.rates)


def default_peers() -> str:
    """The peers interpreter: $PEERS/bin/python, else /tmp/peers/bin/python."""
    return str(Path(os.environ.get("PEERS", "/tmp/peers")) / "bin" / "python")


def save_tensors(data: Any, directory: Path) -> float:
    """Write the dataset as x.npy float32 [C*E, *shape] in [0, 1] and y.npy int64 class labels; return sum(x)."""
    import numpy as np
    import torch

    from polyskill.data.classes import to_float

    classes, examples = data.shape[:2]
    x = to_float(data.reshape(classes * examples, *data.shape[2:]).clone())
    np.save(directory / "x.npy", x.numpy())
    np.save(directory / "y.npy", torch.arange(classes).repeat_interleave(examples).numpy())
    return float(x.sum(dtype=torch.float64))


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Load Omniglot, start the peer, time every sampler in turn, and return the results."""
    import torch

    import polyskill.data as pdata

    torch.set_num_threads(args.threads)
    dataset = pdata.omniglot(split=SPLIT)
    if not bool((dataset.counts == dataset.data.shape[1]).all()):
        raise SystemExit("episode_sampling: expected every Omniglot class to hold all its drawings")
    samplers = {c: pdata.EpisodeSampler(dataset, *c, seed=args.seed) for c in CONFIGS}
    info = machine()
    started = datetime.datetime.now(datetime.UTC)

    with tempfile.TemporaryDirectory(prefix="episode-bench-") as tmp, tempfile.TemporaryFile("w+") as log:
        checksum = save_tensors(dataset.data, Path(tmp))
        peer = Peer(args.peers, Path(tmp), CONFIGS, args.threads, args.seed, log)
        try:
            if not peer.info.get("ready"):
                raise PeerFailed(f"unexpected first message from the peer: {peer.info}")
            if abs(peer.info["checksum"] - checksum) > 1e-6 * abs(checksum):
                raise PeerFailed(f"the peer sees different data (sum {peer.info['checksum']} vs {checksum})")
            results = []
            for config, sampler in samplers.items():
                way, shot, query = config
                batch = sampler.sample(1)
                ours_images = batch.support_x.shape[1] + batch.query_x.shape[1]
                name = f"{way}-{shot}-{query}"
                for kind in (PEER, PEER_FUSED):
                    peer_shape = peer.info["shapes"][f"{name}/{kind}"]
                    if (
                        peer_shape[0] != ours_images
                        or peer_shape[-1] != way
                        or list(batch.support_x.shape[2:]) != peer_shape[1:-1]
                    ):
                        raise PeerFailed(f"{name}/{kind}: peer episode {peer_shape} vs ours {ours_images} images")
                for _ in range(20):
                    sampler.sample(1)
                sampler.sample(args.batch)
                rows = [
                    Row(OURS_1, "polyskill sample(1)"),
                    Row(PEER, "learn2learn TaskDataset.sample()"),
                    Row(OURS_B, f"polyskill sample({args.batch}), per episode"),
                    Row(PEER_FUSED, "learn2learn fused TaskDataset.sample()"),
                ]
                for _ in range(args.repeats):
                    for row in rows:
                        if row.key == OURS_1:
                            episodes, elapsed = timed_loop(partial(sampler.sample, 1), args.seconds)
                            row.rates.append(episodes / elapsed)
                        elif row.key == OURS_B:
                            episodes, elapsed = timed_loop(
                                partial(sampler.sample, args.batch), args.seconds, args.batch
                            )
                            row.rates.append(episodes / elapsed)
                        else:
                            row.rates.append(peer.time(f"{name}/{row.key}", args.seconds))
                by_key = {row.key: row for row in rows}
                base = by_key[PEER].median
                results.append(
                    {
                        "way": way,
                        "shot": shot,
                        "query": query,
                        "images_per_episode": ours_images,
                        "rows": rows,
                        "ratio": by_key[OURS_1].median / base,
                        "ratio_batch": by_key[OURS_B].median / base,
                        "ratio_vs_best_peer": by_key[OURS_1].median / max(base, by_key[PEER_FUSED].median),
                    }
                )
        finally:
            peer.close()

    info["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    return {
        "date": started.isoformat(timespec="seconds"),
        "machine": info,
        "peer": {k: peer.info[k] for k in ("learn2learn", "torch", "python")},
        "settings": {
            "split": SPLIT,
            "classes": dataset.num_classes,
            "examples_per_class": dataset.data.shape[1],
            "repeats": args.repeats,
            "seconds": args.seconds,
            "threads": args.threads,
            "batch": args.batch,
            "seed": args.seed,
            "peers": args.peers,
        },
        "results": results,
    }


def report(result: dict[str, Any]) -> str:
    """The printed table: machine and versions, then per configuration each sampler's median rate and ratio."""
    m, s, p = result["machine"], result["settings"], result["peer"]
    load = " ".join(f"{v:.2f}" for v in m["load_average"] or [])
    load_end = " ".join(f"{v:.2f}" for v in m["load_average_end"] or [])
    lines = [
        (
            f"Episode sampling, Omniglot {s['split']} ({s['classes']} classes x {s['examples_per_class']}, 1x28x28 "
            f"float32 in [0,1], same tensors on both sides)"
        ),
        f"date     {result['date']}",
        (
            f"machine  {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable), load average {load} at start, "
            f"{load_end} at end"
        ),
        (
            f"software python {m['python']}, torch {m['torch']} (polyskill) / torch {p['torch']} + learn2learn "
            f"{p['learn2learn']} (peer, python {p['python']})"
        ),
        (
            f"method   {s['repeats']} repeats x {s['seconds']:g} s per sampler, alternating polyskill/learn2learn, "
            f"{s['threads']} torch thread(s) each; median episodes/s (min..max)"
        ),
        "",
    ]
    header = f"{'episode':<22}{'sampler':<40}{'episodes/s':>12}  {'min..max':<19}{'vs l2l':>8}"
    lines += [header, "-" * len(header)]
    summary = []
    for r in result["results"]:
        base = next(row.median for row in r["rows"] if row.key == PEER)
        title = f"{r['way']}-way {r['shot']}-shot {r['query']}-q"
        for i, row in enumerate(r["rows"]):
            span = f"{min(row.rates):,.0f}..{max(row.rates):,.0f}"
            lines.append(
                f"{title if i == 0 else '':<22}{row.label:<40}{row.median:>12,.0f}  {span:<19}"
                f"{row.median / base:>7.2f}x"
            )
        summary.append(
            f"{title}: polyskill sample(1) / learn2learn TaskDataset = {r['ratio']:.2f}x "
            f"(vs the faster learn2learn pipeline {r['ratio_vs_best_peer']:.2f}x; "
            f"sample({s['batch']}) per episode {r['ratio_batch']:.2f}x), "
            f"{r['images_per_episode']} images per episode"
        )
    legend = [
        "",
        "learn2learn TaskDataset: NWays(n), KShots(k+q), LoadData, RemapLabels, ConsecutiveLabels over a",
        "MetaDataset(TensorDataset(x, y)); fused: FusedNWaysKShots(n, k+q), LoadData, RemapLabels,",
        "ConsecutiveLabels. Both return way*(shot+query) images per episode, unsplit; polyskill returns",
        "them split into support and query. vs l2l = median rate / learn2learn TaskDataset median rate.",
    ]
    return "\n".join(lines + legend + [""] + summary)


def to_json(result: dict[str, Any]) -> dict[str, Any]:
    """The results with each row's rates and median as plain numbers."""
    out = dict(result)
    out["results"] = [
        {
            **r,
            "rows": [
                {"key": row.key, "sampler": row.label, "episodes_per_s": row.rates, "median": row.median}
                for row in r["rows"]
            ],
        }
        for r in result["results"]
    ]
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; `--peer-worker` is internal (the subprocess entry point)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per sampler (default 5)")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of one timed run (default 3)")
    parser.add_argument(
        "--peers",
        metavar="PATH",
        default=default_peers(),
        help="python of the peers venv, or the venv folder (default $PEERS/bin/python or /tmp/peers/bin/python)",
    )
    parser.add_argument("--json", metavar="OUT", help="also write the results as JSON to OUT")
    parser.add_argument("--batch", type=int, default=32, help="batch size of the extra sample(B) row (default 32)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on each side (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--peer-worker", metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--peer-configs", default=json.dumps([list(c) for c in CONFIGS]), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.seconds <= 0 or args.batch < 1 or args.threads < 1:
        parser.error("--repeats, --batch and --threads must be >= 1 and --seconds > 0")
    if Path(args.peers).is_dir():
        args.peers = str(Path(args.peers) / "bin" / "python")
    args.peers = os.path.abspath(args.peers)
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with --peer-worker, the learn2learn side of it)."""
    args = parse_args(argv)
    if args.peer_worker:
        peer_worker(Path(args.peer_worker), json.loads(args.peer_configs), args.threads, args.seed)
        return 0
    if not (os.path.isfile(args.peers) and os.access(args.peers, os.X_OK)):
        print(
            f"episode_sampling: no peer interpreter at {args.peers}.\nBuild the peers venv with:\n  {SETUP_HINT}\n"
            f"or pass --peers PATH (or set PEERS=DIR).",
            file=sys.stderr,
        )
        return 2
    from polyskill.errors import PolyskillError

    try:
        result = run(args)
    except PolyskillError as exc:
        print(f"episode_sampling: {exc}", file=sys.stderr)
        return 2
    except PeerFailed as exc:
        print(
            f"episode_sampling: {exc}\nIf learn2learn is missing, rebuild the peers venv with:\n  {SETUP_HINT}",
            file=sys.stderr,
        )
        return 2
    print(report(result))
    if args.json:
        Path(args.json).write_text(json.dumps(to_json(result), indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
