"""One training run of a CoRIT detector with `CoritTrainer`: model, data, arguments, and the saved output folder.

Shared by `corit train` (one run) and `corit study` (one run per configuration, rho and seed).
"""

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

import torch
from datasets import DatasetDict
from peft import PeftModel
from transformers import EarlyStoppingCallback, EvalPrediction, PreTrainedModel, PrinterCallback, set_seed
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from ..data import build_benchmark
from ..data.preparation.prepared import open_prepared
from ..data.splits import test_split_names, unique_test_splits
from ..defaults import LEARNING_RATE, LEARNING_RATE_PRETRAINED, LORA_RANK, OSF_RANK
from ..evaluation.collapse import HEADLINE_SCORES, detection_scores
from ..evaluation.scoring import batch_collator, fake_probability, is_fake, real_label_id
from ..files import write_json, write_text_atomic
from ..models.configuration_corit import CoritConfig
from ..models.finetuning import apply_finetuning
from ..models.loading import quiet_weight_loading
from ..models.modeling_corit import CoritForImageClassification, backbone_config, image_processor_for, input_size
from ..prior.registry import PRIORS, resolve_backbone
from .augmentation import AugmentationConfig, AugmentedDataset
from .methods import get_method, method_finetuning
from .trackers import tensorboard_logging_dir
from .trainer import CoritTrainer, CoritTrainingArguments


METRICS_FILE = "metrics.json"
GSNR_FILE = "gsnr.jsonl"
GSNR_PREFIX = "gsnr/"
TRAINER_STATE_FILE = "trainer_state.json"
"""Trainer writes it last into a checkpoint folder: a checkpoint without it was cut off part-way."""
MAX_DEFAULT_WORKERS = 8


def build_detector(
    preset: str = "tiny",
    backbone: str | None = None,
    labels: list[str] | None = None,
    seed: int = 0,
    method: str | None = None,
    **overrides,
) -> CoritForImageClassification:
    """A fresh detector: random-init `preset` backbone, or the vision tower of the checkpoint `backbone` (path, repo
    id, or the name of a prior shipped with the package, e.g. `tiny-semantic`) with its image processor.

    `labels` are the class names in id order (default real, fake); `method` names a training recipe
    (`training.methods`: its CoritConfig overrides, and what `train_detector` trains); `overrides` are CoritConfig
    fields, applied on top of the method's. The random initialisation is seeded, so a run does not depend on what
    the process did before.
    """
    recipe = get_method(method).config_overrides() if method else {}
    overrides = {**recipe, **overrides, **label_fields(labels)}
    backbone = resolve_backbone(backbone)
    set_seed(seed)
    if backbone:
        with quiet_weight_loading():
            return CoritForImageClassification.from_backbone(backbone, **overrides)
    return CoritForImageClassification(CoritConfig.from_preset(preset, **overrides))


def detector_config(preset: str = "tiny", backbone: str | None = None) -> CoritConfig:
    """The backbone shape `build_detector` would use (input size, preprocessing), without loading weights."""
    if backbone:
        return backbone_config(resolve_backbone(backbone))
    return CoritConfig.from_preset(preset)


def default_learning_rate(backbone: str | None) -> float:
    """AdamW's learning rate when none is given: pretrained weights (of any family) are fine-tuned gently, while a
    random-init preset or a shipped prior (the tiny shape) trains like the tiny preset."""
    pretrained = backbone is not None and backbone not in PRIORS
    return LEARNING_RATE_PRETRAINED if pretrained else LEARNING_RATE


def label_fields(labels: list[str] | None) -> dict:
    """id2label / label2id / real_label_id for class names in id order; empty for the default real/fake pair."""
    if labels is None or list(labels) == ["real", "fake"]:
        return {}
    lowered = [name.lower() for name in labels]
    if "real" not in lowered:
        raise ValueError(f"The dataset's labels {labels} have no class named 'real'.")
    return {
        "id2label": dict(enumerate(labels)),
        "label2id": {name: idx for idx, name in enumerate(labels)},
        "real_label_id": lowered.index("real"),
    }


def load_data(
    data: str | None = None,
    train_family: str = "gan",
    n_train: int = 512,
    n_test: int = 128,
    image_size: int = 64,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    frames: int | None = None,
    faces: bool | None = None,
    face_fallback: str | None = None,
    prepared_cache: str | os.PathLike | None = None,
) -> tuple[DatasetDict, dict]:
    """The splits to train or evaluate on, and a description for `eval_results.json`.

    `data` None: the built-in benchmark (train on `train_family`, test on every family; saved to and reloaded
    from `cache_dir` if given). A folder: `open_prepared` (a prepared folder or a `save_to_disk` folder as it is;
    real/fake image or video folders prepared once into `prepared_cache`, videos sampled and faces cropped as
    `frames`, `faces` and `face_fallback` say, which a prepared folder's options must agree with).
    """
    if data is None and faces:
        raise ValueError("--faces crops faces of --data folders; the built-in benchmark has no faces.")
    if data is None:
        splits = build_benchmark(
            train_family=train_family,
            n_train=n_train,
            n_test=n_test,
            size=image_size,
            seed=seed,
            cache_dir=cache_dir,
            progress=False,
        )
        description = {
            "name": "corit forensic benchmark",
            "type": "corit-benchmark",
            "config": f"train-{train_family}",
        }
        return splits, description
    path = Path(data)
    if not path.is_dir():
        raise FileNotFoundError(f"--data {data}: no such folder.")
    splits = open_prepared(path, frames, faces, face_fallback, cache_dir=prepared_cache)
    return splits, {"name": path.name, "type": str(path), "config": None}


def load_test_data(folders: list[str], taken: Iterable[str] = (), **request) -> DatasetDict:
    """The test splits of every folder in `folders` (its `test*` splits, else all), each folder read as `load_data`
    reads `--data` with the same `request` (frames, faces, face_fallback, prepared_cache); named uniquely across
    the folders and the split names in `taken` (`unique_test_splits`)."""
    loaded: dict = {}
    for folder in folders:
        if not Path(folder).is_dir():
            raise FileNotFoundError(f"--test-data {folder}: no such folder.")
        splits, _ = load_data(folder, **request)
        tests = {name: splits[name] for name in test_split_names(splits)}
        loaded.update(unique_test_splits(tests, Path(folder).name, [*taken, *loaded]))
    return DatasetDict(loaded)


def class_names(splits: DatasetDict) -> list[str] | None:
    """The label names of the first split when its `label` column is a ClassLabel."""
    feature = next(iter(splits.values())).features.get("label")
    return list(feature.names) if hasattr(feature, "names") else None


def training_arguments(output_dir: str | os.PathLike, **overrides) -> CoritTrainingArguments:
    """CoritTrainingArguments with the defaults every run here shares: no checkpoints, no trackers (unless
    `report_to` names some), image columns."""
    defaults = {
        "report_to": "none",
        "save_strategy": "no",
        "remove_unused_columns": False,
        "logging_steps": 10,
        "dataloader_num_workers": 0,
        "use_cpu": not _has_accelerator(),
    }
    return CoritTrainingArguments(output_dir=str(output_dir), **{**defaults, **overrides})


def _has_accelerator() -> bool:
    return torch.cuda.is_available() or torch.backends.mps.is_available()


def default_workers(processes: int = 1) -> int:
    """DataLoader workers per training process: the CPUs left after the training processes, at most 8."""
    cpus_per_process = (os.cpu_count() or 1) // max(1, processes)
    return max(0, min(MAX_DEFAULT_WORKERS, cpus_per_process - 1))


def train_detector(
    model: PreTrainedModel,
    train_dataset,
    args: CoritTrainingArguments,
    finetuning: str | None = None,
    lora_rank: int = LORA_RANK,
    osf_rank: int = OSF_RANK,
    preprocessed: bool = False,
    augmentation: AugmentationConfig | None = None,
    eval_dataset=None,
    early_stopping_patience: int | None = None,
    resume_from_checkpoint: str | None = None,
    logging_dir: str | os.PathLike | None = None,
) -> CoritTrainer:
    """Fine-tune `model` on `train_dataset` with SAM and GSNR logging, training what `finetuning` says (full, head,
    layernorm, lora or osf; None: what the method the model was built with trains, else full).

    Rows hold `image` and `label`, or with `preprocessed` the model inputs `pixel_values` and `labels`.
    `augmentation` augments the training images on the fly (in the DataLoader workers), never `eval_dataset`,
    which is scored (`HEADLINE_SCORES`) at `args.eval_steps` when given; the best checkpoint is the one with
    the highest AUC. `resume_from_checkpoint` continues a
    run from a checkpoint folder. With `args.disable_tqdm` the run is silent: Trainer's log printer is removed too.
    `logging_dir` is where TensorBoard writes when `args.report_to` has it (default: transformers').
    """
    image_processor = None if preprocessed else image_processor_for(model.config)
    if augmentation is not None and not preprocessed:
        train_dataset = AugmentedDataset(train_dataset, input_size(model.config), augmentation, seed=args.seed)
    finetuning = finetuning or method_finetuning(model.config.method)
    model = apply_finetuning(model, finetuning, lora_rank=lora_rank, osf_rank=osf_rank)
    collator = batch_collator(image_processor)
    with tensorboard_logging_dir(logging_dir):
        trainer = CoritTrainer(
            model=model,
            args=args,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            data_collator=collator,
            compute_metrics=validation_metrics(real_label_id(model)) if eval_dataset is not None else None,
        )
    if early_stopping_patience:
        trainer.add_callback(EarlyStoppingCallback(early_stopping_patience=early_stopping_patience))
    if args.disable_tqdm:
        trainer.remove_callback(PrinterCallback)
    trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    return trainer


def validation_metrics(real_id: int):
    """Trainer's `compute_metrics`: `HEADLINE_SCORES` of the fake probabilities (Trainer adds `eval_`)."""

    def compute(prediction: EvalPrediction) -> dict[str, float]:
        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        scores = fake_probability(torch.as_tensor(logits), real_id).numpy()
        all_scores = detection_scores(scores, is_fake(prediction.label_ids, real_id))
        return {key: all_scores[key] for key in HEADLINE_SCORES}

    return compute


def latest_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The complete checkpoint folder of `output_dir` with the highest step, or None; a folder a kill cut off
    part-way (no trainer_state.json yet) is passed over."""
    complete = [
        path
        for path in Path(output_dir).glob(f"{PREFIX_CHECKPOINT_DIR}-*")
        if path.name.removeprefix(f"{PREFIX_CHECKPOINT_DIR}-").isdigit() and (path / TRAINER_STATE_FILE).is_file()
    ]
    if not complete:
        return None
    return str(max(complete, key=lambda path: int(path.name.rsplit("-", 1)[1])))


def best_checkpoint_record(trainer: CoritTrainer) -> dict | None:
    """Which step validation picked as the best (by AUC) and its validation scores, or None without validation."""
    state = trainer.state
    if state.best_global_step is None:
        return None
    evaluations = [entry for entry in state.log_history if "eval_auc" in entry]
    best = next((entry for entry in evaluations if entry.get("step") == state.best_global_step), {})
    return {
        "step": state.best_global_step,
        "checkpoint": f"{PREFIX_CHECKPOINT_DIR}-{state.best_global_step}",
        **{key: best.get(f"eval_{key}") for key in HEADLINE_SCORES},
    }


def validation_history(log_history: list[dict]) -> list[dict]:
    """The validation scores of every evaluation during training, with their step."""
    return [
        {"step": entry.get("step"), **{key: entry[f"eval_{key}"] for key in HEADLINE_SCORES}}
        for entry in log_history
        if "eval_auc" in entry
    ]


def trained_model(trainer: CoritTrainer) -> PreTrainedModel:
    """The trained detector as a plain model: LoRA and OSF adapters merged into the backbone."""
    model = trainer.model
    return model.merge_and_unload() if isinstance(model, PeftModel) else model


def replica_weights_identical(trainer: CoritTrainer) -> bool:
    """Whether every training process ends with the same weights (a digest gathered from each; one process: True).

    Every process must call it: it is a collective operation under torchrun / accelerate launch.
    """
    if trainer.args.world_size == 1:
        return True
    digest = torch.tensor([weights_digest(trainer.model)], device=trainer.args.device)
    gathered = trainer.accelerator.gather(digest)
    return bool((gathered == gathered[0]).all())


def release_processes(trainer: CoritTrainer) -> None:
    """Destroy the process group of a torchrun / accelerate launch run once nothing needs the other processes;
    every process must call it (a single process has nothing to release).

    Left to interpreter exit, a gloo worker thread can still hold the tensors of the last collective while Python
    shuts down; freeing them takes the GIL, which ends that thread mid-destructor and aborts the process
    ("terminate called without an active exception"). The DDP wrapper is dropped first, so the group is destroyed
    here, its threads joined with the GIL released, instead of later by the wrapper's reducer.
    """
    trainer.accelerator.free_memory()
    trainer.model_wrapped = trainer.model
    trainer.end()


def weights_digest(model: torch.nn.Module) -> int:
    """A 56-bit digest of every parameter and buffer's bytes, in state-dict order."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return int.from_bytes(digest.digest()[:7], "big")


def gsnr_records(log_history: list[dict]) -> list[dict]:
    """One record per GSNR log entry: the step and each `gsnr/<layer>` value."""
    return [
        {"step": entry.get("step"), **{key: value for key, value in entry.items() if key.startswith(GSNR_PREFIX)}}
        for entry in log_history
        if any(key.startswith(GSNR_PREFIX) for key in entry)
    ]


def mean_gsnr_by_layer(records: list[dict]) -> dict[str, float]:
    """Each layer's GSNR averaged over the logged steps, keyed by layer name (without the `gsnr/` prefix).

    A record at step 0 is left out when later ones exist: it measures the initial weights, the same for every
    rho of a seed, so it would only dilute the differences between runs.
    """
    trained = [record for record in records if record.get("step")] or records
    layers = {key for record in trained for key in record if key.startswith(GSNR_PREFIX)}
    means = {}
    for key in sorted(layers):
        values = [record[key] for record in trained if key in record]
        means[key.removeprefix(GSNR_PREFIX)] = sum(values) / len(values)
    return means


def final_train_loss(log_history: list[dict]) -> float | None:
    """The last logged training loss, or None when nothing was logged."""
    losses = [entry["loss"] for entry in log_history if "loss" in entry]
    return losses[-1] if losses else None


def save_detector(model: PreTrainedModel, output_dir: str | os.PathLike, metrics: dict, gsnr: list[dict]) -> None:
    """A loadable model folder (weights, config with auto_map, remote code, preprocessor) + metrics + GSNR log."""
    output_dir = Path(output_dir)
    model.save_pretrained(output_dir)
    write_json(output_dir / METRICS_FILE, metrics)
    write_text_atomic(output_dir / GSNR_FILE, "".join(json.dumps(record) + "\n" for record in gsnr))
