"""The `corit` command: train, evaluate, predict, study, distill, push and serve CoRIT detectors."""

import argparse
import sys

from .. import __version__
from .benchmark import add_benchmark_command
from .distill import add_distill_command
from .errors import CommandParser, UsageError, with_flag_names
from .experiments import add_evaluate_command, add_predict_command, add_study_command, add_train_command
from .hub import add_push_command, add_push_metric_command, add_push_space_command
from .prepare import add_prepare_command
from .serve import add_serve_command


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser; each subcommand adds its own subparser below."""
    parser = CommandParser(
        prog="corit",
        description=(
            "CoRIT forged-image detection with SAM training, layer-wise GSNR logging and the "
            "Critical Optimization Radius (COR) collapse study."
        ),
    )
    parser.add_argument("--version", action="version", version=f"corit_hf {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add_command in COMMANDS:
        add_command(subparsers)
    return parser


# Each entry adds one subcommand: `add_X_command(subparsers)` defines its flags and sets `handler`, a function
# taking the parsed args and returning the exit code. Handlers import heavy modules lazily so --help stays fast.
COMMANDS = (
    add_benchmark_command,
    add_prepare_command,
    add_train_command,
    add_evaluate_command,
    add_predict_command,
    add_study_command,
    add_distill_command,
    add_push_command,
    add_push_space_command,
    add_push_metric_command,
    add_serve_command,
)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as error:
        print(error, file=sys.stderr)
        return 2
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.handler(args) or 0
    except (FileNotFoundError, ValueError) as error:
        print(f"corit {args.command}: error: {with_flag_names(error)}", file=sys.stderr)
        return 2
