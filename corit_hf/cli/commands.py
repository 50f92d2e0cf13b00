"""What `corit train`, `evaluate`, `predict` and `study` do with their parsed arguments (parsers: experiments.py).

Each function returns the exit code. Bad paths and values raise FileNotFoundError / ValueError, which the CLI
prints as one line with exit code 2.
"""

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

from .settings import (
    augment_name,
    dataloader_workers,
    frame_options,
    model_overrides,
    prepared_request,
    trainer_arguments,
    training_augmentation,
)


def train(args: argparse.Namespace) -> int:
    """Train one detector and save it with metrics.json and gsnr.jsonl (rank 0 alone, under torchrun)."""
    from ..data.splits import describe_carve, with_validation
    from ..evaluation.scoring import format_score_table, score_dataset, score_splits
    from ..models.finetuning import trainable_parameter_count
    from ..models.modeling_corit import image_processor_for, input_size
    from ..training.methods import method_finetuning
    from ..training.run import (
        best_checkpoint_record,
        build_detector,
        class_names,
        detector_config,
        gsnr_records,
        latest_checkpoint,
        load_data,
        load_test_data,
        release_processes,
        replica_weights_identical,
        save_detector,
        train_detector,
        trained_model,
        validation_history,
    )
    from ..training.trackers import tensorboard_folder, tensorboard_hint

    if args.early_stopping_patience and not args.eval_steps:
        raise ValueError("--early-stopping-patience needs --eval-steps (it counts evaluations without a better AUC).")
    augmentation = training_augmentation(args)
    training_args = trainer_arguments(args)  # checks the flags before any data is built
    image_size = input_size(detector_config(args.preset, args.backbone))
    frame_options(args)  # checks the frame flags and the video extra before any data is prepared
    request = prepared_request(args)
    splits, _ = load_data(args.data, args.train_family, args.n_train, args.n_test, image_size, args.seed, **request)
    splits, carved = with_validation(splits, args.val_fraction)
    if carved:
        print(describe_carve(carved))
    tests = load_test_data(args.test_data, taken=splits, **request)
    if args.eval_steps and "validation" not in splits:
        raise ValueError(
            f"--eval-steps needs a validation split, and --data has none (splits: {', '.join(splits)}); carve one "
            "out of its train split with --val-fraction (e.g. 0.1)."
        )
    checkpoint = latest_checkpoint(args.output_dir) if args.resume else None
    if args.resume and checkpoint is None:
        print(f"corit train: no checkpoint in {args.output_dir}; starting from the beginning.", file=sys.stderr)
    labels = class_names(splits)
    model = build_detector(
        args.preset, args.backbone, labels, seed=args.seed, method=args.method, **model_overrides(args)
    )
    finetuning = args.finetune or method_finetuning(args.method)
    trainer = train_detector(
        model,
        splits["train"],
        training_args,
        finetuning,
        lora_rank=args.lora_rank,
        osf_rank=args.osf_rank,
        augmentation=augmentation,
        eval_dataset=splits["validation"] if args.eval_steps else None,
        early_stopping_patience=args.early_stopping_patience,
        resume_from_checkpoint=checkpoint,
        logging_dir=args.logging_dir,
    )
    trainable = trainable_parameter_count(trainer.model)
    model = trained_model(trainer)
    identical = replica_weights_identical(trainer)
    release_processes(trainer)  # every process, after the last collective
    if not trainer.is_world_process_zero():
        return 0
    metrics = {
        "train": trainer.state.log_history[-1],
        "method": args.method,
        "finetuning": finetuning,
        "trainable_parameters": trainable,
        "skipped_ascents": trainer.skipped_ascents,
        "augmentation": asdict(augmentation) if augmentation else None,
        "learning_rate": trainer.args.learning_rate,
        "processes": trainer.args.world_size,
        "replica_weights_identical": identical,
    }
    if checkpoint:
        metrics["resumed_from"] = Path(checkpoint).name
    if carved:
        metrics["validation_split"] = carved
    if args.eval_steps:
        metrics["best"] = best_checkpoint_record(trainer)
        metrics["validation_history"] = validation_history(trainer.state.log_history)
    if "validation" in splits:
        image_processor = image_processor_for(model.config)
        metrics["validation"] = score_dataset(model, splits["validation"], image_processor, args.batch_size)
        print(format_score_table({"validation": metrics["validation"]}))
    if tests:
        metrics["test"] = score_splits(model, tests, image_processor_for(model.config), args.batch_size)
        print(format_score_table(metrics["test"]))
    save_detector(model, args.output_dir, metrics, gsnr_records(trainer.state.log_history))
    best = f" (the best checkpoint by validation AUC: step {metrics['best']['step']})" if metrics.get("best") else ""
    print(f"Saved the model{best}, metrics.json and gsnr.jsonl to {args.output_dir}")
    logs = tensorboard_folder(trainer)
    if logs:
        print(tensorboard_hint(logs))
    return 0


def evaluate(args: argparse.Namespace) -> int:
    """Score a saved model on every test split; print the table and write eval_results.json."""
    from ..evaluation.robustness import (
        ROBUSTNESS_PLOT,
        format_robustness_table,
        parse_perturbations,
        robustness_sweep,
        write_robustness_plot,
    )
    from ..evaluation.scoring import EVAL_RESULTS_FILE, eval_results, format_score_table, load_detector, score_splits
    from ..files import write_json
    from ..models.modeling_corit import processor_input_size
    from ..training.run import load_data, load_test_data

    perturbations = parse_perturbations(args.perturb or [])
    model, image_processor = load_detector(args.model)
    output = Path(args.output) if args.output else _model_folder(args.model) / EVAL_RESULTS_FILE
    # Only the test splits are scored, so the benchmark's training split is kept to its minimum; the images are
    # made at the size the model's image processor gives, as in training.
    side = processor_input_size(image_processor)
    size = {"image_size": side} if side else {}
    options = frame_options(args)
    request = prepared_request(args)
    if args.test_data and args.data is None:  # only the --test-data folders, no benchmark
        names = ", ".join(Path(folder).name for folder in args.test_data)
        splits, dataset = {}, {"name": names, "type": " ".join(args.test_data), "config": None}
    else:
        splits, dataset = load_data(args.data, args.train_family, 2, args.n_test, seed=args.seed, **request, **size)
    tests = load_test_data(args.test_data, taken=splits, **request)
    selected = _evaluation_splits({**splits, **tests}, args.splits)
    scores = score_splits(
        model,
        selected,
        image_processor,
        args.batch_size,
        args.threshold,
        args.margin,
        progress=True,
        aggregate=options.aggregate,
    )
    print(format_score_table(scores))
    results = eval_results(args.model, dataset, scores)
    if perturbations:
        results["robustness"] = robustness_sweep(
            model, selected, image_processor, perturbations, args.batch_size, args.threshold, args.margin
        )
        print(format_robustness_table(results["robustness"]))
        plot = write_robustness_plot(results["robustness"], output.with_name(ROBUSTNESS_PLOT))
        print(f"Wrote {plot}")
    write_json(output, results)
    print(f"Wrote {output}")
    return 0


def predict(args: argparse.Namespace) -> int:
    """Fake probabilities of image files and folders as CSV / JSON Lines; unreadable files go to stderr."""
    from ..data.preparation.prepared import is_prepared
    from ..evaluation.predict import collect_image_paths, predict_files, prediction_format, write_predictions
    from ..evaluation.predict_prepared import predict_prepared
    from ..evaluation.scoring import load_detector
    from ..files import atomic_target
    from ..video.frames import import_av, is_video_path

    file_format = prediction_format(args.output, args.format)
    prepared = [path for path in args.paths if is_prepared(path)]
    paths = collect_image_paths(path for path in args.paths if path not in prepared)
    if not paths and not prepared:
        raise FileNotFoundError(f"no image or video files found in {' '.join(args.paths)}.")
    options = frame_options(args)
    if any(is_video_path(path) for path in paths):
        import_av()  # a missing video extra stops here, before the model loads
    model, image_processor = load_detector(args.model)
    rows, skipped = predict_files(
        model, image_processor, paths, args.batch_size, args.threshold, options=options, per_frame=args.per_frame
    )
    for folder in prepared:
        request = {"frames": args.frames, "faces": args.faces, "face_fallback": args.face_fallback}
        folder_rows, folder_skipped = predict_prepared(
            model,
            image_processor,
            folder,
            args.batch_size,
            args.threshold,
            options.aggregate,
            args.per_frame,
            **request,
        )
        rows, skipped = rows + folder_rows, skipped + folder_skipped
    for path, reason in skipped:
        print(f"corit predict: skipped {path}: {reason}", file=sys.stderr)
    if args.output:
        with atomic_target(args.output) as temporary, open(temporary, "w", newline="") as stream:
            write_predictions(rows, stream, file_format)
        print(f"Wrote {len(rows)} predictions to {args.output}", file=sys.stderr)
    else:
        write_predictions(rows, sys.stdout, file_format)
    return 1 if skipped else 0


def study(args: argparse.Namespace) -> int:
    """Run or resume the collapse study and print its Markdown summary."""
    from ..study.report import run_text, study_markdown
    from ..study.run import run_study
    from ..study.settings import Backbone, StudySettings
    from ..training.trackers import tensorboard_hint

    engine = _study_engine(args)
    frame_options(args)  # checks the frame flags and the video extra before any data is prepared
    backbones = [Backbone(preset=name) for name in args.preset or ()]
    backbones += [Backbone(checkpoint=name) for name in args.backbone or ()]
    settings = StudySettings(
        rhos=args.rhos,
        configs=args.methods,
        seeds=args.seeds,
        train_family=args.train_family,
        n_train=args.n_train,
        n_test=args.n_test,
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        adaptive=args.adaptive,
        sam_ascent_every=args.sam_ascent_every,
        gsnr_every=args.gsnr_every,
        **({"backbones": backbones} if backbones else {}),
        augment=augment_name(args),
        finetuning=args.finetune,
        data=args.data,
        test_data=args.test_data,
        in_domain_split=args.in_domain,
        val_fraction=args.val_fraction,
        **prepared_request(args),
        bf16=args.bf16,
        data_workers=_study_data_workers(args, engine),
        report_to=args.report_to,
        logging_dir=args.logging_dir,
    )
    summary = run_study(settings, args.output_dir, engine=engine)
    print(study_markdown(summary))
    print(f"Wrote study.json, study.csv, study.md and the plots to {args.output_dir}")
    logs = summary["settings"]["logging_dir"]
    if logs and Path(logs).is_dir():
        print(tensorboard_hint(logs, "TensorBoard logs, one folder per run named like its cell"))
    several = len(summary["backbones"]) > 1
    for failure in summary["failed_runs"]:
        run = run_text(failure["config"], failure["rho"], failure["seed"], failure["backbone"] if several else None)
        print(f"corit study: run {run} failed: {failure['error']}", file=sys.stderr)
    return 1 if summary["failed_runs"] else 0


def _study_data_workers(args: argparse.Namespace, engine) -> int:
    """--data-workers, else none on the in-memory benchmark, else the CPUs a run has besides its own: a share of
    this machine's for the local pool, `--cpus-per-run` - 1 on Ray."""
    from ..study.engines import LocalEngine
    from ..training.run import MAX_DEFAULT_WORKERS

    if args.data is None and args.data_workers is None:
        return 0
    if args.data_workers is None and not isinstance(engine, LocalEngine):
        return max(0, min(MAX_DEFAULT_WORKERS, int(engine.cpus_per_run) - 1))
    return dataloader_workers(args.data_workers, engine.workers if isinstance(engine, LocalEngine) else None)


def _study_engine(args: argparse.Namespace):
    """The engine --engine names, refusing the flags of the other engine."""
    from ..study.engines import LocalEngine, RayEngine

    ray_flags = {
        "--ray-address": args.ray_address,
        "--gpus-per-run": args.gpus_per_run,
        "--cpus-per-run": args.cpus_per_run,
    }
    if args.engine == "local":
        given = [flag for flag, value in ray_flags.items() if value is not None]
        if given:
            raise ValueError(f"{', '.join(given)}: for --engine ray only.")
        return LocalEngine(args.workers)
    if args.workers is not None:
        raise ValueError("--workers: for --engine local only; Ray runs as many runs at once as the cluster fits.")
    return RayEngine(args.ray_address, args.gpus_per_run, args.cpus_per_run or 1)


def _evaluation_splits(splits, requested: list[str] | None):
    """The requested splits, else every split whose name starts with `test`, else all of them."""
    from datasets import DatasetDict

    from ..data.splits import test_split_names

    if requested:
        missing = sorted(set(requested) - set(splits))
        if missing:
            raise ValueError(f"no split(s) {missing} in the data; it has {sorted(splits)}.")
        return DatasetDict({name: splits[name] for name in requested})
    return DatasetDict({name: splits[name] for name in test_split_names(splits)})


def _model_folder(model: str) -> Path:
    """Where eval_results.json goes by default: the model folder itself; refuses Hub repo ids."""
    path = Path(model)
    if not path.is_dir():
        raise ValueError(
            f"{model} is a Hub repo, not a local folder; pass --output to say where to write the results."
        )
    return path
