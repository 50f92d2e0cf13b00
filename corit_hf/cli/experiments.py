"""Parsers of the experiment commands (`train`, `evaluate`, `predict`, `study`); their handlers are in commands.py."""

import argparse

from .. import defaults
from .arguments import (
    add_ascent_every_argument,
    add_augmentation_arguments,
    add_data_arguments,
    add_frame_arguments,
    add_long_run_arguments,
    add_model_arguments,
    add_study_backbone_arguments,
    add_tracking_arguments,
)
from .values import COUNT, COUNT_OR_ZERO, NON_NEGATIVE, POSITIVE, PROBABILITY, SEED, method, number


def add_train_command(subparsers: argparse._SubParsersAction) -> None:
    """`corit train`: one training run with SAM and GSNR logging, saved as a loadable model folder."""
    parser = subparsers.add_parser(
        "train",
        help="train a detector with SAM and layer-wise GSNR logging",
        description=(
            "Train a CoRIT detector with CoritTrainer (SAM in the training step, layer-wise GSNR in the logs). "
            "By default: the random-init tiny backbone on the built-in benchmark's gan family. OUTPUT_DIR becomes a "
            "loadable model folder (safetensors, config with auto_map, remote code, preprocessor_config.json) plus "
            "metrics.json (training, validation and --test-data scores) and gsnr.jsonl (one line per GSNR log step)."
        ),
    )
    add_data_arguments(parser, training=True)
    add_frame_arguments(parser, aggregate=False)
    add_model_arguments(parser)
    group = parser.add_argument_group("optimization")
    group.add_argument("--rho", type=NON_NEGATIVE, help="SAM radius; 0 = plain training (default: 0.05)")
    group.add_argument("--adaptive", action="store_true", help="adaptive SAM (ASAM)")
    add_ascent_every_argument(group)
    group.add_argument(
        "--gsnr-every",
        type=COUNT_OR_ZERO,
        default=defaults.GSNR_EVERY,
        help="log GSNR every N steps, 0 = off (default: %(default)s)",
    )
    group.add_argument("--gsnr-estimator", choices=("microbatch", "per_sample"), default="microbatch")
    group.add_argument("--gsnr-chunks", type=COUNT, default=8, help="chunks per batch for GSNR (default: %(default)s)")
    length = group.add_mutually_exclusive_group()
    length.add_argument(
        "--epochs", type=POSITIVE, default=defaults.EPOCHS, help="training epochs (default: %(default)s)"
    )
    length.add_argument("--max-steps", type=COUNT, help="optimizer steps (overrides --epochs)")
    group.add_argument("--batch-size", type=COUNT, default=defaults.BATCH_SIZE, help="default: %(default)s")
    group.add_argument(
        "--lr",
        type=NON_NEGATIVE,
        help=f"learning rate (default: {defaults.LEARNING_RATE:g}, or {defaults.LEARNING_RATE_PRETRAINED:g} "
        "with --backbone pretrained weights)",
    )
    group.add_argument(
        "--seed", type=SEED, default=0, help="model init, data order, augmentation and benchmark seed (default: 0)"
    )
    group.add_argument("--bf16", action="store_true", help="bfloat16 mixed precision (where the hardware has it)")
    add_augmentation_arguments(parser)
    add_long_run_arguments(parser)
    add_tracking_arguments(parser, "OUTPUT_DIR/runs/DATE_HOST, transformers' default")
    parser.add_argument("--output-dir", default="corit-model", help="the model folder to write (default: %(default)s)")
    parser.set_defaults(handler=command_handler("train"))


def add_evaluate_command(subparsers: argparse._SubParsersAction) -> None:
    """`corit evaluate MODEL`: the field's per-split scores and collapse flag, as a table and eval_results.json."""
    parser = subparsers.add_parser(
        "evaluate",
        help="score a model on every test split (AUC, AP, accuracies, EER, TPR at low FPR, collapsed)",
        description=(
            "Score a saved model on each test split: ROC AUC, average precision, accuracy at --threshold (overall, "
            "on real and on fake images), best-threshold accuracy, equal error rate, TPR at 1% and 5% FPR, and "
            "whether it collapsed (AUC within --margin of 0.5, or one label for >= 95% of images). "
            "By default every family of the built-in benchmark is tested. Data with videos (FaceForensics++, "
            "Celeb-DF, DFDC, real/fake folders of videos) is scored per frame and per video (the video_* keys). "
            "Prints a table and writes "
            "eval_results.json into the model folder (or --output), which `corit push` puts on the model card."
        ),
    )
    parser.add_argument("model", metavar="MODEL", help="a model folder (from `corit train`) or a Hub repo id")
    add_data_arguments(parser, training=False)
    add_frame_arguments(parser, aggregate=True)
    parser.add_argument("--seed", type=SEED, default=0, help="benchmark seed, as used in training (default: 0)")
    parser.add_argument("--splits", nargs="+", metavar="SPLIT", help="splits to score (default: every test* split)")
    parser.add_argument("--batch-size", type=COUNT, default=64, help="default: %(default)s")
    parser.add_argument(
        "--threshold",
        type=PROBABILITY,
        default=defaults.THRESHOLD,
        help="fake probability above which an image is 'fake'; exactly at it is 'real' (default: %(default)s)",
    )
    parser.add_argument(
        "--margin",
        type=number(float, 0, 0.5),
        default=defaults.MARGIN,
        help="AUC distance from 0.5 that is chance (default: %(default)s)",
    )
    parser.add_argument("--output", metavar="FILE", help="where to write the JSON (default: MODEL/eval_results.json)")
    parser.add_argument(
        "--perturb",
        action="append",
        metavar="NAME=LEVELS",
        help="robustness sweep, repeatable: jpeg=100,90,...,30 (quality), blur=0,1,2,3,4 (sigma px), "
        "resize=1,0.5,0.25 (downscale factor), noise=0,5,10 (sigma in 0..255); applied to real and fake images "
        "alike, deterministic. Adds a table, a 'robustness' section to the JSON and robustness.png next to it",
    )
    parser.set_defaults(handler=command_handler("evaluate"))


def add_predict_command(subparsers: argparse._SubParsersAction) -> None:
    """`corit predict MODEL PATHS...`: fake probability of image files and folders."""
    parser = subparsers.add_parser(
        "predict",
        help="fake probability of image and video files and folders, as CSV or JSON Lines",
        description=(
            "Predict the fake probability (1 - P(real)) of every image and video in PATHS (files, and folders "
            "searched recursively). Writes path, fake_probability, label to --output (format from its extension "
            "or --format) or to stdout. A video's row is the mean (or --aggregate median) of its --frames sampled "
            "frames, with the number of frames scored and of frames with a face (--faces). Unreadable files are "
            "listed on stderr with the reason and skipped; the exit code is then 1, with the other rows still "
            "written."
        ),
    )
    parser.add_argument("model", metavar="MODEL", help="a model folder (from `corit train`) or a Hub repo id")
    parser.add_argument(
        "paths",
        metavar="PATH",
        nargs="+",
        help="image and video files or folders, or folders prepared by `corit prepare` (read as prepared)",
    )
    add_frame_arguments(parser, aggregate=True)
    parser.add_argument(
        "--per-frame", action="store_true", help="after each video's row, one row per scored frame (frame_time)"
    )
    parser.add_argument(
        "--threshold",
        type=PROBABILITY,
        default=defaults.THRESHOLD,
        help="fake probability above which an image is 'fake'; exactly at it is 'real' (default: %(default)s)",
    )
    parser.add_argument("--batch-size", type=COUNT, default=32, help="default: %(default)s")
    parser.add_argument("--output", metavar="FILE", help="output file, .csv or .jsonl (default: stdout)")
    parser.add_argument("--format", choices=("csv", "jsonl"), help="output format (default: from --output, else csv)")
    parser.set_defaults(handler=command_handler("predict"))


def add_study_command(subparsers: argparse._SubParsersAction) -> None:
    """`corit study`: the rho sweep of every method, summarised by COR."""
    parser = subparsers.add_parser(
        "study",
        help="the collapse study: train each method at each SAM radius, report COR and GSNR",
        description=(
            "Train every method (--methods) at every SAM radius (--rhos) and seed (--seeds) on each backbone "
            "(--preset, --backbone) on one benchmark family, or on --data, score every family (or --data's "
            "validation and test splits and every --test-data folder), and log layer-wise GSNR. COR comes from the "
            "--in-domain split's AUC; every other scored split is unseen. Writes study.json, study.csv, study.md "
            "(printed at the end), auc_vs_rho.png and gsnr_heatmap.png into OUTPUT_DIR, with each method's "
            "Critical Optimization Radius (COR: the largest rho whose run keeps half the rho=0 run's above-chance "
            "AUC), unseen AUC at rho=0 and at its best rho (the highest in-domain AUC), trainable weights and "
            "seconds per step, and the Spearman correlation of mean GSNR with COR; with several backbones, side by "
            "side. "
            "Finished runs are kept in OUTPUT_DIR/cells/: re-running resumes, and adding rhos, methods, seeds or "
            "backbones only trains the new runs. The default (40 runs of the random-init tiny backbone) takes 3 to 6 "
            "minutes on a 2-core CPU."
        ),
    )
    parser.add_argument(
        "--rhos",
        type=NON_NEGATIVE,
        nargs="+",
        default=list(defaults.STUDY_RHOS),
        metavar="RHO",
        help="SAM radii; must include 0 (default: %(default)s)",
    )
    parser.add_argument(
        "--methods",
        "--configs",
        dest="methods",
        type=method,
        nargs="+",
        default=list(defaults.STUDY_CONFIGS),
        metavar="METHOD",
        help="registered methods (as `corit train --method`), each trained as its recipe says; --configs is the "
        f"same flag under its former name (default: {' '.join(defaults.STUDY_CONFIGS)})",
    )
    parser.add_argument(
        "--seeds",
        type=SEED,
        nargs="+",
        default=list(defaults.STUDY_SEEDS),
        metavar="SEED",
        help="default: %(default)s",
    )
    add_study_backbone_arguments(parser)
    parser.add_argument(
        "--finetune",
        choices=defaults.FINETUNING_MODES,
        help="what trains in every run, overriding each method's: everything, the head alone, the norms, LoRA or OSF "
        "adapters (each with the head) (default: each method's)",
    )
    add_data_arguments(parser, training=True, subsets=True)
    parser.add_argument(
        "--in-domain",
        metavar="SPLIT",
        help="the split whose AUC defines COR; every other scored split is unseen (default: --data's validation "
        "split, or test_<train family> on the benchmark)",
    )
    add_frame_arguments(parser, aggregate=False)
    parser.add_argument(
        "--max-steps", type=COUNT, default=defaults.STUDY_MAX_STEPS, help="steps per run (default: %(default)s)"
    )
    parser.add_argument("--batch-size", type=COUNT, default=defaults.STUDY_BATCH_SIZE, help="default: %(default)s")
    parser.add_argument(
        "--lr",
        type=NON_NEGATIVE,
        help=f"AdamW learning rate of every run (default, per backbone as `corit train`: {defaults.LEARNING_RATE:g}, "
        f"or {defaults.LEARNING_RATE_PRETRAINED:g} for pretrained weights)",
    )
    parser.add_argument("--bf16", action="store_true", help="bfloat16 mixed precision (where the hardware has it)")
    parser.add_argument("--adaptive", action="store_true", help="adaptive SAM (ASAM) instead of SAM")
    add_ascent_every_argument(parser)
    parser.add_argument(
        "--gsnr-every", type=COUNT_OR_ZERO, default=defaults.STUDY_GSNR_EVERY, help="default: %(default)s"
    )
    add_engine_arguments(parser)
    add_tracking_arguments(
        parser, "OUTPUT_DIR/runs; each run in a subfolder named like its cell: tiny_corit_rho0.05_seed0"
    )
    parser.add_argument(
        "--data-workers",
        type=COUNT_OR_ZERO,
        metavar="N",
        help="DataLoader worker processes per run that read and augment --data images (default: the CPUs per "
        "run minus one, at most 8: CPUs / --workers locally, --cpus-per-run on Ray; 0 on the benchmark, which is "
        "held in memory)",
    )
    parser.add_argument(
        "--augment",
        choices=("none", "blur-jpeg"),
        help="training augmentation of every run, as in `corit train` (default: "
        f"{defaults.AUGMENT_FOLDER} with --data, {defaults.AUGMENT_BENCHMARK} on the built-in benchmark)",
    )
    parser.add_argument("--output-dir", default=defaults.STUDY_OUTPUT_DIR, help="default: %(default)s")
    parser.set_defaults(handler=command_handler("study"))


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """Where `corit study` trains its runs: this machine's process pool, or Ray tasks on a cluster."""
    group = parser.add_argument_group("engine (where the runs train)")
    group.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: a process pool on this machine; ray: one Ray task per run, on a `ray start` cluster or a local "
        "Ray (needs the ray extra; the data and --backbone must be at the same path on every node) "
        "(default: %(default)s)",
    )
    group.add_argument(
        "--workers",
        type=COUNT,
        help="local: runs trained in parallel, CPUs / N torch threads each (default: the CPU count, at most 4)",
    )
    group.add_argument(
        "--ray-address",
        metavar="ADDRESS",
        help="ray: `auto` (the cluster `ray start` started on this machine) or HOST:PORT of its head "
        "(default: start a local Ray for the study)",
    )
    group.add_argument(
        "--gpus-per-run",
        type=NON_NEGATIVE,
        metavar="N",
        help="ray: GPUs per run, may be a fraction (default: 1 if the cluster has GPUs, else 0)",
    )
    group.add_argument(
        "--cpus-per-run", type=POSITIVE, metavar="N", help="ray: CPUs (and torch threads) per run (default: 1)"
    )


def command_handler(name: str):
    """The handler of a train / evaluate / predict / study command, imported from `corit_hf.cli.commands` on use."""

    def handler(args: argparse.Namespace) -> int:
        from . import commands

        return getattr(commands, name)(args)

    return handler
