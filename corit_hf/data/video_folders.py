"""Face-deepfake video datasets: the FaceForensics++, Celeb-DF v2 and DFDC layouts, and videos as frame rows.

`load_forensic_folder` asks `find_video_layout` first; each layout names its videos with split, label and
family (split names are sanitised by the caller). The loader turns each video into rows of sampled, optionally
face-cropped frames, stored as lossless PNG, with a `video` column that groups them for video-level scores.
"""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from ..video.frames import is_video_path


FF_REAL, FF_FAKE = "original_sequences", "manipulated_sequences"
FF_REAL_SOURCES = {"youtube": None, "actors": "DeepFakeDetection"}
"""FaceForensics++ real folders and the method they pair with (None: every method but DeepFakeDetection)."""
FF_SKIPPED = {"masks"}
CELEB_REAL, CELEB_FAKE = ("Celeb-real", "YouTube-real"), "Celeb-synthesis"
CELEB_TEST_LIST = "List_of_testing_videos.txt"
DFDC_METADATA = "metadata.json"

VIDEO_LAYOUTS = """\
  <root>/original_sequences/youtube/<compression>/videos, <root>/manipulated_sequences/<method>/<compression>/videos
                                                        (FaceForensics++: one test_<method> split per method)
  <root>/Celeb-real, YouTube-real, Celeb-synthesis [+ List_of_testing_videos.txt]   (Celeb-DF v2)
  <root>/[<part>/]metadata.json + videos                (DFDC: labels from metadata.json)
  any layout above with video files in the class folders (e.g. real/ and fake/ folders of videos)"""


class Candidate(NamedTuple):
    """A file to load, with its split, label (real=0 / fake=1) and family."""

    path: Path
    split: str
    label: int
    family: str


def find_video_layout(root: Path, split: str | None = None) -> list[Candidate] | None:
    """The videos of a FaceForensics++, Celeb-DF or DFDC folder (`split` puts all into one split), else None."""
    if (root / FF_REAL).is_dir() or (root / FF_FAKE).is_dir():
        found = list(_faceforensics(root))
    elif any((root / name).is_dir() for name in (*CELEB_REAL, CELEB_FAKE)):
        found = list(_celeb_df(root))
    elif (root / DFDC_METADATA).is_file() or any(root.glob(f"*/{DFDC_METADATA}")):
        found = list(_dfdc(root))
    else:
        return None
    if split:
        found = [candidate._replace(split=split) for candidate in found]
    return found


def _videos_in(folder: Path) -> list[Path]:
    """The video files directly in a folder, sorted."""
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if path.is_file() and is_video_path(path))


def _faceforensics(root: Path) -> Iterator[Candidate]:
    """One test split per manipulation method and compression level, each with its real videos: youtube for
    the face-swap and reenactment methods, actors for DeepFakeDetection."""
    methods = sorted(path.name for path in (root / FF_FAKE).glob("*") if path.is_dir())
    compressions = sorted(
        {path.parent.name for path in root.glob("*/*/*/videos") if path.parent.name not in FF_SKIPPED}
    )
    for method in methods:
        for compression in compressions:
            fakes = _videos_in(root / FF_FAKE / method / compression / "videos")
            if not fakes:
                continue
            split = f"test_{method}" + (f"_{compression}" if len(compressions) > 1 else "")
            for source, pairs_with in FF_REAL_SOURCES.items():
                if (pairs_with is None) == (method != "DeepFakeDetection"):
                    reals = _videos_in(root / FF_REAL / source / compression / "videos")
                    yield from (Candidate(path, split, 0, "real") for path in reals)
            yield from (Candidate(path, split, 1, method) for path in fakes)


def _celeb_df(root: Path) -> Iterator[Candidate]:
    """Celeb-real and YouTube-real are real, Celeb-synthesis fake; the videos named in the test list form
    `test`, the others `train` (everything is `test` without the list)."""
    listed = root / CELEB_TEST_LIST
    test = None
    if listed.is_file():
        test = {line.split()[-1] for line in listed.read_text().splitlines() if line.strip()}
    for folder, label in [*((name, 0) for name in CELEB_REAL), (CELEB_FAKE, 1)]:
        for path in _videos_in(root / folder):
            split = "test" if test is None or f"{folder}/{path.name}" in test else "train"
            yield Candidate(path, split, label, "real" if label == 0 else "celeb-df")


def _dfdc(root: Path) -> Iterator[Candidate]:
    """Every video named in a metadata.json (the root's or a part folder's): label REAL/FAKE, split from its
    `split` field (train, validation, test), `test` when there is none."""
    for metadata in sorted([root / DFDC_METADATA, *root.glob(f"*/{DFDC_METADATA}")]):
        if not metadata.is_file():
            continue
        for name, entry in sorted(json.loads(metadata.read_text()).items()):
            label = 1 if str(entry.get("label", "")).upper() == "FAKE" else 0
            split = {"train": "train", "val": "validation", "validation": "validation"}.get(entry.get("split"), "test")
            yield Candidate(metadata.parent / name, split, label, "real" if label == 0 else "dfdc")
