"""Reading prepared datasets, and preparing raw folders into a cache, for every command that takes data.

`open_prepared` is the one entry point: a prepared folder opens as it is (memory-mapped; images decoded only
when a row is read), a raw folder is prepared once into the cache (keyed by its listing and the options, so the
next run decodes nothing), and a `save_to_disk` folder loads as before. Options a command asks for are checked
against those a folder was prepared with; `frames` below the prepared count keeps that many of each video's
frames, evenly.
"""

import io
import json
import os
import sys
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
from datasets import Dataset, DatasetDict, Image, load_from_disk
from PIL import Image as PILImage

from ...defaults import VIDEO_FRAMES
from ..folders import sanitise
from .plan import plan_preparation
from .prepare import prepare_planned
from .prepared_format import PREPARE_FILE, PrepareOptions


CACHE_ENV = "CORIT_CACHE"
"""Environment variable naming the cache folder (default: ~/.cache/corit, or under $XDG_CACHE_HOME)."""


def default_cache_dir() -> Path:
    """Where raw folders are prepared: $CORIT_CACHE, else corit/prepared under $XDG_CACHE_HOME or ~/.cache."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]) / "prepared"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "corit" / "prepared"


def is_prepared(path: str | os.PathLike) -> bool:
    """Whether `path` is a complete preparation (its prepare.json is written last)."""
    return (Path(path) / PREPARE_FILE).is_file()


def open_prepared(
    sources: str | os.PathLike | list[str | os.PathLike],
    frames: int | None = None,
    faces: bool | None = None,
    face_fallback: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    num_proc: int | None = None,
    progress: bool = True,
) -> DatasetDict:
    """The splits of a prepared folder, of a `save_to_disk` folder, or of raw folders (several merge) prepared
    into `cache_dir` (default: `default_cache_dir()`) unless prepared there already.

    `frames`, `faces` and `face_fallback` (None: as prepared, or the defaults for raw folders) must agree with a
    prepared folder's options: a different face setting or more frames than were prepared is a ValueError;
    fewer frames keep that many of each video's rows, evenly spaced. Rows decode their image on access.
    """
    sources = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
    first = Path(sources[0])
    if len(sources) == 1 and is_prepared(first):
        return load_prepared(first, frames, faces, face_fallback)
    if len(sources) == 1 and ((first / "dataset_dict.json").is_file() or (first / "dataset_info.json").is_file()):
        splits = load_from_disk(str(first))
        return splits if isinstance(splits, DatasetDict) else DatasetDict({"test": splits})
    if any(is_prepared(source) for source in sources):
        raise ValueError("a prepared folder cannot be merged with other sources: prepare them together.")
    frames = VIDEO_FRAMES if frames is None else frames
    options = PrepareOptions(frames=frames, faces=bool(faces), face_fallback=face_fallback or "whole")
    plan = plan_preparation(sources, options)
    name = "+".join(sanitise(root.name) for root in plan.sources)[:64]
    folder = Path(cache_dir or default_cache_dir()) / f"{name}-{plan.key(options)[:16]}"
    summary = prepare_planned(plan, folder, options, num_proc, progress=progress)
    if progress:
        names = ", ".join(str(root) for root in plan.sources)
        message = f"Reusing the prepared dataset {folder} (of {names})." if summary.reused else str(summary)
        print(message, file=sys.stderr)
    return load_prepared(folder)


def load_prepared(
    folder: str | os.PathLike, frames: int | None = None, faces: bool | None = None, face_fallback: str | None = None
) -> DatasetDict:
    """The splits of a complete preparation, checked against the requested options (see `open_prepared`), each
    decoding its images (embedded bytes, or files in the source folder found by `source_roots`) only when a row
    is read."""
    folder = Path(folder)
    recorded = json.loads((folder / PREPARE_FILE).read_text())
    options = PrepareOptions.from_record(recorded["options"])
    _check_agrees(folder, options, frames, faces, face_fallback)
    splits = load_from_disk(str(folder))
    roots = source_roots(folder)
    for name, number in _split_source_numbers(recorded).items():
        split = splits[name].cast_column("image", Image(decode=False))
        if frames is not None and frames < options.frames and recorded["videos"]:
            split = fewer_frames(split, frames)
        split.set_transform(PreparedImages(roots[number], Path(recorded["sources"][number]["root"])))
        splits[name] = split
    return splits


def source_roots(folder: str | os.PathLike) -> list[Path]:
    """The source folders of a complete preparation, in order: beside the prepared folder as they were (the
    pair may have moved together), else at their recorded absolute paths."""
    folder = Path(folder)
    roots = []
    for source in json.loads((folder / PREPARE_FILE).read_text())["sources"]:
        relative = (folder / source["relative_root"]).resolve()
        roots.append(relative if relative.is_dir() else Path(source["root"]))
    return roots


def split_sources(folder: str | os.PathLike) -> dict[str, Path]:
    """The source folder of each split of a complete preparation (splits without rows left out)."""
    recorded = json.loads((Path(folder) / PREPARE_FILE).read_text())
    roots = source_roots(folder)
    return {name: roots[number] for name, number in _split_source_numbers(recorded).items()}


def _split_source_numbers(recorded: dict) -> dict[str, int]:
    """The number of the source of each split of a prepare.json (splits without rows left out)."""
    return {
        name: number
        for number, source in enumerate(recorded["sources"])
        for name in source["splits"]
        if name in recorded["rows"]
    }


def _check_agrees(folder: Path, options: PrepareOptions, frames: int | None, faces, face_fallback) -> None:
    """A ValueError saying what to do when a command asks for other options than `folder` was prepared with."""
    with_faces = "with" if options.faces else "without"
    if faces is not None and bool(faces) != options.faces:
        raise ValueError(
            f"{folder} was prepared {with_faces} --faces; prepare the source folders again "
            f"{'with' if faces else 'without'} --faces, or {'add' if options.faces else 'drop'} --faces."
        )
    if face_fallback is not None and options.faces and face_fallback != options.face_fallback:
        raise ValueError(
            f"{folder} was prepared with --face-fallback {options.face_fallback}, not {face_fallback}; "
            "prepare it again to change it."
        )
    if frames is not None and frames > options.frames:
        raise ValueError(
            f"{folder} holds {options.frames} frames per video, fewer than --frames {frames}; prepare it again "
            f"with --frames {frames} (or ask for {options.frames} or fewer)."
        )


def fewer_frames(split: Dataset, frames: int) -> Dataset:
    """`frames` of each video's rows (rows of one video are consecutive), evenly spaced; images keep their row."""
    videos = split.data.column("video")
    if len(videos) == 0:
        return split
    changes = np.flatnonzero(pc.not_equal(videos.slice(1), videos.slice(0, len(videos) - 1)).to_numpy())
    starts = np.concatenate([[0], changes + 1])
    ends = np.concatenate([starts[1:], [len(videos)]])
    keep = [
        start + np.unique(np.round(np.linspace(0, end - start - 1, min(frames, end - start)))).astype(int)
        for start, end in zip(starts, ends)
    ]
    return split.select(np.concatenate(keep))


class PreparedImages:
    """The transform of a prepared split: each row's image decoded from its embedded bytes, or from its file in
    the source folder `root`. A file is stored by its absolute path under `recorded_root`, where it was prepared
    (so plain `load_from_disk` finds it), and read at the same place under `root`, wherever the source is now."""

    def __init__(self, root: Path, recorded_root: Path):
        self.root, self.recorded_root = root, recorded_root

    def __call__(self, batch: dict) -> dict:
        if "image" in batch:
            batch["image"] = [self.decode(value) for value in batch["image"]]
        return batch

    def decode(self, value: dict) -> PILImage.Image:
        if value["bytes"] is not None:
            image = PILImage.open(io.BytesIO(value["bytes"]))
        else:
            path = Path(value["path"])  # relative to the source in preparations of format version 1
            image = PILImage.open(self.root / (path.relative_to(self.recorded_root) if path.is_absolute() else path))
        image.load()
        return image
