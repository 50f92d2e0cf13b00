"""Scoring a trained detector: fake probabilities for datasets and image files, per-split reports, output files.

Shared by `corit train` (validation scores), `corit evaluate`, `corit predict` and `corit study`. The numbers
themselves (the field's scores and the collapse flag) come from `corit_hf.collapse`.
"""

import csv
import json
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset
from tqdm.auto import tqdm
from transformers import AutoImageProcessor, AutoModelForImageClassification, PreTrainedModel, default_data_collator

from .collapse import DEFAULT_MARGIN, DEFAULT_THRESHOLD, SCORE_NAMES, collapse_report
from .data import ForensicCollator, ImageLoadError, open_image
from .video import VIDEO_SUFFIXES, VideoLoadError, is_video_path
from .video_scores import (
    AGGREGATES,
    VIDEO_PREFIX,
    FrameOptions,
    PreparedFrames,
    prepare_images,
    prepare_video,
    video_report,
)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
MEDIA_SUFFIXES = IMAGE_SUFFIXES + VIDEO_SUFFIXES
PREDICTION_COLUMNS = ("path", "fake_probability", "label")
MEDIA_COLUMNS = ("frame_time", "frames", "faces")
"""Extra prediction columns, present when videos or face crops are involved: a frame row's time in seconds,
and a video's (or face-cropped image's) number of scored frames and of frames with a face."""
EVAL_RESULTS_FILE = "eval_results.json"
VIDEO_COLUMN = "video"


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


def score_dataset(
    model: PreTrainedModel,
    dataset: Dataset | TorchDataset,
    image_processor: object | None,
    batch_size: int = 64,
    threshold: float = DEFAULT_THRESHOLD,
    margin: float = DEFAULT_MARGIN,
    aggregate: str = "mean",
) -> dict:
    """The field's scores (`collapse.SCORE_NAMES`), collapsed and n of `model` on a dataset with `image` and
    `label` columns (or, with `image_processor=None`, already preprocessed `pixel_values` and `labels`). A `video`
    column adds the same scores per video (`video_auc`, ...; a video's probability is the `aggregate` of its
    frames')."""
    was_training = model.training
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=batch_collator(image_processor))
    scores, labels = [], []
    for batch in loader:
        scores.append(fake_probabilities(model, batch["pixel_values"]))
        labels.append(batch["labels"].numpy())
    model.train(was_training)
    references = is_fake(np.concatenate(labels), real_label_id(model))
    probabilities = np.concatenate(scores)
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
) -> dict[str, dict]:
    """`score_dataset` for every split, keyed by split name."""
    names = tqdm(list(splits), desc="evaluating", unit="split", disable=not progress)
    return {
        name: score_dataset(model, splits[name], image_processor, batch_size, threshold, margin, aggregate)
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


def collect_image_paths(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Files as given plus every image and video file under each folder (recursive, sorted); missing paths raise."""
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES))
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
    options: FrameOptions | None = None,
    per_frame: bool = False,
) -> tuple[list[dict], list[tuple[Path, str]]]:
    """Rows (path, fake_probability, label) for every readable file, in the given order, and (path, reason) for
    the rest. Videos get one row with the aggregate of their sampled frames (`options`) and the counts of
    frames and faces, plus one row per frame with `per_frame`; with `options.faces` images are face-cropped."""
    options = options or FrameOptions()
    rows, skipped = {}, []
    bar = tqdm(total=len(paths), desc="predicting", unit="file", disable=not progress, file=sys.stderr)
    images = [(i, path) for i, path in enumerate(paths) if not is_video_path(path)]
    for batch, prepared, batch_skipped in _readable_batches(images, batch_size, options):
        skipped.extend(batch_skipped)
        probabilities = image_probabilities(model, image_processor, [item.images[0] for item in prepared], batch_size)
        for (index, path), item, probability in zip(batch, prepared, probabilities):
            rows[index] = [_prediction_row(path, float(probability), threshold, options, item)]
        bar.update(len(batch) + len(batch_skipped))
    for index, path in enumerate(paths):
        if is_video_path(path):
            try:
                rows[index] = _video_rows(model, image_processor, path, batch_size, threshold, options, per_frame)
            except VideoLoadError as error:
                skipped.append((path, skip_reason(path, error)))
            bar.update(1)
    bar.close()
    return [row for index in sorted(rows) for row in rows[index]], skipped


def skip_reason(path: Path, error: Exception) -> str:
    """Why a file was skipped, without the file name the loaders' errors start with (the caller prints it)."""
    return str(error).removeprefix(f"{path}: ")


def _readable_batches(
    paths: list[tuple[int, Path]], batch_size: int, options: FrameOptions
) -> Iterator[tuple[list[tuple[int, Path]], list[PreparedFrames], list[tuple[Path, str]]]]:
    """Chunks of `batch_size` image files: those that opened (and had a face when faceless ones are skipped),
    their prepared images, and (path, reason) for the rest."""
    for start in range(0, len(paths), batch_size):
        opened, prepared, skipped = [], [], []
        for index, path in paths[start : start + batch_size]:
            try:
                item = prepare_images([open_image(path)], [0.0], options)
            except ImageLoadError as error:
                skipped.append((path, skip_reason(path, error)))
                continue
            if item.images:
                opened.append((index, path))
                prepared.append(item)
            else:
                skipped.append((path, "no face found"))
        yield opened, prepared, skipped


def _video_rows(
    model: PreTrainedModel,
    image_processor: object,
    path: Path,
    batch_size: int,
    threshold: float,
    options: FrameOptions,
    per_frame: bool,
) -> list[dict]:
    """The video's row (aggregate of its frames), then, with `per_frame`, one row per scored frame."""
    prepared = prepare_video(path, options)
    probabilities = image_probabilities(model, image_processor, prepared.images, batch_size)
    video = float(AGGREGATES[options.aggregate](probabilities))
    rows = [_prediction_row(path, video, threshold, options, prepared)]
    if per_frame:
        for time, box, probability in zip(prepared.times, prepared.boxes, probabilities):
            frame = {"frame_time": round(time, 3), "faces": int(box is not None) if options.faces else ""}
            rows.append({**_prediction_row(path, float(probability), threshold), **frame})
    return rows


def _prediction_row(
    path: Path, probability: float, threshold: float, options: FrameOptions | None = None, item=None
) -> dict:
    row = {
        "path": str(path),
        "fake_probability": probability,
        "label": "fake" if probability >= threshold else "real",
    }
    if item is not None and (options.faces or is_video_path(path)):
        row.update(frames=len(item.images), faces=item.faces if options.faces else "")
    return row


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
    present = {key for row in rows for key in row}
    columns = [*PREDICTION_COLUMNS, *(key for key in MEDIA_COLUMNS if key in present)]
    writer = csv.DictWriter(stream, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
