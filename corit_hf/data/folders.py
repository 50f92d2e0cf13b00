"""Load forensic image and video folders (ForenSynths, UniversalFakeDetect, GenImage, real/fake, FaceForensics++,
Celeb-DF, DFDC) with real=0 / fake=1.

`datasets`' own `imagefolder` numbers classes in the sort order of the folder names (so GenImage's `ai` would
become 0) and fails late on broken files. This loader maps the known class names explicitly, checks every
file once with `open_image`, and skips and reports what it cannot use instead of failing.
"""

import logging
import os
import re
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, Value

from ..bad_files import PROBLEMS
from ..video.frames import VideoLoadError, is_video_path
from ..video.inputs import FrameOptions, PreparedFrames, prepare_images, prepare_video
from .images import DEFAULT_MAX_PIXELS, ImageLoadError, open_image
from .storage import open_unchanged, png_bytes, stored_size
from .video_folders import VIDEO_LAYOUTS, Candidate, find_video_layout


logger = logging.getLogger(__name__)

CLASS_DIRS = {"0_real": 0, "real": 0, "nature": 0, "1_fake": 1, "fake": 1, "ai": 1}
"""Folder names (case-insensitive) that mark a class: the real=0 / fake=1 mapping, whatever the sort order."""

SPLIT_DIRS = {
    "train": "train",
    "training": "train",
    "val": "validation",
    "valid": "validation",
    "validation": "validation",
    "test": "test",
    "testing": "test",
}
"""Folder names (case-insensitive) that mark a split."""

LAYOUTS = (
    """\
  <root>/0_real, <root>/1_fake                         (flat ForenSynths / UniversalFakeDetect)
  <root>/<generator>/0_real|1_fake                     (UniversalFakeDetect test sets)
  <root>/<generator>/<category>/0_real|1_fake          (ForenSynths test set)
  <root>/train|val|test/[<generator>/][<category>/]0_real|1_fake
  <root>/<generator>/[<subset>/]train|val/ai|nature     (GenImage)
  <root>/[<split>/]real|fake[/<family>]                 (real/fake, as written by write_benchmark_folder)
"""
    + VIDEO_LAYOUTS
)

FEATURES = Features({"image": Image(), "label": ClassLabel(names=["real", "fake"]), "family": Value("string")})
VIDEO_FEATURES = Features({**FEATURES, "video": Value("string")})
"""Data with videos has one row per sampled frame; `video` names the frame's video (an image names itself)."""
_SPLIT_ORDER = {"train": 0, "validation": 1, "test": 2}


@dataclass
class LoadReport:
    """What `load_forensic_folder` loaded and skipped: `skipped` lists (path, reason) pairs."""

    root: str
    loaded: dict[str, int] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    videos: int = 0
    frames_without_face: int = 0

    def summary(self, max_listed: int = 10) -> str:
        """A readable summary: images per split, then the skipped files (first `max_listed`) with reasons."""
        counts = ", ".join(f"{split}: {count}" for split, count in self.loaded.items()) or "nothing"
        videos = f" ({self.videos} videos as frames)" if self.videos else ""
        lines = [f"Loaded {sum(self.loaded.values())} images{videos} from {self.root} ({counts})."]
        if self.frames_without_face:
            lines.append(f"{self.frames_without_face} images or frames had no face.")
        if self.skipped:
            lines.append(f"Skipped {len(self.skipped)} files:")
            lines += [f"  {path}: {reason}" for path, reason in self.skipped[:max_listed]]
            if len(self.skipped) > max_listed:
                lines.append(f"  ... and {len(self.skipped) - max_listed} more (see report.skipped)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


class ForensicFolder(NamedTuple):
    """The result of `load_forensic_folder`: unpack as `dataset, report = load_forensic_folder(path)`."""

    dataset: DatasetDict
    report: LoadReport


def load_forensic_folder(
    path: str | os.PathLike,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    split: str | None = None,
    num_workers: int = 4,
    frame_options: FrameOptions | None = None,
    frame_size: int | None = None,
) -> ForensicFolder:
    """Load a forensic image or video folder as a `DatasetDict` (columns `image`, `label` real=0/fake=1, `family`,
    and `video` when there are videos).

    Every file under a class folder (`0_real`/`1_fake`, `nature`/`ai`, `real`/`fake`) is opened once with
    `open_image`; unreadable, truncated, non-image and over-`max_pixels` files are skipped and listed in the
    returned report (never raised). Images that decode to RGB unchanged are referenced by path (their bytes
    are never re-encoded); others (alpha, 16-bit, CMYK, palette, EXIF-rotated, ...) are stored in memory as
    their `open_image` conversion, losslessly encoded as PNG.

    Split rules, from the folders above the class folder:
    - a top-level `train` / `val` / `test` folder names the split; `train` and `validation` merge their
      categories and generators, `test/<generator>/...` becomes `test_<generator>`;
    - a top-level `test_<name>` folder becomes `test_<name>`;
    - otherwise the top-level folder is a generator: `<generator>/.../train/...` goes to `train` (GenImage),
      anything else of it (GenImage's `val`, UniversalFakeDetect and ForenSynths test sets) to `test_<generator>`;
    - class folders directly under the root form a single `test` split.
    `split="name"` puts everything into one split of that name instead. `family` is the folder under a fake
    class folder (`fake/<family>/`), else the generator, else "fake"; "real" for real images.

    Videos: FaceForensics++ (one `test_<method>` split per manipulation method), Celeb-DF v2 (`test` from its
    list of testing videos, the rest `train`) and DFDC (labels and splits from metadata.json) are recognised
    by their folders; video files in class folders are read too. Each video becomes `frame_options.frames`
    rows of evenly sampled frames; `frame_options.faces` crops frames and images to their largest face.
    `frame_size` shrinks stored frames to that shorter side (the model input size keeps memory bounded).
    Raises ValueError, listing the accepted layouts, when no class folder is found.
    """
    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"{root} is not a directory.")
    frame_options = frame_options or FrameOptions()
    candidates = find_candidates(root, split)
    report = LoadReport(root=str(root))
    rows: dict[str, dict[str, list]] = defaultdict(lambda: {"image": [], "label": [], "family": [], "video": []})
    with_videos = any(is_video_path(candidate.path) for candidate in candidates)
    unique = list(dict.fromkeys(candidate.path for candidate in candidates))  # FF++ reuses its real videos

    def entries(path: Path) -> tuple[list[dict], str, int]:
        if is_video_path(path):
            return _video_entries(path, frame_options, frame_size)
        return _image_entries(path, max_pixels, frame_options, frame_size)

    with ThreadPoolExecutor(max_workers=max(1, num_workers)) as pool:
        checked = dict(zip(unique, pool.map(entries, unique)))
    report.frames_without_face = sum(checked[path][2] for path in unique)
    report.videos = sum(bool(checked[path][0]) and is_video_path(path) for path in unique)
    for candidate in candidates:
        images, reason, _ = checked[candidate.path]
        if not images:
            report.skipped.append((str(candidate.path), reason))
            continue
        columns = rows[candidate.split]
        columns["image"] += images
        columns["label"] += [candidate.label] * len(images)
        columns["family"] += [candidate.family] * len(images)
        columns["video"] += [str(candidate.path.relative_to(root))] * len(images)
    report.skipped = list(dict.fromkeys(report.skipped))
    features = VIDEO_FEATURES if with_videos else FEATURES
    dataset = DatasetDict(
        {
            name: Dataset.from_dict({key: rows[name][key] for key in features}, features=features, split=name)
            for name in sorted(rows, key=split_sort_key)
        }
    )
    report.loaded = {name: len(split_data) for name, split_data in dataset.items()}
    if report.skipped or report.frames_without_face:
        logger.warning(report.summary())
    return ForensicFolder(dataset, report)


def find_candidates(root: Path, split: str | None = None) -> list[Candidate]:
    """Every file `load_forensic_folder` would read under `root`, with its split, label and family, in a fixed
    order; raises ValueError, listing the accepted layouts, when there is no class folder."""
    layout = find_video_layout(root, split)
    candidates = (
        [candidate._replace(split=sanitise(candidate.split)) for candidate in layout]
        if layout is not None
        else _find_candidates(root, split)
    )
    if not candidates:
        raise ValueError(
            f"No real/fake class folders found under {root}. Accepted layouts (class folder names are "
            f"case-insensitive: {', '.join(CLASS_DIRS)}):\n{LAYOUTS}"
        )
    return candidates


def _find_candidates(root: Path, split: str | None) -> list[Candidate]:
    """Every non-hidden file below a class folder, with its split, label and family."""
    found = []
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = sorted(name for name in subdirectories if not name.startswith("."))
        parts = Path(directory).relative_to(root).parts
        class_index = next((i for i, part in enumerate(parts) if part.lower() in CLASS_DIRS), None)
        if class_index is None:
            continue
        prefix, below = parts[:class_index], parts[class_index + 1 :]
        label = CLASS_DIRS[parts[class_index].lower()]
        split_name = sanitise(split) if split else _split_for(prefix)
        family = "real" if label == 0 else (below[0] if below else _generator(prefix) or "fake")
        found += [
            Candidate(Path(directory) / name, split_name, label, family)
            for name in sorted(files)
            if not name.startswith(".")
        ]
    return found


def _split_for(prefix: tuple[str, ...]) -> str:
    """The split of images whose class folder sits below the folders `prefix` (see load_forensic_folder)."""
    top = prefix[0].lower() if prefix else ""
    if SPLIT_DIRS.get(top) in ("train", "validation"):
        return SPLIT_DIRS[top]
    if top not in SPLIT_DIRS and any(SPLIT_DIRS.get(part.lower()) == "train" for part in prefix[1:]):
        return "train"
    generator = _generator(prefix)
    return f"test_{sanitise(generator)}" if generator else "test"


def _generator(prefix: tuple[str, ...]) -> str | None:
    """The generator folder: the one below a top-level `test`, the name of `test_<name>`, or the top folder
    when it is not a split (below `train` and `val` the folders are categories, not generators)."""
    if not prefix:
        return None
    top = prefix[0]
    if top.lower() in SPLIT_DIRS:
        return prefix[1] if SPLIT_DIRS[top.lower()] == "test" and len(prefix) > 1 else None
    return top[len("test_") :] if top.lower().startswith("test_") else top


def sanitise(name: str) -> str:
    """A valid `datasets` split name: runs of non-word characters become `_`."""
    return re.sub(r"\W+", "_", name).strip("_") or "unnamed"


def split_sort_key(name: str) -> tuple[int, str]:
    """Order splits as train, validation, test, then the test_<name> splits alphabetically."""
    return _SPLIT_ORDER.get(name, 3), name


def _video_entries(path: Path, options: FrameOptions, frame_size: int | None) -> tuple[list[dict], str, int]:
    """The sampled (face-cropped) frames of a video as PNG `datasets.Image` values, else [] and why; and the
    number of frames without a face."""
    try:
        prepared = prepare_video(path, options)
    except VideoLoadError as error:
        return [], error.reason, 0
    without_face = prepared.sampled - prepared.faces if options.faces else 0
    return _stored(prepared, frame_size), "", without_face


def _image_entries(
    path: Path, max_pixels: int, options: FrameOptions, frame_size: int | None
) -> tuple[list[dict], str, int]:
    """An image file as a one-element list of `datasets.Image` values (face-cropped with `options.faces`), else []
    and why; and 1 when it had no face."""
    if not options.faces:
        entry, reason = _image_entry(path, max_pixels)
        return ([entry] if entry else []), reason, 0
    try:
        prepared = prepare_images([open_image(path, max_pixels)], [0.0], options)
    except ImageLoadError as error:
        return [], error.reason, 0
    return _stored(prepared, frame_size), PROBLEMS["no_face"], 1 - prepared.faces


def _stored(prepared: PreparedFrames, frame_size: int | None) -> list[dict]:
    """Prepared frames or images as PNG `datasets.Image` values: face crops resized to `frame_size` square,
    the rest shrunk to that shorter side."""
    return [
        {"path": None, "bytes": png_bytes(stored_size(image, box is not None, frame_size))}
        for image, box in zip(prepared.images, prepared.boxes)
    ]


def _image_entry(path: Path, max_pixels: int) -> tuple[dict | None, str]:
    """The `datasets.Image` value of a usable file (its path, or converted PNG bytes), else None and why."""
    try:
        image, unchanged, _ = open_unchanged(path, max_pixels)
    except ImageLoadError as error:
        return None, error.reason
    if unchanged:
        return {"path": str(path), "bytes": None}, ""
    return {"path": None, "bytes": png_bytes(image)}, ""  # datasets would prefer an existing path to bytes
