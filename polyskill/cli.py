"""`polyskill ...`: a thin command-line layer over the library.

Every failure the user can act on ends the same way: one `polyskill: error: ...` line on stderr and exit code 2
(a bad argument, recipe, data file or run directory, a file system that says no, memory that runs out). Anything
else is a bug in polyskill: one line saying so, exit code 1, and the traceback with $POLYSKILL_DEBUG=1.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch

from ._version import __version__
from .errors import DataError, PolyskillError, RunError

ENV_DEBUG = "POLYSKILL_DEBUG"

EXAMPLES = """examples:
  polyskill recipes
  polyskill train omniglot-protonet --set train.steps=2000 --out runs/protonet
  polyskill train --resume runs/protonet                  # continue after a crash or Ctrl-C
  polyskill eval runs/protonet --way 5 --way 20 --shot 1 --episodes 1000
  polyskill runs                                          # every run under runs/
  polyskill compare runs/protonet runs/maml
  polyskill report runs/protonet runs/maml --out report.html
  polyskill sweep omniglot-protonet --param train.lr=loguniform(1e-4,1e-2) --trials 20 --workers 2
  polyskill adapt runs/protonet --support my_classes/ --query unlabelled/ --out predictions.csv
  polyskill serve runs/protonet                           # teach it new tasks at http://127.0.0.1:8000/
  polyskill rollout runs/navigation2d-maml --task goal=0.3,-0.2 --video nav.gif
  polyskill data verify
"""

TRAIN_EXAMPLES = """examples:
  polyskill train omniglot-protonet --set train.steps=500 --out runs/p
  polyskill train my_recipe.yaml --set episodes.shot=5 --logger tensorboard,mlflow
  polyskill train --resume runs/p                          # continue a run from its last checkpoint
  polyskill train --resume runs/p --set train.steps=8000    # ... and train it for longer
"""


class UsageError(PolyskillError):
    """A command line argparse rejects: reported like every other bad input, in one line."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one `polyskill: error:` line (with where to find help) instead of a usage
    block; sub-commands get the same class, including those registered by other modules (add_subparsers passes
    the parser's own class on)."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("polyskill").strip()
        raise UsageError(f"{command + ': ' if command else ''}{message} (see {self.prog} --help)")


def _count(least: int) -> Any:
    """An argparse type: an integer >= `least`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"expected an integer >= {least}, got {value}")
        return value

    return parse


def _number(text: str, positive: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise argparse.ArgumentTypeError(f"expected a number {'> 0' if positive else '>= 0'}, got {text}")
    return value


def _positive_number(text: str) -> float:
    """An argparse type: a finite number > 0."""
    return _number(text, positive=True)


def _non_negative(text: str) -> float:
    """An argparse type: a finite number >= 0."""
    return _number(text, positive=False)


def _parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="polyskill",
        description="Meta-learning and multi-task learning.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"polyskill {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True

    train = sub.add_parser(
        "train",
        help="train a recipe into a run directory",
        epilog=TRAIN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument(
        "recipe",
        nargs="?",
        help="a shipped recipe name (see `polyskill recipes`) or a YAML file (not needed with --resume RUN)",
    )
    train.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe value, e.g. --set episodes.shot=5 (repeatable)",
    )
    train.add_argument("--out", help="run directory (default runs/RECIPE)")
    train.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        metavar="RUN",
        help="continue RUN (or the run in --out) from its last checkpoint, identically to a run that was never stopped",
    )
    train.add_argument(
        "--nproc",
        type=int,
        metavar="N",
        help="train on N local processes (the meta-batch is split over them); under torchrun, leave it out",
    )
    train.add_argument(
        "--logger", metavar="NAMES", help="also log to these trackers, comma-separated: tensorboard, mlflow"
    )
    train.add_argument("--no-eval", action="store_true", help="skip the test protocols after training")
    train.add_argument("--root", help="data root (default $POLYSKILL_DATA, else ~/.cache/polyskill)")
    train.add_argument("--quiet", action="store_true", help="no progress bars: for logs and batch jobs")

    ev = sub.add_parser(
        "eval",
        help="evaluate a trained run on fixed test episodes",
        epilog="example: polyskill eval runs/p --way 20 --shot 1 --episodes 1000",
    )
    ev.add_argument("run", help="run directory")
    ev.add_argument("--way", type=int, action="append", help="classes per episode (repeatable)")
    ev.add_argument("--shot", type=int, action="append", help="support examples per class (repeatable)")
    ev.add_argument("--query", type=int, help="query examples per class (default: the recipe's)")
    ev.add_argument("--episodes", type=int, help="number of episodes (default: the recipe's, 1000)")
    ev.add_argument("--split", default="test", choices=["test", "val", "train"])
    ev.add_argument("--seed", type=int, help="episode seed (default: the recipe's)")
    ev.add_argument("--root", help="data root")
    ev.add_argument("--baseline", metavar="RUN", help="multi-task runs: single-task baseline run for delta-m")
    ev.add_argument("--quiet", action="store_true", help="no progress bar")

    aff = sub.add_parser(
        "affinity",
        help="print a multi-task run's task-affinity matrices and save heatmaps",
        epilog="example: polyskill affinity runs/synthetic --out affinity.png --groups 3",
    )
    aff.add_argument("run", help="run directory of a multi-task run")
    aff.add_argument("--out", help="heatmap PNG (default RUN/affinity.png; one file per matrix)")
    aff.add_argument("--groups", type=int, help="suggest at most this many task groups")

    adapt = sub.add_parser(
        "adapt",
        help="label your own images or texts: adapt a trained run to a few labelled examples",
        epilog="examples: polyskill adapt runs/protonet --support shapes/ --query new/ --out predictions.csv\n"
        "          polyskill adapt runs/banking77 --support support.csv --query query.txt --out predictions.csv",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    adapt.add_argument("run", help="run directory of a trained few-shot run")
    adapt.add_argument(
        "--support",
        required=True,
        metavar="PATH",
        help="labelled examples: for images a folder of one sub-folder per class (its name is the label); for "
        "text a CSV or JSONL with text and label columns, or a folder of one <class>.txt per class (a text a line)",
    )
    adapt.add_argument(
        "--query",
        required=True,
        metavar="PATH",
        help="examples to label: a folder of images (sub-folders included), or a .txt of one text a line "
        "(or a CSV / JSONL with a text column)",
    )
    adapt.add_argument("--out", metavar="CSV", help="write predictions here (default: print them)")
    adapt.add_argument(
        "--invert",
        choices=["auto", "yes", "no"],
        default="auto",
        help="turn dark-on-light images into the bright-on-dark ones an Omniglot model saw "
        "(auto: judged per image by its border)",
    )
    adapt.add_argument(
        "--truncate",
        action="store_true",
        help="text runs: cut texts longer than the encoder's window instead of refusing them",
    )
    adapt.add_argument("--device", default="cpu", help="torch device (default cpu)")
    adapt.add_argument("--quiet", action="store_true", help="no progress bar")

    serve = sub.add_parser(
        "serve",
        help="serve trained few-shot runs over HTTP, with a page to teach them new tasks",
        epilog="examples: polyskill serve runs/protonet                        # http://127.0.0.1:8000/\n"
        "          polyskill serve digits=runs/protonet intents=runs/banking77 --port 9000\n"
        "          polyskill serve runs/protonet --host 0.0.0.0 --api-key-file key.txt\n"
        "the API is described in docs/serve.md and, while it runs, at /docs",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("runs", nargs="+", metavar="RUN", help="a trained few-shot run directory, or NAME=RUN")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=_count(0), default=8000, help="port (default 8000; 0: any free port)")
    serve.add_argument(
        "--api-key-file",
        metavar="FILE",
        help="require the key in FILE's first line on every /v1/ request (needed to bind beyond loopback)",
    )
    serve.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="on a loopback bind, also answer requests whose Host header is NAME (a reverse proxy's name)",
    )
    serve.add_argument("--max-request-mb", type=_positive_number, default=32, help="largest request body (default 32)")
    serve.add_argument("--max-images", type=_count(1), default=64, help="images per request (default 64)")
    serve.add_argument("--max-texts", type=_count(1), default=256, help="texts per request (default 256)")
    serve.add_argument("--max-text-chars", type=_count(1), default=4000, help="characters per text (default 4000)")
    serve.add_argument(
        "--max-pixels", type=_count(1), default=4096 * 4096, help="pixels an image may declare (default 4096x4096)"
    )
    serve.add_argument("--max-classes", type=_count(2), default=50, help="classes per task (default 50)")
    serve.add_argument("--max-tasks", type=_count(1), default=1000, help="tasks kept; LRU beyond (default 1000)")
    serve.add_argument(
        "--task-ttl", type=_positive_number, default=3600, help="seconds a task is kept unused (default 3600)"
    )
    serve.add_argument(
        "--batch-window-ms", type=_non_negative, default=5.0, help="how long a prediction waits for others (default 5)"
    )
    serve.add_argument("--max-batch", type=_count(1), default=64, help="queries run together at most (default 64)")
    serve.add_argument(
        "--truncate", action="store_true", help="text runs: cut texts over the encoder's window instead of refusing"
    )
    serve.add_argument("--device", default="cpu", help="torch device (default cpu)")
    serve.add_argument(
        "--worker-id", default="", metavar="ID", help="prefix of task ids, for routing by a reverse proxy (e.g. w1-)"
    )
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="warning")

    sub.add_parser(
        "recipes",
        help="list the shipped recipes",
        epilog="example: polyskill recipes   (then: polyskill train NAME, or copy its YAML from "
        "polyskill/recipes/ and train the file)",
    )

    data = sub.add_parser(
        "data",
        help="show or check the data files",
        epilog="examples: polyskill data list; polyskill data verify --root /data/polyskill",
    )
    data.add_argument(
        "action",
        choices=["list", "verify"],
        help="list: what is present; verify: check the files' SHA-256s, and read every colour set present in "
        "full (decoding each image once into the cache) to count its classes and images against the release",
    )
    data.add_argument("--root", help="data root")
    for register in _registrars():
        register(sub)
    return parser


def _registrars() -> list:
    """Subcommands that live beside the code they drive (runs and compare, report, sweep)."""
    from .report.command import register as report
    from .rollout import register as rollout
    from .rundir.command import register as runs
    from .sweep.command import register as sweep

    return [runs, report, sweep, rollout]


def _positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise PolyskillError(f"{name} must be >= 1, got {value}")


def _without_nproc(argv: list[str]) -> list[str]:
    """The command line minus `--nproc N` / `--nproc=N`: what every launched rank runs."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def _train(args: argparse.Namespace) -> int:
    from .recipes import load
    from .recipes.runner import load_run_recipe, train_run

    if args.nproc is not None:
        _positive("--nproc", args.nproc)
        if "WORLD_SIZE" in os.environ:
            raise PolyskillError("--nproc starts its own processes; under torchrun leave it out")
        if args.nproc > 1:
            from .distributed.launch import launch

            return launch(_without_nproc(args.argv), args.nproc)

    overrides = list(args.overrides)
    if args.logger:
        names = [n.strip() for n in args.logger.split(",") if n.strip()]
        overrides.append(f"train.loggers=[{', '.join(names)}]")
    if isinstance(args.resume, str):
        if args.out and Path(args.out) != Path(args.resume):
            raise PolyskillError(f"--resume {args.resume} and --out {args.out} name different runs; give one")
        args.out = args.resume
    if args.resume and not args.out:
        raise PolyskillError("--resume needs the run to continue: polyskill train --resume RUN")
    if args.resume and (Path(args.out) / "config.yaml").is_file():
        recipe = load_run_recipe(args.out, overrides)
    elif args.recipe is None:
        raise PolyskillError(
            f"no run to resume at {args.out}"
            if args.resume
            else "name a recipe to train (see `polyskill recipes`), or --resume RUN"
        )
    else:
        recipe = load(args.recipe, overrides)
    out = args.out or f"runs/{recipe.name}"
    summary = train_run(
        recipe, out, resume=bool(args.resume), root=args.root, progress=not args.quiet, evaluate=not args.no_eval
    )
    print(f"run saved in {out} ({summary.get('status', 'finished')}, {summary.get('train_seconds')} s)")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from .recipes import EvalRequest
    from .recipes.runner import evaluate_run

    for name in ("query", "episodes"):
        _positive(f"--{name}", getattr(args, name))
    for value in args.shot or []:
        _positive("--shot", value)
    for value in args.way or []:
        if value < 2:
            raise PolyskillError(f"--way must be >= 2 (a 1-way episode is always right), got {value}")
    evaluate_run(
        args.run,
        EvalRequest(
            split=args.split,
            ways=args.way,
            shots=args.shot,
            query=args.query,
            episodes=args.episodes,
            seed=args.seed,
            baseline=args.baseline,
        ),
        root=args.root,
    )
    return 0


def _serve(args: argparse.Namespace) -> int:
    try:
        from .serve.config import Batching, ServeConfig, ServeLimits
        from .serve.security import allowed_hosts, read_api_key
        from .serve.server import serve
    except ImportError as exc:
        raise RunError(
            f"polyskill serve needs the serve extra ({exc.name} is missing): pip install 'polyskill[serve]'"
        ) from None
    if args.worker_id and not all(c.isalnum() or c in "-_." for c in args.worker_id):
        raise UsageError(f"serve: --worker-id takes letters, digits, '-', '_' and '.', got {args.worker_id!r}")
    limits = ServeLimits(
        max_request_bytes=int(args.max_request_mb * 1024 * 1024),
        max_images=args.max_images,
        max_texts=args.max_texts,
        max_text_chars=args.max_text_chars,
        max_pixels=args.max_pixels,
        max_classes=args.max_classes,
        max_tasks=args.max_tasks,
        task_ttl_s=args.task_ttl,
    )
    config = ServeConfig(
        limits=limits,
        batching=Batching(args.batch_window_ms / 1000.0, args.max_batch),
        api_key=read_api_key(args.api_key_file) if args.api_key_file else None,
        allowed_hosts=allowed_hosts(args.host, args.allow_host),
        truncate=args.truncate,
        device=args.device,
        worker_id=args.worker_id,
    )
    serve(args.runs, args.host, args.port, config, echo=lambda line: print(line, flush=True), log_level=args.log_level)
    return 0


def _adapt(args: argparse.Namespace) -> int:
    from .adapt_folders import adapt_folders, write_predictions

    predictions = adapt_folders(
        args.run, args.support, args.query, invert=args.invert, device=args.device, truncate=args.truncate
    )
    if args.out:
        write_predictions(predictions, args.out)
        counts = {c: predictions.labels.count(c) for c in predictions.classes}
        noun = "image" if predictions.column == "file" else "text"
        print(
            f"labelled {len(predictions.examples)} {noun}(s) into {len(predictions.classes)} classes "
            f"({', '.join(f'{c}: {n}' for c, n in counts.items())}); predictions in {args.out}"
        )
    else:
        sys.stdout.write(predictions.to_csv())
    if predictions.transductive:
        print(
            f"transductive: every prediction used all {len(predictions.examples)} query examples together",
            file=sys.stderr if not args.out else sys.stdout,
        )
    return 0


AFFINITY_TITLES = {"cosine": "gradient cosine similarity", "lookahead": "lookahead affinity (step on i, loss of j)"}
MAX_AFFINITY_TASKS = 200  # a heatmap of more tasks has no readable cells (and a huge image)


def _is_number(value: Any) -> bool:
    """A JSON number that can be drawn: int or float, not a bool, not infinite (NaN: a pair never measured)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isinf(value)


def _affinity_report(path: Path) -> tuple[list[str], dict[str, list[list[float]]], dict[str, Any]]:
    """affinity.json's tasks, its matrices by kind and their step counts, or one RunError saying what is wrong."""
    from .train.checkpoint import read_json

    report = read_json(path)
    tasks = report.get("tasks")
    if not isinstance(tasks, list) or not tasks or not all(isinstance(t, str) for t in tasks):
        raise RunError(f"{path} is damaged: 'tasks' must be a non-empty list of task names")
    if len(tasks) > MAX_AFFINITY_TASKS:
        raise RunError(f"{path} holds {len(tasks)} tasks; polyskill affinity shows at most {MAX_AFFINITY_TASKS}")
    matrices = {kind: report[kind] for kind in AFFINITY_TITLES if kind in report}
    if not matrices:
        raise RunError(f"{path} holds no affinity matrix (expected {' or '.join(AFFINITY_TITLES)})")
    n = len(tasks)
    for kind, matrix in matrices.items():
        if (
            not isinstance(matrix, list)
            or len(matrix) != n
            or not all(isinstance(row, list) and len(row) == n and all(map(_is_number, row)) for row in matrix)
        ):
            raise RunError(
                f"{path} is damaged: '{kind}' must be a {n} x {n} matrix of numbers (one row and column per task)"
            )
    steps = report.get("steps")
    return tasks, matrices, steps if isinstance(steps, dict) else {}


def _affinity(args: argparse.Namespace) -> int:
    from .eval.heatmap import display_unit, heatmap_png
    from .mtl.affinity import suggest_groups

    _positive("--groups", args.groups)
    path = Path(args.run) / "affinity.json"
    if not Path(args.run).is_dir():
        raise PolyskillError(f"no run directory at {args.run}")
    if not path.is_file():
        raise PolyskillError(
            f"{args.run} has no affinity.json: train a multi-task run with a gradient aggregator, "
            f"or set mtl.affinity_every to measure it under a loss weighting"
        )
    tasks, matrices, steps = _affinity_report(path)
    out = Path(args.out) if args.out else Path(args.run) / "affinity.png"
    if out.suffix.lower() not in ("", ".png"):
        raise PolyskillError(f"--out {out}: the heatmap is a PNG image; give a name ending in .png")
    width = max(len(t) for t in tasks)
    for kind, matrix in matrices.items():
        unit = display_unit(matrix)
        print(
            f"{AFFINITY_TITLES[kind]} (mean over {steps.get(kind, '?')} steps"
            + (f", in units of {unit:g}):" if unit != 1 else "):")
        )
        print(" " * (width + 1) + " ".join(f"{t[:7]:>7s}" for t in tasks))
        for task, row in zip(tasks, matrix, strict=True):
            print(f"{task:>{width}s} " + " ".join(f"{v / unit:7.3f}" for v in row))
        groups = suggest_groups(np.asarray(matrix, dtype=np.float64), tasks, max_groups=args.groups)
        print("suggested groups: " + " | ".join(", ".join(g) for g in groups))
        target = out if len(matrices) == 1 else out.with_name(f"{out.stem}-{kind}{out.suffix or '.png'}")
        heatmap_png(
            matrix,
            tasks,
            target,
            f"{AFFINITY_TITLES[kind]}: {Path(args.run).name}",
            row_label="task i (gradient / step)",
            col_label="task j",
        )
        print(f"heatmap saved in {target}")
    return 0


def _recipes(_: argparse.Namespace) -> int:
    from .recipes import available

    for name, description in available().items():
        print(f"{name:28s} {description}")
    return 0


def _data(args: argparse.Namespace) -> int:
    from .data.files import status
    from .data.image_set_check import check_image_set
    from .data.image_sets import set_status
    from .data.registry import IMAGE_SETS
    from .data.root import data_root

    root = data_root(args.root)
    verifying = args.action == "verify"
    rows = status(args.root, check=verifying)
    print(f"data root: {root}")
    for entry, state in rows:
        print(f"  {state:8s} {entry.path}")
    failed = []
    for (state, folder, title), name in zip(set_status(args.root), IMAGE_SETS, strict=True):
        detail = "read when loaded" if state == "folder" else "loading it says where to get it"
        if verifying and state == "folder":
            check = check_image_set(name, args.root)
            state, detail = check.state, check.detail
            if check.failed:
                failed.append(f"{folder} ({detail})")
        print(f"  {state:8s} {folder} ({title}; {detail})")
    bad = [e.path for e, s in rows if s == "corrupt"]
    problems = []
    if bad:
        problems.append(
            f"{len(bad)} corrupt file(s) under {root}: delete them and provide them again: {', '.join(bad)}"
        )
    if failed:
        problems.append(f"{len(failed)} colour set(s) under {root} are not the published release: {'; '.join(failed)}")
    if problems:
        raise DataError("; ".join(problems))
    return 0


def _one_line(text: str) -> str:
    """A message on one line: its lines joined with '; ' (a list of bad files stays readable)."""
    return "; ".join(line.strip() for line in str(text).splitlines() if line.strip())


def _fail(message: str, code: int = 2) -> int:
    print(f"polyskill: error: {_one_line(message)}", file=sys.stderr)
    return code


HANDLERS = {
    "train": _train,
    "eval": _eval,
    "adapt": _adapt,
    "serve": _serve,
    "affinity": _affinity,
    "recipes": _recipes,
    "data": _data,
}


def _run(argv: list[str]) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # said by the sub-command, whose --help lists what it takes
        parser.prog = f"polyskill {args.command}"
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.argv = argv
    if getattr(args, "quiet", False):
        from .progress import set_quiet

        set_quiet(True)
    handler = getattr(args, "handler", None) or HANDLERS[args.command]
    return handler(args)


def main(argv: list[str] | None = None) -> int:
    """Run one command; every failure is one line on stderr: exit 2 for what the user can fix, 1 for a bug."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        return _run(argv)
    except BrokenPipeError:  # the reader went away (`polyskill runs | head`): not an error worth a word
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("polyskill: interrupted (a training run continues with --resume)", file=sys.stderr)
        return 130
    except PolyskillError as exc:
        return _fail(str(exc))
    except OSError as exc:  # the file system said no: a path, a permission, a full disk
        where = f": {exc.filename}" if exc.filename is not None else ""
        return _fail(f"{exc.strerror}{where}" if exc.strerror else str(exc) or type(exc).__name__)
    except (MemoryError, torch.OutOfMemoryError) as exc:
        return _fail(
            f"out of memory ({_one_line(str(exc))[:200] or 'MemoryError'}): try a smaller batch, model or image size"
        )
    except Exception as exc:  # a bug: say so in one line, not a traceback; exit 1 tells it from a bad input
        if os.environ.get(ENV_DEBUG, "").lower() not in ("", "0", "false", "no"):
            raise
        detail = _one_line(str(exc))[:300]
        return _fail(
            f"internal error, a bug in polyskill ({type(exc).__name__}{': ' + detail if detail else ''}); "
            f"rerun with {ENV_DEBUG}=1 for the traceback and report it",
            code=1,
        )


if __name__ == "__main__":
    sys.exit(main())
