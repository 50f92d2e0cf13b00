"""One training run of a CoRIT detector with `CoritTrainer`: model, data, arguments, and the saved output folder.

Shared by `corit train` (one run) and `corit study` (one run per configuration, rho and seed).
"""

import json
import os
from pathlib import Path

from datasets import DatasetDict, load_from_disk
from peft import PeftModel
from transformers import AutoConfig, PreTrainedModel, PrinterCallback, set_seed

from .configuration_corit import CoritConfig
from .data import build_benchmark, load_forensic_folder
from .evaluation import batch_collator, write_json, write_text_atomic
from .finetuning import apply_finetuning
from .modeling_corit import CoritForImageClassification, image_processor_for
from .trainer import CoritTrainer, CoritTrainingArguments
from .video_scores import FrameOptions


METRICS_FILE = "metrics.json"
GSNR_FILE = "gsnr.jsonl"
GSNR_PREFIX = "gsnr/"


def build_detector(
    preset: str = "tiny",
    backbone: str | None = None,
    labels: list[str] | None = None,
    seed: int = 0,
    **overrides,
) -> CoritForImageClassification:
    """A fresh detector: random-init `preset` backbone, or CLIP weights from `backbone` (path or repo id).

    `labels` are the class names in id order (default real, fake); `overrides` are CoritConfig fields. The
    random initialisation is seeded, so a run does not depend on what the process did before.
    """
    overrides = {**overrides, **label_fields(labels)}
    set_seed(seed)
    if backbone:
        return CoritForImageClassification.from_clip(backbone, **overrides)
    return CoritForImageClassification(CoritConfig.from_preset(preset, **overrides))


def detector_config(preset: str = "tiny", backbone: str | None = None) -> CoritConfig:
    """The backbone shape `build_detector` would use (input size, preprocessing), without loading weights."""
    if backbone:
        clip_config = AutoConfig.from_pretrained(backbone)
        return CoritConfig(vision_config=getattr(clip_config, "vision_config", clip_config).to_dict())
    return CoritConfig.from_preset(preset)


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
    frame_options: FrameOptions | None = None,
) -> tuple[DatasetDict, dict]:
    """The splits to train or evaluate on, and a description for `eval_results.json`.

    `data` None: the built-in benchmark (train on `train_family`, test on every family; saved to and reloaded
    from `cache_dir` if given). A folder written by `DatasetDict.save_to_disk`: loaded as is. Any other folder:
    real/fake image or video folders (`load_forensic_folder`), videos sampled and faces cropped as
    `frame_options` says, frames stored at `image_size`.
    """
    if data is None and frame_options is not None and frame_options.faces:
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
    if (path / "dataset_dict.json").is_file() or (path / "dataset_info.json").is_file():
        splits = load_from_disk(str(path))
        splits = splits if isinstance(splits, DatasetDict) else DatasetDict({"test": splits})
    else:
        splits, _ = load_forensic_folder(str(path), frame_options=frame_options, frame_size=image_size)
    return splits, {"name": path.name, "type": str(path), "config": None}


def class_names(splits: DatasetDict) -> list[str] | None:
    """The label names of the first split when its `label` column is a ClassLabel."""
    feature = next(iter(splits.values())).features.get("label")
    return list(feature.names) if hasattr(feature, "names") else None


def training_arguments(output_dir: str | os.PathLike, **overrides) -> CoritTrainingArguments:
    """CoritTrainingArguments with the defaults every run here shares: no checkpoints, no reporters, image columns."""
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
    import torch

    return torch.cuda.is_available() or torch.backends.mps.is_available()


def train_detector(
    model: PreTrainedModel,
    train_dataset,
    args: CoritTrainingArguments,
    finetuning: str = "full",
    lora_rank: int = 8,
    preprocessed: bool = False,
) -> CoritTrainer:
    """Fine-tune `model` (mode full / layernorm / lora) on `train_dataset` with SAM and GSNR logging.

    Rows hold `image` and `label`, or with `preprocessed` the model inputs `pixel_values` and `labels`.
    With `args.disable_tqdm` the run is silent: Trainer's log printer is removed too.
    """
    image_processor = None if preprocessed else image_processor_for(model.config)
    model = apply_finetuning(model, finetuning, lora_rank=lora_rank)
    collator = batch_collator(image_processor)
    trainer = CoritTrainer(model=model, args=args, train_dataset=train_dataset, data_collator=collator)
    if args.disable_tqdm:
        trainer.remove_callback(PrinterCallback)
    trainer.train()
    return trainer


def trained_model(trainer: CoritTrainer) -> PreTrainedModel:
    """The trained detector as a plain model: LoRA adapters merged into the backbone."""
    model = trainer.model
    return model.merge_and_unload() if isinstance(model, PeftModel) else model


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
