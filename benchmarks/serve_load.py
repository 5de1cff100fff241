"""Load benchmark of `polyskill serve`: latency and throughput of predictions under a fixed number of concurrent
clients, the server's memory per kept task and under a task limit, batching on and off, and the same work done the
command-line way (`polyskill adapt`, one process per request).

    POLYSKILL_DATA=../shared/data HF_HUB_OFFLINE=1 POLYSKILL_OFFLINE=1 .venv/bin/python benchmarks/serve_load.py

The server is a `polyskill serve` subprocess on a free loopback port; the load comes from this process (asyncio,
one httpx connection per client). Each client sends a fixed number of requests, one after the other, then the
phase ends. A task is taught first: 5 classes x 5 shapes drawn with PIL for the image run, 5 BANKING77 intents
x 5 sentences of its training file for the text run; the queries are held-out drawings and sentences. Without
--image-run / --text-run the runs are trained into a temporary folder: `omniglot-protonet` for --image-steps
steps (the network, hence the cost of a prediction, is the demo's; only its accuracy is lower) and
`banking77-baseline` (frozen all-MiniLM-L6-v2; nothing of the encoder is trained).

Latency is what a client sees, from sending a request to having read its answer; the clients share the machine's
cores with the server, and the table gives both sides' CPU time per request. Memory is the server's VmRSS, on a
fresh server, before and after creating tasks (`--image-tasks` with `--max-tasks`: the task limit must hold it).
The command line is timed per process, end to end (start, load the run, teach, label, write the CSV). `--quick` is
a smoke run of a minute; `--json OUT` also writes every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from machine import machine
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "plus", "cross")
GOAL_P99_MS, GOAL_CLIENTS, GOAL_RATIO = 50.0, 8, 100.0
#: what went wrong with failed requests (the first failure's answer, then any exception), shown at the end
FAILURES: list[str] = []


# -- the server ----------------------------------------------------------------------------------------------------
class Server:
    """A `polyskill serve` subprocess on a free loopback port: its URL, memory and CPU time."""

    def __init__(self, exe: str, runs: list[Path], options: list[str], folder: Path, timeout_s: float = 180.0) -> None:
        self.log = folder / f"serve-{time.monotonic_ns()}.log"
        command = [exe, "serve", *map(str, runs), "--port", "0", *options]
        with self.log.open("w") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        self.pid = self.process.pid
        self.url = self._wait_for_url(timeout_s)

    def _wait_for_url(self, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = re.search(r"^serving .* on (http://\S+?)/? ", self.log.read_text(), re.MULTILINE)
            if found:
                return found.group(1)
            if self.process.poll() is not None:
                raise RuntimeError(f"polyskill serve exited with {self.process.returncode}:\n{self.log.read_text()}")
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"polyskill serve did not start within {timeout_s:.0f} s:\n{self.log.read_text()}")

    def rss_mib(self) -> float:
        """Resident memory (VmRSS) in MiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError(f"no VmRSS for process {self.pid}")

    def cpu_s(self) -> float:
        """User + system CPU seconds the server has used so far (all its threads)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def serving(exe: str, runs: list[Path], options: list[str], folder: Path) -> Iterator[Server]:
    """A running server (`exe serve RUN ...`), stopped on the way out."""
    server = Server(exe, runs, options, folder)
    try:
        yield server
    finally:
        server.stop()


def polyskill() -> str:
    """The `polyskill` command of this interpreter's environment."""
    beside = Path(sys.executable).parent / "polyskill"
    found = str(beside) if beside.exists() else shutil.which("polyskill")
    if found is None:
        raise SystemExit("the polyskill command is not installed in this environment")
    return found


# -- what the clients send -----------------------------------------------------------------------------------------
@dataclass
class Body:
    """One request, encoded once: its bytes, content type and the true labels of its queries."""

    content: bytes
    content_type: str
    truth: list[str]


def draw(shape: str, rng: random.Random, size: int = 64) -> bytes:
    """A PNG of one shape drawn in black on white, jittered in place, size and stroke (a drawing from a page)."""
    image = Image.new("L", (size, size), 255)
    pen = ImageDraw.Draw(image)
    half = rng.uniform(0.25, 0.36) * size
    cx, cy = size / 2 + rng.uniform(-5, 5), size / 2 + rng.uniform(-5, 5)
    width = rng.randint(3, 5)
    box = (cx - half, cy - half, cx + half, cy + half)
    if shape == "circle":
        pen.ellipse(box, outline=0, width=width)
    elif shape == "square":
        pen.rectangle(box, outline=0, width=width)
    elif shape == "triangle":
        pen.polygon([(cx, cy - half), (cx + half, cy + half), (cx - half, cy + half)], outline=0, width=width)
    elif shape == "plus":
        pen.line([(cx, cy - half), (cx, cy + half)], fill=0, width=width)
        pen.line([(cx - half, cy), (cx + half, cy)], fill=0, width=width)
    else:
        pen.line([box[:2], box[2:]], fill=0, width=width)
        pen.line([(box[0], box[3]), (box[2], box[1])], fill=0, width=width)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def multipart(
    images: list[tuple[str, bytes]], model: str | None = None, labels: list[str] | None = None
) -> tuple[bytes, str]:
    """The multipart body and its content type: a task's (model and labels given) or a prediction request's."""
    data: dict[str, Any] = {} if model is None else {"model": model, "labels": labels}
    files = [("images", (name, png, "image/png")) for name, png in images]
    request = httpx.Request("POST", "http://localhost/", data=data, files=files)
    return request.read(), request.headers["content-type"]


def json_body(value: dict[str, Any]) -> tuple[bytes, str]:
    return json.dumps(value).encode(), "application/json"


@dataclass
class Workload:
    """A run's task and its query requests (`queries[n]`: request bodies of n queries each), and the examples
    behind them as (name, label, PNG bytes or text), for the command line."""

    modality: str
    support: Body
    queries: dict[int, list[Body]]
    examples: list[tuple[str, str, Any]]
    held_out: list[tuple[str, str, Any]]


def query_bodies(
    pool: list[tuple[str, str, Any]], sizes: list[int], encode: Any, rng: random.Random, distinct: int = 16
) -> dict[int, list[Body]]:
    """For each size n, `distinct` requests of n queries drawn from `pool` (name, label, payload)."""
    bodies: dict[int, list[Body]] = {}
    for n in sizes:
        bodies[n] = []
        for i in range(distinct):
            chosen = [pool[(i + k) % len(pool)] for k in range(n)] if n == 1 else rng.sample(pool, min(n, len(pool)))
            content, kind = encode(chosen)
            bodies[n].append(Body(content, kind, [label for _, label, _ in chosen]))
    return bodies


def image_workload(model: str, sizes: list[int], shots: int = 5, held_out: int = 10, seed: int = 0) -> Workload:
    """5 shapes x `shots` drawings to teach, `held_out` other drawings of each shape to query."""
    rng = random.Random(seed)
    support = [(f"{s}{i}.png", s, draw(s, rng)) for s in SHAPES for i in range(shots)]
    pool = [(f"q-{s}{i}.png", s, draw(s, rng)) for i in range(held_out) for s in SHAPES]
    content, kind = multipart([(n, png) for n, _, png in support], model, [label for _, label, _ in support])

    def encode(chosen: list[tuple[str, str, bytes]]) -> tuple[bytes, str]:
        return multipart([(n, png) for n, _, png in chosen])

    truth = [label for _, label, _ in support]
    return Workload("image", Body(content, kind, truth), query_bodies(pool, sizes, encode, rng), support, pool)


def text_workload(model: str, sizes: list[int], shots: int = 5, held_out: int = 10, seed: int = 0) -> Workload:
    """5 BANKING77 intents x `shots` training sentences to teach, `held_out` other sentences of each to query."""
    from polyskill.data import text_set

    data = text_set("banking77", "full-train")
    rng = random.Random(seed)
    intents = rng.sample(range(data.num_classes), 5)
    support, pool = [], []
    for c in intents:
        texts = rng.sample(data.texts[c], shots + held_out)
        support += [(t, data.names[c], t) for t in texts[:shots]]
        pool += [(t, data.names[c], t) for t in texts[shots:]]
    rng.shuffle(pool)
    content, kind = json_body({"model": model, "examples": [{"text": t, "label": lab} for t, lab, _ in support]})

    def encode(chosen: list[tuple[str, str, str]]) -> tuple[bytes, str]:
        return json_body({"texts": [t for t, _, _ in chosen]})

    truth = [label for _, label, _ in support]
    return Workload("text", Body(content, kind, truth), query_bodies(pool, sizes, encode, rng), support, pool)


# -- the load ------------------------------------------------------------------------------------------------------
@dataclass
class Load:
    """What one load phase measured."""

    name: str
    clients: int
    requests: int
    queries_per_request: int
    wall_s: float
    latencies_ms: list[float] = field(repr=False)
    errors: int
    correct: int
    answered: int
    server_cpu_s: float
    client_cpu_s: float

    @property
    def p50_ms(self) -> float:
        return float(np.percentile(self.latencies_ms, 50))

    @property
    def p99_ms(self) -> float:
        return float(np.percentile(self.latencies_ms, 99))

    @property
    def rps(self) -> float:
        return self.requests / self.wall_s

    @property
    def qps(self) -> float:
        return self.requests * self.queries_per_request / self.wall_s

    def summary(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "latencies_ms"}
        return out | {"p50_ms": self.p50_ms, "p99_ms": self.p99_ms, "rps": self.rps, "qps": self.qps}


async def _client(
    url: str, path: str, bodies: list[Body], start: int, count: int, expect: int, out: list[tuple[float, int, int]]
) -> None:
    """One client: `count` requests, one after the other, each timed; (ms, error, correct) per request."""
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(base_url=url, timeout=120.0, limits=limits) as client:
        for r in range(count):
            body = bodies[(start + r) % len(bodies)]
            began = time.perf_counter()
            try:
                response = await client.post(path, content=body.content, headers={"content-type": body.content_type})
                elapsed = (time.perf_counter() - began) * 1000
                ok = response.status_code == (201 if expect == 0 else 200)
                labels = [p["label"] for p in response.json()["predictions"]] if ok and expect else []
                ok = ok and len(labels) == expect
                if not ok and not FAILURES:
                    FAILURES.append(f"{response.status_code} {response.text[:300]}")
                correct = sum(a == b for a, b in zip(labels, body.truth, strict=False))
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                FAILURES.append(repr(exc))
                elapsed, ok, correct = (time.perf_counter() - began) * 1000, False, 0
            out.append((elapsed, 0 if ok else 1, correct))


def run_load(
    server: Server, name: str, path: str, bodies: list[Body], clients: int, per_client: int, expect: int
) -> Load:
    """`clients` concurrent clients each sending `per_client` requests to `path`; `expect` queries per request
    (0: task creations, answered 201)."""
    results: list[tuple[float, int, int]] = []

    async def main() -> float:
        began = time.perf_counter()
        await asyncio.gather(
            *(_client(server.url, path, bodies, i * per_client, per_client, expect, results) for i in range(clients))
        )
        return time.perf_counter() - began

    cpu0, client0 = server.cpu_s(), time.process_time()
    wall = asyncio.run(main())
    return Load(
        name=name,
        clients=clients,
        requests=len(results),
        queries_per_request=max(expect, 1),
        wall_s=wall,
        latencies_ms=[r[0] for r in results],
        errors=sum(r[1] for r in results),
        correct=sum(r[2] for r in results),
        answered=(len(results) - sum(r[1] for r in results)) * expect,
        server_cpu_s=server.cpu_s() - cpu0,
        client_cpu_s=time.process_time() - client0,
    )


def teach(server: Server, work: Workload) -> str:
    """Create the workload's task on the server; its id."""
    response = httpx.post(
        f"{server.url}/v1/tasks",
        content=work.support.content,
        headers={"content-type": work.support.content_type},
        timeout=120,
    )
    if response.status_code != 201:
        raise RuntimeError(f"teaching the {work.modality} task failed: {response.status_code} {response.text}")
    return response.json()["task_id"]


def health(server: Server) -> dict[str, Any]:
    return httpx.get(f"{server.url}/v1/health", timeout=30).json()


# -- the command line ----------------------------------------------------------------------------------------------
@dataclass
class CliTiming:
    """Seconds of `polyskill adapt` processes, each teaching the task and labelling `queries` queries."""

    queries: int
    seconds: list[float]
    errors: int

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds)

    @property
    def qps(self) -> float:
        return self.queries / self.median_s


def cli_files(work: Workload, folder: Path, sizes: list[int]) -> tuple[Path, dict[int, Path]]:
    """The workload's support set and a query set of each size, as `polyskill adapt` takes them: for images a
    folder per class and a folder of queries, for text a CSV and a file of one text a line."""
    folder.mkdir(parents=True, exist_ok=True)
    queries: dict[int, Path] = {}
    if work.modality == "image":
        support = folder / "support"
        for name, label, png in work.examples:
            (support / label).mkdir(parents=True, exist_ok=True)
            (support / label / name).write_bytes(png)
        for n in sizes:
            queries[n] = folder / f"query{n}"
            queries[n].mkdir()
            for name, _, png in work.held_out[:n]:
                (queries[n] / name).write_bytes(png)
        return support, queries
    support = folder / "support.csv"
    with support.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["text", "label"])
        writer.writerows([text, label] for text, label, _ in work.examples)
    for n in sizes:
        queries[n] = folder / f"query{n}.txt"
        queries[n].write_text("".join(f"{text}\n" for text, _, _ in work.held_out[:n]))
    return support, queries


def time_cli(exe: str, run: Path, support: Path, query: Path, queries: int, calls: int, folder: Path) -> CliTiming:
    """`calls` runs of `polyskill adapt RUN --support S --query Q`, one process each, timed end to end."""
    seconds, errors = [], 0
    for i in range(calls):
        out = folder / f"predictions-{query.stem}-{i}.csv"
        command = [exe, "adapt", str(run), "--support", str(support), "--query", str(query)]
        began = time.perf_counter()
        done = subprocess.run([*command, "--out", str(out), "--quiet"], capture_output=True, text=True)
        seconds.append(time.perf_counter() - began)
        rows = len(out.read_text().splitlines()) - 1 if out.exists() else -1
        if done.returncode != 0 or rows != queries:
            errors += 1
            print(f"  polyskill adapt failed ({done.returncode}, {rows} rows): {done.stderr[-500:]}", file=sys.stderr)
    return CliTiming(queries, seconds, errors)


# -- memory --------------------------------------------------------------------------------------------------------
def memory(server: Server, work: Workload, checkpoints: list[int], clients: int, warmup: int = 10) -> list[dict]:
    """The server's RSS before and after creating tasks, at each checkpoint count of creations, with the number of
    tasks it keeps. `warmup` tasks are created and deleted first (and a prediction made), so that what the first
    tasks allocate once is not counted per task; the count then starts at 0."""
    ids = [teach(server, work) for _ in range(warmup)]
    predict = work.queries[1][0]
    httpx.post(
        f"{server.url}/v1/tasks/{ids[0]}/predict",
        content=predict.content,
        headers={"content-type": predict.content_type},
        timeout=120,
    ).raise_for_status()
    for task_id in ids:
        httpx.delete(f"{server.url}/v1/tasks/{task_id}", timeout=30).raise_for_status()
    rows: list[dict[str, Any]] = [{"created": 0, "rss_mib": server.rss_mib(), "tasks": health(server)["tasks"]}]
    done = 0
    for target in checkpoints:
        n = target - done
        per = -(-n // clients)
        load = run_load(server, f"create {n}", "/v1/tasks", [work.support], min(clients, n), per, expect=0)
        if load.errors:
            raise RuntimeError(f"{load.errors} of {load.requests} task creations failed")
        done += load.requests
        rows.append(
            {
                "created": done,
                "rss_mib": server.rss_mib(),
                "tasks": health(server)["tasks"],
                "seconds": load.wall_s,
                "create_p50_ms": load.p50_ms,
                "create_p99_ms": load.p99_ms,
                "server_cpu_ms_per_task": 1000 * load.server_cpu_s / load.requests,
            }
        )
    return rows


# -- runs ----------------------------------------------------------------------------------------------------------
def train(exe: str, recipe: str, sets: list[str], out: Path) -> float:
    """Train `recipe` into `out` (no test protocols); the seconds it took."""
    command = [exe, "train", recipe, *[a for s in sets for a in ("--set", s)], "--no-eval"]
    began = time.perf_counter()
    done = subprocess.run([*command, "--out", str(out), "--quiet"], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"training {recipe} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return time.perf_counter() - began


# -- report --------------------------------------------------------------------------------------------------------
def print_table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, ["-" * w for w in widths], *rows]:
        print(
            "  ".join(
                str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )


def load_row(load: Load) -> list[str]:
    return [
        load.name,
        str(load.clients),
        str(load.requests),
        f"{load.p50_ms:.1f}",
        f"{load.p99_ms:.1f}",
        f"{load.rps:.1f}",
        f"{load.qps:.0f}",
        str(load.errors),
        f"{100 * load.correct / max(load.answered, 1):.0f}%",
        f"{1000 * load.server_cpu_s / load.requests:.1f}",
        f"{1000 * load.client_cpu_s / load.requests:.1f}",
    ]


LOAD_HEADER = [
    "phase",
    "clients",
    "requests",
    "p50 ms",
    "p99 ms",
    "req/s",
    "queries/s",
    "errors",
    "correct",
    "server CPU ms/req",
    "client CPU ms/req",
]


# -- main ----------------------------------------------------------------------------------------------------------
def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-run", type=Path, help="a trained image few-shot run (default: train one)")
    parser.add_argument("--text-run", type=Path, help="a trained text few-shot run (default: train one)")
    parser.add_argument("--image-steps", type=int, default=50, help="training steps of the image run it trains")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--requests", type=int, default=150, help="requests per client of 1 query (default 150)")
    parser.add_argument("--batch-requests", type=int, default=25, help="requests per client of 32 queries")
    parser.add_argument("--batch-size", type=int, default=32, help="queries per request of the batch phases")
    parser.add_argument("--warmup", type=int, default=5, help="requests per client before each measured phase")
    parser.add_argument("--compare-requests", type=int, default=60, help="requests per client, batching on/off")
    parser.add_argument("--max-tasks", type=int, default=1000, help="the server's --max-tasks in the memory test")
    parser.add_argument("--image-tasks", type=int, default=10000, help="image tasks created in the memory test")
    parser.add_argument("--text-tasks", type=int, default=200, help="text tasks created in the memory test")
    parser.add_argument("--cli-calls", type=int, default=3, help="`polyskill adapt` processes timed per size")
    parser.add_argument("--polyskill", help="the polyskill command to measure (default: this environment's)")
    parser.add_argument("--skip", default="", help="comma-separated phases to leave out: image,text,cli,memory")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    parser.add_argument("--quick", action="store_true", help="a tiny smoke run (seconds, not minutes)")
    args = parser.parse_args()
    if args.quick:
        args.image_steps = min(args.image_steps, 5)
        args.clients, args.requests, args.batch_requests, args.warmup = min(args.clients, 4), 10, 3, 1
        args.compare_requests, args.max_tasks, args.image_tasks, args.text_tasks = 10, 20, 60, 8
        args.cli_calls = 1
    return args


def load_phases(
    exe: str, modality: str, run: Path, work: Workload, args: argparse.Namespace, folder: Path, report: dict
) -> list[Load]:
    """Teach the task, then the 1-query and the batch phases (each after a warm-up) on a server with the default
    options; for images also the short batching comparison against a server that does not batch."""
    loads = []
    with serving(exe, [run], [], folder) as server:
        report[f"{modality}_rss_idle_mib"] = server.rss_mib()
        path = f"/v1/tasks/{teach(server, work)}/predict"
        for n in work.queries:
            per = args.requests if n == 1 else args.batch_requests
            run_load(server, "warm-up", path, work.queries[n], args.clients, args.warmup, n)
            loads.append(run_load(server, f"{modality}, {n} per request", path, work.queries[n], args.clients, per, n))
            print_table([load_row(loads[-1])], LOAD_HEADER)
        report[f"{modality}_rss_after_load_mib"] = server.rss_mib()
        if modality == "image":
            on = run_load(server, "batching on (5 ms, 64)", path, work.queries[1], 8, args.compare_requests, 1)
            report["batching_on"] = on.summary()
    if modality == "image":
        with serving(exe, [run], ["--batch-window-ms", "0", "--max-batch", "1"], folder) as server:
            path = f"/v1/tasks/{teach(server, work)}/predict"
            run_load(server, "warm-up", path, work.queries[1], 8, args.warmup, 1)
            off = run_load(server, "batching off (0 ms, 1)", path, work.queries[1], 8, args.compare_requests, 1)
            report["batching_off"] = off.summary()
    return loads


def main() -> None:
    args = parse_args()
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    exe = args.polyskill or polyskill()
    sizes = [1, args.batch_size]
    report: dict[str, Any] = {"arguments": {k: str(v) for k, v in vars(args).items()}, "load_at_start": os.getloadavg()}
    began = time.perf_counter()
    loads: list[Load] = []
    cli: dict[tuple[str, int], CliTiming] = {}
    with tempfile.TemporaryDirectory(prefix="serve-load-") as tmp:
        folder = Path(tmp)
        runs: dict[str, Path] = {}
        if "image" not in skip:
            runs["image"] = args.image_run or folder / "protonet"
            if args.image_run is None:
                seconds = train(exe, "omniglot-protonet", [f"train.steps={args.image_steps}"], runs["image"])
                print(f"trained omniglot-protonet for {args.image_steps} steps in {seconds:.0f} s")
        if "text" not in skip:
            runs["text"] = args.text_run or folder / "banking77"
            if args.text_run is None:
                seconds = train(exe, "banking77-baseline", ["train.steps=2"], runs["text"])
                print(f"trained banking77-baseline (frozen encoder) in {seconds:.0f} s")
        for modality, run in runs.items():
            model = run.resolve().name
            work = image_workload(model, sizes) if modality == "image" else text_workload(model, sizes)
            if "cli" not in skip:
                support, queries = cli_files(work, folder / f"cli-{modality}", sizes)
                for n, query in queries.items():
                    cli[modality, n] = time_cli(exe, run, support, query, n, args.cli_calls, folder)
                    print(f"polyskill adapt, {modality}, {n} per call: {cli[modality, n].median_s:.2f} s")
            loads += load_phases(exe, modality, run, work, args, folder, report)
            if "memory" not in skip:
                count = args.image_tasks if modality == "image" else args.text_tasks
                marks = sorted({min(args.max_tasks, count), *[m for m in (count // 2, count) if m > 0]})
                with serving(exe, [run], ["--max-tasks", str(args.max_tasks)], folder) as server:
                    report[f"{modality}_memory"] = memory(server, work, marks, args.clients)
                print(f"memory, {modality}: {report[f'{modality}_memory'][-1]}")
    report["machine"], report["seconds"] = machine(), time.perf_counter() - began
    report["loads"] = [load.summary() for load in loads]
    report["cli"] = {
        f"{m}-{n}": {"queries": t.queries, "seconds": t.seconds, "errors": t.errors, "qps": t.qps}
        for (m, n), t in cli.items()
    }
    summarize(report, loads, cli, args)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


def summarize(report: dict[str, Any], loads: list[Load], cli: dict[tuple[str, int], CliTiming], args: Any) -> None:
    """The tables and the goals."""
    info = report["machine"]
    print()
    print(
        f"{info['cpu']}, {info['cores']} cores, torch {info['torch']}; load average {report['load_at_start'][0]:.1f} "
        f"at the start, {info['load_average'][0]:.1f} at the end; {report['seconds']:.0f} s in all"
    )
    print("\npredictions (latency seen by the client; queries/s = images or sentences labelled per second)")
    print_table([load_row(load) for load in loads], LOAD_HEADER)
    if "batching_on" in report and "batching_off" in report:
        print("\nbatching, 8 clients x 1 image")
        rows = []
        for key in ("batching_on", "batching_off"):
            s = report[key]
            rows.append(
                [
                    s["name"],
                    f"{s['p50_ms']:.1f}",
                    f"{s['p99_ms']:.1f}",
                    f"{s['qps']:.0f}",
                    str(s["errors"]),
                    f"{1000 * s['server_cpu_s'] / s['requests']:.1f}",
                ]
            )
        print_table(rows, ["server", "p50 ms", "p99 ms", "queries/s", "errors", "server CPU ms/req"])
    if cli:
        print("\nthe command line: one `polyskill adapt` process per request")
        rows = []
        for (modality, n), timing in cli.items():
            served = next((ld for ld in loads if ld.name == f"{modality}, {n} per request"), None)
            ratio = f"{served.qps / timing.qps:.0f}x" if served else "-"
            rows.append(
                [
                    f"{modality}, {n} per call",
                    str(len(timing.seconds)),
                    f"{timing.median_s:.2f}",
                    f"{min(timing.seconds):.2f}-{max(timing.seconds):.2f}",
                    f"{timing.qps:.2f}",
                    f"{served.qps:.0f}" if served else "-",
                    ratio,
                    str(timing.errors),
                ]
            )
        header = [
            "request",
            "calls",
            "median s",
            "range s",
            "CLI queries/s",
            "server queries/s",
            "server/CLI",
            "errors",
        ]
        print_table(rows, header)
    for modality in ("image", "text"):
        rows = report.get(f"{modality}_memory")
        if not rows:
            continue
        idle, loaded = report.get(f"{modality}_rss_idle_mib"), report.get(f"{modality}_rss_after_load_mib")
        print(
            f"\nmemory, {modality} run, a fresh server with --max-tasks {args.max_tasks}, {args.clients} clients "
            "creating tasks"
            + (f" (the load phases' server: {idle:.0f} MiB idle, {loaded:.0f} MiB after its load)" if idle else "")
        )
        base = rows[0]["rss_mib"]
        table = [
            [
                str(r["created"]),
                str(r["tasks"]),
                f"{r['rss_mib']:.1f}",
                f"{r['rss_mib'] - base:+.1f}",
                f"{1024 * (r['rss_mib'] - base) / r['tasks']:.1f}" if r["tasks"] else "-",
                f"{r['created'] / max(sum(x['seconds'] for x in rows[1 : i + 1]), 1e-9):.0f}" if i else "-",
                f"{r.get('create_p50_ms', 0):.0f} / {r.get('create_p99_ms', 0):.0f}" if i else "-",
                f"{r.get('server_cpu_ms_per_task', 0):.1f}" if i else "-",
            ]
            for i, r in enumerate(rows)
        ]
        header = [
            "tasks created",
            "tasks kept",
            "RSS MiB",
            "growth MiB",
            "KiB per kept task",
            "created/s",
            "p50/p99 ms",
            "server CPU ms/task",
        ]
        print_table(table, header)
    print("\ngoals")
    single = next((ld for ld in loads if ld.name == "image, 1 per request"), None)
    if single is not None:
        verdict = "met" if single.p99_ms < GOAL_P99_MS and single.clients == GOAL_CLIENTS else "missed"
        if single.clients != GOAL_CLIENTS:
            verdict = f"not measured ({single.clients} clients, not {GOAL_CLIENTS})"
        print(
            f"  single-image p99 {single.p99_ms:.1f} ms with {single.clients} clients "
            f"(goal < {GOAL_P99_MS:.0f} ms): {verdict}"
        )
    for (modality, n), timing in cli.items():
        served = next((ld for ld in loads if ld.name == f"{modality}, {n} per request"), None)
        if served is not None:
            ratio = served.qps / timing.qps
            verdict = "met" if ratio >= GOAL_RATIO else "missed"
            print(
                f"  {modality}, {n} per request: server/CLI queries/s {ratio:.0f}x "
                f"(goal >= {GOAL_RATIO:.0f}x): {verdict}"
            )
    errors = sum(ld.errors for ld in loads)
    print(f"  failed requests: {errors} of {sum(ld.requests for ld in loads)}")
    for failure in FAILURES[:5]:
        print(f"  a failure: {failure}")


if __name__ == "__main__":
    main()
