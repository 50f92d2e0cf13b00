"""What the shared flags of `corit train`, `evaluate` and `study` ask for: the augmentation, training arguments,
frame options and data request built from them, each checked before any data or model is loaded."""

import argparse
import os

from .. import defaults


def training_augmentation(args: argparse.Namespace):
    """The training augmentation from --augment and its flags; the default depends on --data."""
    from ..training.augmentation import augmentation_config

    return augmentation_config(
        augment_name(args),
        blur_prob=args.blur_prob,
        blur_sigma=tuple(args.blur_sigma) if args.blur_sigma else None,
        jpeg_prob=args.jpeg_prob,
        jpeg_quality=tuple(args.jpeg_quality) if args.jpeg_quality else None,
        flip_prob=args.flip_prob,
    )


def augment_name(args: argparse.Namespace) -> str:
    """--augment, else the field's blur+JPEG on --data folders and none on the built-in benchmark."""
    return args.augment or (defaults.AUGMENT_FOLDER if args.data else defaults.AUGMENT_BENCHMARK)


def model_overrides(args: argparse.Namespace) -> dict:
    """CoritConfig fields from the `train` switches, applied over the --method's: --baseline first, then each
    explicit switch on top."""
    overrides = dict(defaults.CONFIGURATIONS["baseline"]) if args.baseline else {}
    if args.no_rrm:
        overrides["use_cgp_mask"] = False
    explicit = {"rsi_strength": args.rsi_strength, "hri_layers": args.hri_layers, "rrm_keep_ratio": args.keep_ratio}
    overrides.update({key: value for key, value in explicit.items() if value is not None})
    return overrides


def trainer_arguments(args: argparse.Namespace):
    """CoritTrainingArguments from the `train` flags (the trackers checked: a missing package is one clear error)."""
    from ..training.run import training_arguments
    from ..training.trackers import reporting_integrations

    optional = {"sam_rho": args.rho} if args.rho is not None else {}
    length = {"max_steps": args.max_steps} if args.max_steps else {"num_train_epochs": args.epochs}
    return training_arguments(
        args.output_dir,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size,
        learning_rate=learning_rate(args),
        seed=args.seed,
        sam_adaptive=args.adaptive,
        sam_ascent_every=args.sam_ascent_every,
        gsnr_every=args.gsnr_every,
        gsnr_estimator=args.gsnr_estimator,
        gsnr_chunks=args.gsnr_chunks,
        dataloader_num_workers=dataloader_workers(args.workers),
        bf16=args.bf16,
        report_to=reporting_integrations(args.report_to, args.logging_dir),
        **checkpoint_arguments(args),
        **length,
        **optional,
    )


def learning_rate(args: argparse.Namespace) -> float:
    """--lr, else the default for --backbone (`default_learning_rate`)."""
    from ..training.run import default_learning_rate

    return default_learning_rate(args.backbone) if args.lr is None else args.lr


def dataloader_workers(requested: int | None, processes: int | None = None) -> int:
    """DataLoader workers: `requested`, else `default_workers` for this many training processes (default: the
    LOCAL_WORLD_SIZE torchrun sets)."""
    from ..training.run import default_workers

    if requested is not None:
        return requested
    return default_workers(processes or int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def checkpoint_arguments(args: argparse.Namespace) -> dict:
    """Trainer's save / eval / best-model arguments from --save-steps and --eval-steps."""
    if not (args.save_steps or args.eval_steps):
        return {}
    arguments = {"save_strategy": "steps", "save_steps": args.save_steps or args.eval_steps}
    if args.eval_steps:
        if arguments["save_steps"] % args.eval_steps:
            raise ValueError(
                f"--save-steps ({args.save_steps}) must be a multiple of --eval-steps ({args.eval_steps})."
            )
        arguments.update(
            eval_strategy="steps",
            eval_steps=args.eval_steps,
            load_best_model_at_end=True,
            metric_for_best_model="auc",
            greater_is_better=True,
        )
    return arguments


def frame_options(args: argparse.Namespace):
    """FrameOptions from --frames, --faces, --face-fallback and --aggregate, unset ones at their defaults (checked
    before any model loads)."""
    from ..video.inputs import FrameOptions

    options = FrameOptions(
        frames=defaults.VIDEO_FRAMES if args.frames is None else args.frames,
        faces=bool(args.faces),
        face_fallback=args.face_fallback or "whole",
        aggregate=getattr(args, "aggregate", "mean"),
    )
    if options.faces:
        from ..video.faces import shared_detector

        shared_detector()  # a missing video extra fails here, before any work
    return options


def prepared_request(args: argparse.Namespace) -> dict:
    """What `load_data` asks of --data folders: the frame and face flags as given (None: as prepared), and the
    cache where raw folders are prepared."""
    return {
        "frames": args.frames,
        "faces": args.faces,
        "face_fallback": args.face_fallback,
        "prepared_cache": args.cache_dir,
    }
