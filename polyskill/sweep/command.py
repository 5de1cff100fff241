"""`polyskill sweep`: the command-line face of `run_sweep`."""

from __future__ import annotations

import argparse

from .pruning import PRUNERS, SAMPLERS
from .space import FORMS

EPILOG = f"""parameter specs (--param, repeatable; quote them for the shell; values are read as YAML):
  {FORMS.replace(", ", chr(10) + "  ")}

examples:
  polyskill sweep omniglot-protonet --param 'train.lr=loguniform(1e-4,1e-2)' --param 'model.hidden=choice(32,64)' \\
      --set train.steps=2000 --trials 40 --workers 2
  polyskill runs sweeps/omniglot-protonet
  polyskill sweep omniglot-maml --param 'algo.inner_lr=loguniform(0.01,1)' --trials 60 \\
      --storage postgresql://USER:PASSWORD@HOST/sweeps --study maml-lr    (same command on every machine)

Every trial is a run directory OUT/trial-NNNN; the study lives in --storage. Running the same command again
continues the study until it holds --trials trials. Trials are selected on validation, never on test.
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `sweep` subcommand to the polyskill parser."""
    parser = sub.add_parser(
        "sweep",
        help="search a recipe's hyperparameters with Optuna (each trial a run)",
        description="Search hyperparameters of a recipe with Optuna: TPE sampling, pruning on "
        "validation, several worker processes sharing one study database.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("recipe", help="a shipped recipe name (see `polyskill recipes`) or a YAML file")
    parser.add_argument(
        "--param",
        dest="params",
        action="append",
        default=[],
        metavar="KEY=SPEC",
        help="a recipe key to search, e.g. train.lr=loguniform(1e-4,1e-2) (repeatable; see below)",
    )
    parser.add_argument("--trials", type=int, default=20, help="trials in total, over all workers (default 20)")
    parser.add_argument(
        "--workers", type=int, default=1, help="worker processes on this machine, one torch thread each (default 1)"
    )
    parser.add_argument("--study", help="study name (default: the recipe's name)")
    parser.add_argument("--out", help="folder of the trial runs (default sweeps/STUDY)")
    parser.add_argument(
        "--storage",
        help="study database URL (default sqlite:///OUT/sweeps.db); a PostgreSQL URL "
        "(postgresql://USER:PASSWORD@HOST/DB) lets several machines share a study",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe value in every trial, e.g. --set train.steps=2000 (repeatable)",
    )
    parser.add_argument("--sampler", choices=SAMPLERS, default="tpe", help="how trials pick values (default tpe)")
    parser.add_argument(
        "--pruner", choices=PRUNERS, default="median", help="stop unpromising trials at a validation (default median)"
    )
    parser.add_argument("--seed", type=int, help="sampler seed (default: unseeded)")
    parser.add_argument(
        "--evaluate-best", action="store_true", help="run the test protocols on the best trial's run at the end"
    )
    parser.add_argument("--root", help="data root (default $POLYSKILL_DATA, else ~/.cache/polyskill)")
    parser.add_argument("--verbose", action="store_true", help="let Optuna log every trial too")
    parser.add_argument("--quiet", action="store_true", help="no progress bar for --evaluate-best")
    parser.set_defaults(handler=_sweep)


def _sweep(args: argparse.Namespace) -> int:
    """Run the sweep the arguments describe; 0 when at least one trial completed, 1 otherwise."""
    from .study import run_sweep

    result = run_sweep(
        args.recipe,
        args.params,
        args.trials,
        args.storage,
        study=args.study,
        workers=args.workers,
        out=args.out,
        overrides=args.overrides,
        root=args.root,
        sampler=args.sampler,
        pruner=args.pruner,
        seed=args.seed,
        evaluate_best=args.evaluate_best,
        verbose=args.verbose,
    )
    return 0 if result["best"] is not None else 1
