"""Scoring a trained detector: fake probabilities of images and datasets, per-split reports and their table.

Shared by `corit train` (validation scores), `corit evaluate`, `corit predict` and `corit study`. The numbers
themselves (the field's scores and the collapse flag) come from `corit_hf.evaluation.collapse`.
"""

from collections.abc import Iterable

import numpy as np
import torch
from datasets import Dataset
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset
from tqdm.auto import tqdm
from transformers import AutoImageProcessor, AutoModelForImageClassification, PreTrainedModel, default_data_collator

from ..data import ForensicCollator
from ..models.loading import first_line, quiet_weight_loading, resolve_model
from .collapse import DEFAULT_MARGIN, DEFAULT_THRESHOLD, SCORE_NAMES, collapse_report
from .video_scores import VIDEO_PREFIX, video_report


EVAL_RESULTS_FILE = "eval_results.json"
VIDEO_COLUMN = "video"


def load_detector(model_path: str) -> tuple[PreTrainedModel, object]:
    """A saved detector (folder or Hub repo id) in eval mode, with its image processor.

    Raises FileNotFoundError with a one-line reason when there is no loadable model at `model_path`.
    """
    source = resolve_model(model_path)
    try:
        with quiet_weight_loading():
            model = AutoModelForImageClassification.from_pretrained(source)
        image_processor = AutoImageProcessor.from_pretrained(source)
    except (OSError, ValueError) as error:  # missing or corrupt files, not an image classifier
        raise FileNotFoundError(f"cannot load a model from {model_path!r}: {first_line(error)}") from None
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


def image_probabilities(
    model: PreTrainedModel, image_processor: object, images: list, batch_size: int = 32
) -> np.ndarray:
    """`fake_probabilities` of RGB images, preprocessed and scored `batch_size` at a time."""
    batches = [
        fake_probabilities(model, image_processor(images[i : i + batch_size], return_tensors="pt")["pixel_values"])
        for i in range(0, len(images), batch_size)
    ]
    return np.concatenate(batches) if batches else np.empty(0)


def is_fake(labels: Iterable[int], real_id: int) -> np.ndarray:
    """1 for every label that is not the real class, 0 for real."""
    return (np.asarray(list(labels)) != real_id).astype(int)


def batch_collator(image_processor: object | None):
    """ForensicCollator for rows with `image` and `label`; None: rows already hold `pixel_values` and `labels`."""
    return default_data_collator if image_processor is None else ForensicCollator(image_processor)


def dataset_probabilities(
    model: PreTrainedModel,
    dataset: Dataset | TorchDataset,
    image_processor: object | None,
    batch_size: int = 64,
    workers: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """`fake_probabilities` of every row of a dataset (read in batches, in order, by `workers` DataLoader
    processes if any) and the rows' labels."""
    was_training = model.training
    model.eval()
    collate = batch_collator(image_processor)
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate, num_workers=workers)
    scores, labels = [], []
    for batch in loader:
        scores.append(fake_probabilities(model, batch["pixel_values"]))
        labels.append(batch["labels"].numpy())
    model.train(was_training)
    return np.concatenate(scores), np.concatenate(labels)


def score_dataset(
    model: PreTrainedModel,
    dataset: Dataset | TorchDataset,
    image_processor: object | None,
    batch_size: int = 64,
    threshold: float = DEFAULT_THRESHOLD,
    margin: float = DEFAULT_MARGIN,
    aggregate: str = "mean",
    workers: int = 0,
) -> dict:
    """The field's scores (`collapse.SCORE_NAMES`), collapsed and n of `model` on a dataset with `image` and
    `label` columns (or, with `image_processor=None`, already preprocessed `pixel_values` and `labels`). A `video`
    column adds the same scores per video (`video_auc`, ...; a video's probability is the `aggregate` of its
    frames'). Images are read and preprocessed batch by batch, by `workers` DataLoader processes if any."""
    probabilities, labels = dataset_probabilities(model, dataset, image_processor, batch_size, workers)
    references = is_fake(labels, real_label_id(model))
    report = collapse_report(probabilities, references, threshold, margin)
    if VIDEO_COLUMN in getattr(dataset, "column_names", ()):
        videos = dataset[VIDEO_COLUMN]
        report.update(video_report(probabilities, references, videos, aggregate, threshold, margin))
    return report


def score_splits(
    model: PreTrainedModel,
    splits: dict,
    image_processor: object | None,
    batch_size: int = 64,
    threshold: float = DEFAULT_THRESHOLD,
    margin: float = DEFAULT_MARGIN,
    progress: bool = False,
    aggregate: str = "mean",
    workers: int = 0,
) -> dict[str, dict]:
    """`score_dataset` for every split, keyed by split name."""
    names = tqdm(list(splits), desc="evaluating", unit="split", disable=not progress)
    return {
        name: score_dataset(model, splits[name], image_processor, batch_size, threshold, margin, aggregate, workers)
        for name in names
    }


def eval_results(model_name: str, dataset: dict, split_scores: dict[str, dict]) -> dict:
    """The `eval_results.json` document the model card reads: model, dataset description, per-split scores."""
    return {"model": model_name, "dataset": dataset, "splits": split_scores}


def format_score_table(split_scores: dict[str, dict]) -> str:
    """A fixed-width table of per-split scores, one row per split and one column per field score (frame-level,
    then video-level if any)."""
    widths = {key: max(6, len(name)) for key, name in SCORE_NAMES.items()}
    header = f"{'split':<20} {'n':>6} " + " ".join(f"{name:>{widths[key]}}" for key, name in SCORE_NAMES.items())
    rows = [_score_line(name, scores, widths) for name, scores in split_scores.items()]
    videos = {name: scores for name, scores in split_scores.items() if VIDEO_PREFIX + "auc" in scores}
    if videos:
        rows += ["per video:"] + [_score_line(name, scores, widths, VIDEO_PREFIX) for name, scores in videos.items()]
    return "\n".join([header, *rows])


def _score_line(name: str, scores: dict, widths: dict[str, int], prefix: str = "") -> str:
    s = {key.removeprefix(prefix): value for key, value in scores.items() if key.startswith(prefix)}
    values = " ".join(f"{s[key]:>{widths[key]}.3f}" for key in SCORE_NAMES)
    return f"{name:<20} {s['n']:>6} {values}  {'collapsed' if s['collapsed'] else ''}".rstrip()
