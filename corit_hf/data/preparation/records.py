"""Preparing one source file: its rows (an image, or a video's sampled frames) and its record.

This is what the worker processes of `corit prepare` run. A record says what became of the file: its status
(`prepared_format.STATUSES`), the rows it gave, and for a video the frames sampled, kept, with a face and
replaced. Nothing here raises for bad input: a file that cannot be used gives no rows and a record saying why.
"""

from pathlib import Path
from typing import NamedTuple

from ...bad_files import PROBLEMS, UnusableFile, problem
from ...video.faces import FaceDetector
from ...video.inputs import FrameOptions, PreparedFrames, prepare_images, prepare_video
from ..storage import open_unchanged, png_bytes, stored_size
from .prepared_format import PrepareOptions


class SourceFile(NamedTuple):
    """One file to prepare: its number in the plan, its source folder (index), path relative to that folder,
    whether it is a video, and each (split, label, family) it belongs to (FaceForensics++ reuses its reals)."""

    index: int
    source: int
    path: str
    video: bool
    memberships: tuple[tuple[str, int, str], ...]


class FileResult(NamedTuple):
    """The rows of one source file (without their split, label and family) and its record."""

    index: int
    rows: list[dict]
    record: dict


def prepare_file(task: SourceFile, root: str, options: PrepareOptions, detector: FaceDetector | None) -> FileResult:
    """Prepare one source file under `root`; bad files give no rows and a record with their status and reason."""
    path = Path(root, task.path)
    try:
        rows, details = (_video_rows if task.video else _image_rows)(path, task.path, options, detector)
    except UnusableFile as error:
        return _unusable(task, error.status, error.detail)
    except FileNotFoundError:
        return _unusable(task, "not_found")
    except OSError as error:
        return _unusable(task, "unreadable", error.strerror or str(error))
    except Exception as error:  # decoders raise many kinds of errors on corrupt files: one file must not stop a run
        return _unusable(task, "decode_error", f"{type(error).__name__}: {error}")
    return FileResult(task.index, rows, {**_record(task), "rows": len(rows), **details})


def crashed_result(task: SourceFile) -> FileResult:
    """The record of a file whose decoding killed the process preparing it, even alone (`workers.py`)."""
    return _unusable(task, "crashed")


def _unusable(task: SourceFile, status: str, detail: str = "") -> FileResult:
    """No rows, and a record with the file's kind of problem in the wording every command uses."""
    return FileResult(
        task.index, [], {**_record(task), "status": status, "rows": 0, "reason": problem(status, detail)}
    )


def _record(task: SourceFile) -> dict:
    return {"file": task.path, "source": task.source, "splits": [split for split, _, _ in task.memberships]}


def _frame_options(options: PrepareOptions) -> FrameOptions:
    return FrameOptions(frames=options.frames, faces=options.faces, face_fallback=options.face_fallback)


def _image_rows(path: Path, name: str, options: PrepareOptions, detector: FaceDetector | None) -> tuple[list, dict]:
    """One row for a still image: when it decodes unchanged, a reference by its absolute path (so
    `datasets.load_from_disk` reads it from any folder), or with `embed` its own bytes (named by its path in the
    source); else its conversion as PNG; with faces, the face crop at `size` (or the image, or nothing, without a
    face)."""
    image, unchanged, file_format = open_unchanged(path, options.max_pixels)
    original = {"width": image.width, "height": image.height, "format": file_format}
    if options.faces:
        prepared = prepare_images([image], [0.0], _frame_options(options), detector)
        if not prepared.images:
            return [], {"status": "no_face", "reason": PROBLEMS["no_face"]}
        rows = [{**row, **original} for row in _frame_rows(prepared, options, video=False)]
        if prepared.faces == 0:
            return rows, {"status": "partial", "reason": f"{PROBLEMS['no_face']}; kept whole"}
        return rows, {"status": "ok", "reason": ""}
    if unchanged:
        stored = {"path": name, "bytes": path.read_bytes()} if options.embed else {"path": str(path), "bytes": None}
    else:
        stored = {"path": None, "bytes": png_bytes(image)}
    return [{"image": stored, **original}], {"status": "ok", "reason": ""}


def _video_rows(path: Path, name: str, options: PrepareOptions, detector: FaceDetector | None) -> tuple[list, dict]:
    """A row per kept frame of a video: frames sampled evenly in time, face-cropped with `faces` (a frame
    without a face replaced by a nearby one that has one), stored as PNG at `size`."""
    prepared = prepare_video(path, _frame_options(options), detector)
    width, height = prepared.frame_size
    original = {"width": width, "height": height, "format": prepared.codec}
    rows = [{**row, **original} for row in _frame_rows(prepared, options, video=True)]
    details = {
        "sampled": prepared.sampled,
        "total_frames": prepared.total_frames,
        "faces": prepared.faces if options.faces else None,
        "replaced": prepared.replaced if options.faces else None,
    }
    kept_whole = len(rows) - prepared.faces if options.faces else 0
    dropped = prepared.sampled - len(rows)
    reasons = []
    if prepared.total_frames < options.frames:
        reasons.append(f"the video has only {prepared.total_frames} frames")
    elif prepared.sampled < options.frames:  # a variable frame rate: several even times nearest to one frame
        reasons.append(f"only {prepared.sampled} distinct frames are nearest to {options.frames} even times")
    if kept_whole:
        reasons.append(f"{kept_whole} of {len(rows)} frames kept whole without a face")
    if dropped:
        reasons.append(f"{dropped} of {prepared.sampled} frames dropped without a face")
    return rows, {"status": "partial" if reasons else "ok", "reason": "; ".join(reasons), **details}


def _frame_rows(prepared: PreparedFrames, options: PrepareOptions, video: bool) -> list[dict]:
    """The prepared images as PNG rows at `size`, with their position, time and face box."""
    rows = []
    for image, box, time, position in zip(prepared.images, prepared.boxes, prepared.times, prepared.positions):
        row = {"image": {"path": None, "bytes": png_bytes(stored_size(image, box is not None, options.size))}}
        if video:
            row.update(frame_index=position, time=time)
        if options.faces:
            row["box"] = list(box.as_tuple()) if box is not None else None
        rows.append(row)
    return rows
