"""Argument groups shared by several `corit` commands (data, frames, backbone, model, augmentation, Hub)."""

import argparse

from .. import defaults
from .values import COUNT, COUNT_OR_ZERO, NON_NEGATIVE, PROBABILITY, OrderedPair, method, number, preset


def add_data_arguments(parser: argparse.ArgumentParser, training: bool, subsets: bool = False) -> None:
    """--data, --test-data and the built-in benchmark's flags, shared by `train`, `evaluate` and `study`; with
    `subsets`, --n-train / --n-test also cut --data to seeded, class-balanced subsets (`study`)."""
    group = parser.add_argument_group("data (default: the built-in offline forensic benchmark)")
    group.add_argument(
        "--data",
        metavar="FOLDER",
        help="a folder prepared by `corit prepare`, a real/fake image or video folder (real/fake, 0_real/1_fake, "
        "nature/ai, FaceForensics++, Celeb-DF, DFDC; prepared once into --cache-dir and reused) or a DatasetDict "
        "saved with save_to_disk, instead of the built-in benchmark",
    )
    group.add_argument(
        "--test-data",
        nargs="+",
        default=[],
        metavar="FOLDER",
        help="more folders to test on, read as --data is: each one's test splits (all its splits if none is named "
        "test*), renamed test_<folder>... where names would clash",
    )
    group.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="where raw --data and --test-data folders are prepared (default: $CORIT_CACHE/prepared, else "
        "~/.cache/corit/prepared)",
    )
    if training:
        group.add_argument(
            "--val-fraction",
            type=number(float, 0, 1, high_open=True),
            metavar="F",
            help="share of the training data held out for validation, class by class (videos whole), seed 0: a "
            "--data folder with only real/fake class folders trains on the rest (default: "
            f"{defaults.VAL_FRACTION:g}); data with a train split but no validation split gets one only when F is "
            "given",
        )
    family_help = "to train on; every family is tested" if training else "the model was trained on (for the record)"
    group.add_argument(
        "--train-family",
        default=defaults.TRAIN_FAMILY,
        metavar="FAMILY",
        help=f"benchmark forgery family {family_help} (default: %(default)s)",
    )
    if subsets:
        subset = "or a seeded, class-balanced subset of --data's {} (with videos: N videos)"
        group.add_argument(
            "--n-train",
            type=COUNT,
            metavar="N",
            help=f"benchmark training images, {subset.format('train split')} (default: {defaults.N_TRAIN}; all)",
        )
        group.add_argument(
            "--n-test",
            type=COUNT,
            metavar="N",
            help=f"benchmark images per test split, {subset.format('scored splits, each')} "
            f"(default: {defaults.N_TEST}; all)",
        )
        return
    if training:
        group.add_argument(
            "--n-train", type=COUNT, default=defaults.N_TRAIN, help="benchmark training images (default: %(default)s)"
        )
    group.add_argument(
        "--n-test", type=COUNT, default=defaults.N_TEST, help="benchmark images per test split (default: %(default)s)"
    )


def add_frame_arguments(parser: argparse.ArgumentParser, aggregate: bool) -> None:
    """--frames, --faces, --face-fallback (and --aggregate), shared by `train`, `evaluate` and `predict`."""
    group = parser.add_argument_group("videos and faces")
    group.add_argument(
        "--frames",
        type=COUNT,
        metavar="N",
        help=f"frames sampled per video, evenly in time (default: {defaults.VIDEO_FRAMES}; on prepared data: as "
        "prepared, and N below that uses N of them, evenly)",
    )
    group.add_argument(
        "--faces",
        action="store_true",
        default=None,
        help="crop every frame and image to its largest face (MTCNN; box enlarged 1.3x, square; on prepared data: "
        "must match the preparation)",
    )
    group.add_argument(
        "--face-fallback",
        choices=("whole", "skip"),
        help="a frame or image without a face: use the whole frame, or skip it (default: whole)",
    )
    if aggregate:
        group.add_argument(
            "--aggregate",
            choices=("mean", "median"),
            default="mean",
            help="a video's fake probability from its frames' (default: %(default)s)",
        )


PRESET_HELP = (
    "random-init backbone shape, a preset name: tiny (CLIP), a family's tiny shape (dinov2-tiny, ...) or a published "
    "B/L shape (clip-vit-b16, siglip-vit-b16, dinov2-vit-l14, ...); a wrong name lists them all"
)
BACKBONE_HELP = (
    "start from the vision tower of a checkpoint (folder or repo id of a CLIP, SigLIP, DINOv2, DINOv3 or ViT "
    "model, ...) and its image processor, or `tiny-semantic`: the tiny shape distilled from an ImageNet teacher, "
    "shipped with the package"
)


def add_backbone_arguments(parser: argparse.ArgumentParser) -> None:
    """--preset or --backbone, one backbone for `train`."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--preset", type=preset, default="tiny", help=f"{PRESET_HELP} (default: %(default)s)")
    source.add_argument("--backbone", metavar="PATH_OR_REPO", help=BACKBONE_HELP)


def add_study_backbone_arguments(parser: argparse.ArgumentParser) -> None:
    """--preset and --backbone of `corit study`: each takes one or more, together, and the grid runs on each."""
    group = parser.add_argument_group(
        "backbones (the grid runs on each: the presets, then the checkpoints, in the order given; default: --preset "
        "tiny)"
    )
    group.add_argument("--preset", type=preset, nargs="+", metavar="NAME", help=f"one or more; each a {PRESET_HELP}")
    group.add_argument("--backbone", nargs="+", metavar="PATH_OR_REPO", help=f"one or more; each to {BACKBONE_HELP}")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The backbone and the CoRIT switches of `corit train`."""
    group = parser.add_argument_group("model")
    add_backbone_arguments(group)
    group.add_argument(
        "--method",
        type=method,
        default=defaults.METHOD,
        metavar="NAME",
        help="the training recipe: corit, its ablations (baseline, corit-no-rrm, corit-no-rsi, corit-no-hri), or the "
        "field's univfd, effort, gend, lora; each sets the CoRIT switches, the features, any extra loss and what "
        "trains (README: Methods; the flags below override it; default: %(default)s)",
    )
    group.add_argument("--baseline", action="store_true", help="all CoRIT mechanisms off: the plain linear probe")
    group.add_argument("--no-rrm", action="store_true", help="turn the Region Refinement Mask off (keep all patches)")
    group.add_argument(
        "--rsi-strength", type=NON_NEGATIVE, metavar="BETA", help="Regional Signal Injection beta (0 = off)"
    )
    group.add_argument(
        "--hri-layers",
        type=number(int),
        nargs="+",
        metavar="I",
        help="hidden-state indices HRI averages (-1 alone = off)",
    )
    group.add_argument(
        "--keep-ratio",
        type=number(float, 0, 1, low_open=True),
        metavar="R",
        help="fraction of patches RRM keeps, in (0, 1]",
    )
    group.add_argument(
        "--finetune",
        choices=defaults.FINETUNING_MODES,
        help="what trains, overriding the method's: everything, the head alone, the norms, LoRA or OSF adapters (each "
        "with the head) (default: the method's)",
    )
    group.add_argument("--lora-rank", type=COUNT, default=defaults.LORA_RANK, help="LoRA rank (default: %(default)s)")
    group.add_argument(
        "--osf-rank",
        type=COUNT,
        default=defaults.OSF_RANK,
        metavar="R",
        help="OSF's trainable residual rank per attention projection, below its width (default: %(default)s, "
        "Effort's)",
    )


def add_augmentation_arguments(parser: argparse.ArgumentParser) -> None:
    """--augment and the probabilities and ranges of the blur+JPEG augmentation."""
    group = parser.add_argument_group(
        "augmentation (training images only, per image, seeded; evaluation never augments)"
    )
    group.add_argument(
        "--augment",
        choices=("none", "blur-jpeg"),
        help="blur-jpeg: Gaussian blur and JPEG re-encoding (each with its probability), a random crop to the input "
        f"size and a horizontal flip (default: {defaults.AUGMENT_FOLDER} with --data, {defaults.AUGMENT_BENCHMARK} "
        "on the built-in benchmark)",
    )
    group.add_argument("--blur-prob", type=PROBABILITY, metavar="P", help="probability of the blur (default: 0.5)")
    group.add_argument(
        "--blur-sigma",
        type=NON_NEGATIVE,
        nargs=2,
        action=OrderedPair,
        metavar=("MIN", "MAX"),
        help="sigma range (default: 0 3)",
    )
    group.add_argument(
        "--jpeg-prob", type=PROBABILITY, metavar="P", help="probability of the JPEG step (default: 0.5)"
    )
    group.add_argument(
        "--jpeg-quality",
        type=number(int, 1, 100),
        nargs=2,
        action=OrderedPair,
        metavar=("MIN", "MAX"),
        help="quality range (default: 30 100)",
    )
    group.add_argument("--flip-prob", type=PROBABILITY, metavar="P", help="probability of the flip (default: 0.5)")


def add_long_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Checkpoints, resume, validation during training, early stopping and the input pipeline of `corit train`."""
    group = parser.add_argument_group("long runs")
    group.add_argument("--save-steps", type=COUNT, metavar="N", help="save a checkpoint every N steps (default: none)")
    group.add_argument(
        "--resume", action="store_true", help="continue from the latest complete checkpoint in --output-dir"
    )
    group.add_argument(
        "--eval-steps",
        type=COUNT,
        metavar="N",
        help="score the validation split (AUC, AP, accuracy) every N steps; the saved model is then the best "
        "checkpoint by validation AUC (checkpoints every N steps unless --save-steps says otherwise)",
    )
    group.add_argument(
        "--early-stopping-patience",
        type=COUNT,
        metavar="K",
        help="stop after K evaluations without a better validation AUC (needs --eval-steps)",
    )
    group.add_argument(
        "--workers",
        type=COUNT_OR_ZERO,
        metavar="N",
        help="DataLoader worker processes that decode and augment images (default: the CPUs per training process "
        "minus one, at most 8; 0 = in the training process)",
    )


def add_tracking_arguments(parser: argparse.ArgumentParser, logging_dir_default: str) -> None:
    """--report-to and --logging-dir, shared by `train` and `study`: the experiment trackers of the Trainer."""
    group = parser.add_argument_group("experiment tracking")
    group.add_argument(
        "--report-to",
        nargs="+",
        default=["none"],
        metavar="TRACKER",
        help="Trainer integrations to log to, as TrainingArguments' report_to: tensorboard, wandb, mlflow, trackio, "
        "... (several allowed), all (every one installed) or none. They get the loss, learning rate, "
        "gsnr/<layer> and sam/ values (default: none)",
    )
    group.add_argument(
        "--logging-dir",
        metavar="DIR",
        help="where TensorBoard writes its event files (needs --report-to tensorboard; default: "
        f"$TENSORBOARD_LOGGING_DIR, else {logging_dir_default})",
    )


def add_ascent_every_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """`--sam-ascent-every K`: LookSAM, a full two-pass SAM step every K optimizer steps."""
    parser.add_argument(
        "--sam-ascent-every",
        type=COUNT,
        default=1,
        metavar="K",
        help="LookSAM: a full two-pass SAM step every K steps, one pass reusing its ascent in between "
        "(about (1 + 1/K) passes per step; default: %(default)s = SAM on every step)",
    )


def add_hub_arguments(parser: argparse.ArgumentParser) -> None:
    """--private, --token and --endpoint, shared by `push` and `push-space`."""
    parser.add_argument("--private", action="store_true", help="create the repo as private (ignored if it exists)")
    parser.add_argument("--token", help="Hub access token (default: HF_TOKEN or the saved `hf auth login`)")
    parser.add_argument("--endpoint", help="Hub URL (default: HF_ENDPOINT or https://huggingface.co)")
