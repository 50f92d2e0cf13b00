"""Predictions for a prepared dataset (`corit prepare`): a row per source file, as for files, with no decoding
beyond reading the stored frames; files the preparation could not use are reported with its reason."""

import json
import os
from pathlib import Path

import numpy as np
from transformers import PreTrainedModel

from ..data.preparation.prepared import open_prepared, source_roots, split_sources
from ..data.preparation.prepared_format import RECORDS_FILE
from ..video.frames import is_video_path
from ..video.inputs import AGGREGATES
from .collapse import DEFAULT_THRESHOLD
from .predict import prediction_row
from .scoring import dataset_probabilities


def predict_prepared(
    model: PreTrainedModel,
    image_processor: object,
    folder: str | os.PathLike,
    batch_size: int = 32,
    threshold: float = DEFAULT_THRESHOLD,
    aggregate: str = "mean",
    per_frame: bool = False,
    **requested,
) -> tuple[list[dict], list[tuple[Path, str]]]:
    """Rows (path in its source folder, fake_probability, label) for every source file of a prepared folder, a
    video's being the `aggregate` of its frames' (with frames and faces counted, and a row per frame with
    `per_frame`), each file once even when it is in several splits; and (path, reason) of the files without
    rows. `requested` (frames, faces, face_fallback) is checked against the preparation as `open_prepared` does."""
    splits = open_prepared(folder, **requested)
    rows, seen = [], set()
    for name, root in split_sources(folder).items():
        split = splits[name]
        probabilities, _ = dataset_probabilities(model, split, image_processor, batch_size)
        columns = split.select_columns([column for column in ("file", "time", "box") if column in split.column_names])
        table = columns.with_format(None).to_dict()
        files = table["file"]
        starts = [i for i in range(len(files)) if i == 0 or files[i] != files[i - 1]]
        for start, end in zip(starts, starts[1:] + [len(files)]):
            path = root / files[start]
            if path in seen:
                continue
            seen.add(path)
            rows += _file_rows(path, probabilities[start:end], table, start, threshold, aggregate, per_frame)
    return rows, _unused_files(Path(folder))


def _file_rows(
    path: Path, probabilities: np.ndarray, table: dict, start: int, threshold: float, aggregate: str, per_frame: bool
) -> list[dict]:
    """The row of one source file (and of each of its frames with `per_frame`), with the columns `predict_files`
    gives."""
    boxes = table["box"][start : start + len(probabilities)] if "box" in table else []
    row = prediction_row(path, float(AGGREGATES[aggregate](probabilities)), threshold)
    if boxes or is_video_path(path):
        row.update(frames=len(probabilities), faces=sum(box is not None for box in boxes) if boxes else "")
    rows = [row]
    if per_frame and is_video_path(path):
        for offset, probability in enumerate(probabilities):
            frame = {"frame_time": round(table["time"][start + offset], 3)}
            frame["faces"] = int(boxes[offset] is not None) if boxes else ""
            rows.append({**prediction_row(path, float(probability), threshold), **frame})
    return rows


def _unused_files(folder: Path) -> list[tuple[Path, str]]:
    """(path, reason) of every source file the preparation gave no rows."""
    roots = source_roots(folder)
    with open(folder / RECORDS_FILE) as records:
        return [
            (roots[record["source"]] / record["file"], record["reason"])
            for record in map(json.loads, records)
            if record["rows"] == 0
        ]
