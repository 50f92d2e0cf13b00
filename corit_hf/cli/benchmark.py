"""`corit benchmark`: the built-in offline benchmark written as an image folder, to try every command on."""

import argparse

from .. import defaults
from .values import COUNT, SEED


def add_benchmark_command(subparsers: argparse._SubParsersAction) -> None:
    """`corit benchmark --output DIR`: the benchmark's splits as real/ and fake/<family>/ image folders."""
    parser = subparsers.add_parser(
        "benchmark",
        help="write the built-in offline forensic benchmark as an image folder (data to try the commands on)",
        description=(
            "Build the built-in forensic benchmark (real photo crops and procedural forgeries of every family; "
            "nothing is downloaded) and write it to DIR as train/, validation/ and test_<family>/ folders of real/ "
            "and fake/<family>/ images, each with metadata.jsonl, plus a dataset card (README.md). "
            "`corit train --data DIR`, `evaluate`, `predict`, `prepare` and `study --data` read it like any "
            "forensic folder, and `hf upload` publishes it as a Hub dataset."
        ),
    )
    parser.add_argument("--output", required=True, metavar="DIR", help="the folder to write (new or empty)")
    parser.add_argument(
        "--train-family",
        default=defaults.TRAIN_FAMILY,
        metavar="FAMILY",
        help="forgery family of the train and validation splits; every family gets a test split "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--n-train", type=COUNT, default=defaults.N_TRAIN, metavar="N", help="train images (default: %(default)s)"
    )
    parser.add_argument(
        "--n-test",
        type=COUNT,
        default=defaults.N_TEST,
        metavar="N",
        help="images in validation and in each test split (default: %(default)s)",
    )
    parser.add_argument("--size", type=COUNT, default=64, metavar="PX", help="image side (default: %(default)s)")
    parser.add_argument("--seed", type=SEED, default=0, help="default: %(default)s")
    parser.set_defaults(handler=run_benchmark)


def run_benchmark(args: argparse.Namespace) -> int:
    """Handler of `corit benchmark`."""
    from ..data import FAMILIES, build_benchmark, write_benchmark_folder

    if args.train_family not in FAMILIES:
        raise ValueError(f"--train-family {args.train_family!r} is not a family; choose from {', '.join(FAMILIES)}.")
    dataset = build_benchmark(
        args.train_family, n_train=args.n_train, n_test=args.n_test, size=args.size, seed=args.seed
    )
    try:
        root = write_benchmark_folder(dataset, args.output)
    except FileExistsError as error:
        raise ValueError(str(error)) from None
    counts = ", ".join(f"{name} {len(split)}" for name, split in dataset.items())
    print(f"Wrote the benchmark to {root} ({counts} images).")
    return 0
