"""Predictions for files: fake probabilities of image and video files and folders, as CSV or JSON Lines rows.

Behind `corit predict`; unreadable files are skipped and reported with a reason, never fatal.
"""

import csv
import json
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from tqdm.auto import tqdm
from transformers import PreTrainedModel

from ..bad_files import PROBLEMS
from ..data import ImageLoadError, open_image
from ..video.frames import VIDEO_SUFFIXES, VideoLoadError, is_video_path
from ..video.inputs import AGGREGATES, FrameOptions, PreparedFrames, prepare_images, prepare_video
from .collapse import DEFAULT_THRESHOLD, is_labelled_fake
from .scoring import image_probabilities


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
MEDIA_SUFFIXES = IMAGE_SUFFIXES + VIDEO_SUFFIXES
PREDICTION_COLUMNS = ("path", "fake_probability", "label")
MEDIA_COLUMNS = ("frame_time", "frames", "faces")
"""Extra prediction columns, present when videos or face crops are involved: a frame row's time in seconds,
and a video's (or face-cropped image's) number of scored frames and of frames with a face."""


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
            rows[index] = [prediction_row(path, float(probability), threshold, options, item)]
        bar.update(len(batch) + len(batch_skipped))
    for index, path in enumerate(paths):
        if is_video_path(path):
            try:
                rows[index] = _video_rows(model, image_processor, path, batch_size, threshold, options, per_frame)
            except VideoLoadError as error:
                skipped.append((path, error.reason))
            bar.update(1)
    bar.close()
    return [row for index in sorted(rows) for row in rows[index]], skipped


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
                skipped.append((path, error.reason))
                continue
            if item.images:
                opened.append((index, path))
                prepared.append(item)
            else:
                skipped.append((path, PROBLEMS["no_face"]))
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
    rows = [prediction_row(path, video, threshold, options, prepared)]
    if per_frame:
        for time, box, probability in zip(prepared.times, prepared.boxes, probabilities):
            frame = {"frame_time": round(time, 3), "faces": int(box is not None) if options.faces else ""}
            rows.append({**prediction_row(path, float(probability), threshold), **frame})
    return rows


def prediction_row(
    path: Path, probability: float, threshold: float, options: FrameOptions | None = None, item=None
) -> dict:
    """A file's (or frame's) prediction row; with the prepared `item` of a video or face crop, its frame and face
    counts."""
    row = {
        "path": str(path),
        "fake_probability": probability,
        "label": "fake" if is_labelled_fake(probability, threshold) else "real",
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
