"""Scoring a trained detector: fake probabilities for datasets and image files, per-split reports, output files.

Shared by `corit train` (validation scores), `corit evaluate`, `corit predict` and `corit study`. The numbers
themselves (AUC, AP, accuracy, EER, collapsed) come from `corit_hf.collapse`.
"""

import csv
import json
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset
from PIL import Image
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset
from tqdm.auto import tqdm
from transformers import AutoImageProcessor, AutoModelForImageClassification, PreTrainedModel, default_data_collator

from .collapse import DEFAULT_MARGIN, DEFAULT_THRESHOLD, collapse_report
from .data import ForensicCollator, ImageLoadError, open_image


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
PREDICTION_COLUMNS = ("path", "fake_probability", "label")
EVAL_RESULTS_FILE = "eval_results.json"


def load_detector(model_path: str) -> tuple[PreTrainedModel, object]:
    """A saved detector (folder or Hub repo id) in eval mode, with its image processor.

    Raises FileNotFoundError with a one-line reason when there is no loadable model at `model_path`.
    """
    try:
        model = AutoModelForImageClassification.from_pretrained(model_path)
        image_processor = AutoImageProcessor.from_pretrained(model_path)
    except (OSError, ValueError) as error:  # missing files, unreachable Hub, not a model folder
        reason = str(error).strip().splitlines()[0]
        raise FileNotFoundError(f"cannot load a model from {model_path!r}: {reason}") from None
    return model.eval(), image_processor


def real_label_id(model: PreTrainedModel) -> int:
    """The id of the real class: CoRIT's `real_label_id`, else the label named "real", else 0."""
    config = model.config
    if hasattr(config, "real_label_id"):
        return config.real_label_id
    return {name.lower(): idx for name, idx in config.label2id.items()}.get("real", 0)


def fake_probability(logits: torch.Tensor, real_id: int) -> torch.Tensor:
    """P(fake) = 1 - P(real) per row, so several fake classes (attribution heads) add up."""
    return 1.0 - logits.float().softmax(dim=-1)[:, real_id]


@torch.no_grad()
def fake_probabilities(model: PreTrainedModel, pixel_values: torch.Tensor) -> np.ndarray:
    """`fake_probability` of a batch of pixel values, as a NumPy array."""
    logits = model(pixel_values=pixel_values.to(model.device, model.dtype)).logits
    return fake_probability(logits, real_label_id(model)).cpu().numpy()


def is_fake(labels: Iterable[int], real_id: int) -> np.ndarray:
    """1 for every label that is not the real class, 0 for real."""
    return (np.asarray(list(labels)) != real_id).astype(int)


def batch_collator(image_processor: object | None):
    """ForensicCollator for rows with `image` and `label`; None: rows already hold `pixel_values` and `labels`."""
    return default_data_collator if image_processor is None else ForensicCollator(image_processor)


def score_dataset(
    model: PreTrainedModel,
    dataset: Dataset | TorchDataset,
    image_processor: object | None,
    batch_size: int = 64,
    threshold: float = DEFAULT_THRESHOLD,
    margin: float = DEFAULT_MARGIN,
) -> dict:
    """AUC / AP / accuracy / EER / collapsed / n of `model` on a dataset with `image` and `label` columns
    (or, with `image_processor=None`, already preprocessed `pixel_values` and `labels`)."""
    was_training = model.training
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=batch_collator(image_processor))
    scores, labels = [], []
    for batch in loader:
        scores.append(fake_probabilities(model, batch["pixel_values"]))
        labels.append(batch["labels"].numpy())
    model.train(was_training)
    references = is_fake(np.concatenate(labels), real_label_id(model))
    return collapse_report(np.concatenate(scores), references, threshold, margin)


def score_splits(
    model: PreTrainedModel,
    splits: dict,
    image_processor: object | None,
    batch_size: int = 64,
    threshold: float = DEFAULT_THRESHOLD,
    margin: float = DEFAULT_MARGIN,
    progress: bool = False,
) -> dict[str, dict]:
    """`score_dataset` for every split, keyed by split name."""
    names = tqdm(list(splits), desc="evaluating", unit="split", disable=not progress)
    return {name: score_dataset(model, splits[name], image_processor, batch_size, threshold, margin) for name in names}


def eval_results(model_name: str, dataset: dict, split_scores: dict[str, dict]) -> dict:
    """The `eval_results.json` document the model card reads: model, dataset description, per-split scores."""
    return {"model": model_name, "dataset": dataset, "splits": split_scores}


def format_score_table(split_scores: dict[str, dict]) -> str:
    """A fixed-width table of per-split scores, one row per split."""
    header = f"{'split':<20} {'n':>6} {'AUC':>7} {'AP':>7} {'acc':>7} {'EER':>7}  collapsed"
    rows = [
        f"{name:<20} {s['n']:>6} {s['auc']:>7.3f} {s['ap']:>7.3f} {s['accuracy']:>7.3f} {s['eer']:>7.3f}  "
        f"{'yes' if s['collapsed'] else 'no'}"
        for name, s in split_scores.items()
    ]
    return "\n".join([header, *rows])


@contextmanager
def atomic_target(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path to write to, renamed onto `path` on success, so a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    yield temporary
    temporary.replace(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically (see `atomic_target`)."""
    with atomic_target(path) as temporary:
        temporary.write_text(text)


def write_json(path: str | os.PathLike, document: object) -> None:
    """Write a JSON document atomically."""
    write_text_atomic(path, json.dumps(document, indent=2) + "\n")


def collect_image_paths(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Files as given plus every image file under each folder (recursive, sorted); missing paths raise."""
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"{path} does not exist.")
    return found


def predict_files(
    model: PreTrainedModel,
    image_processor: object,
    paths: list[Path],
    batch_size: int = 32,
    threshold: float = DEFAULT_THRESHOLD,
    progress: bool = True,
) -> tuple[list[dict], list[tuple[Path, str]]]:
    """Rows (path, fake_probability, label) for every readable file, and (path, reason) for the rest."""
    rows, skipped = [], []
    bar = tqdm(total=len(paths), desc="predicting", unit="image", disable=not progress, file=sys.stderr)
    for batch_paths, images, batch_skipped in _readable_batches(paths, batch_size):
        skipped.extend(batch_skipped)
        if images:
            pixel_values = image_processor(images, return_tensors="pt")["pixel_values"]
            for path, probability in zip(batch_paths, fake_probabilities(model, pixel_values)):
                rows.append(_prediction_row(path, float(probability), threshold))
        bar.update(len(batch_paths) + len(batch_skipped))
    bar.close()
    return rows, skipped


def _readable_batches(
    paths: list[Path], batch_size: int
) -> Iterator[tuple[list[Path], list[Image.Image], list[tuple[Path, str]]]]:
    """Chunks of `batch_size` files: the paths that opened, their RGB images, and (path, reason) for the rest."""
    for start in range(0, len(paths), batch_size):
        opened, images, skipped = [], [], []
        for path in paths[start : start + batch_size]:
            try:
                images.append(open_image(path))
                opened.append(path)
            except ImageLoadError as error:
                skipped.append((path, str(error)))
        yield opened, images, skipped


def _prediction_row(path: Path, probability: float, threshold: float) -> dict:
    return {
        "path": str(path),
        "fake_probability": probability,
        "label": "fake" if probability >= threshold else "real",
    }


def prediction_format(output: str | None, requested: str | None) -> str:
    """`requested` if given, else from the output file's extension (.csv, .jsonl / .json), else CSV."""
    if requested:
        return requested
    suffix = Path(output).suffix.lower() if output else ""
    if suffix in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    if suffix in ("", ".csv"):
        return "csv"
    raise ValueError(f"Cannot tell the format of {output!r} from its extension; pass --format csv or jsonl.")


def write_predictions(rows: list[dict], stream, file_format: str) -> None:
    """Rows as CSV (with a header) or JSON Lines to an open text stream."""
    if file_format == "jsonl":
        for row in rows:
            stream.write(json.dumps(row) + "\n")
        return
    writer = csv.DictWriter(stream, fieldnames=PREDICTION_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
