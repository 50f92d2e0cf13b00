"""Video-level detection: frames sampled from a video (face-cropped on request), scored, and aggregated.

A video's fake probability is the mean of its frames' fake probabilities (the field's convention; the median
is an option). The video-level numbers are `corit_hf.collapse.collapse_report` on those per-video
probabilities, so frame and video scores are the same metrics.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .collapse import DEFAULT_MARGIN, DEFAULT_THRESHOLD, collapse_report
from .video import DEFAULT_FRAMES, VideoLoadError, sample_frames


AGGREGATES = {"mean": np.mean, "median": np.median}
VIDEO_PREFIX = "video_"


@dataclass(frozen=True)
class FrameOptions:
    """How videos and images become model inputs: frames per video, face crops, and frame aggregation.

    `faces` crops each frame (or image) to its largest face; `face_fallback` says what happens to one with
    no face: "whole" scores the whole frame, "skip" leaves it out.
    """

    frames: int = DEFAULT_FRAMES
    faces: bool = False
    face_fallback: str = "whole"
    aggregate: str = "mean"

    def __post_init__(self):
        if self.frames < 1:
            raise ValueError(f"--frames must be positive, got {self.frames}.")
        if self.aggregate not in AGGREGATES:
            raise ValueError(f"the frame aggregate must be one of {sorted(AGGREGATES)}, got {self.aggregate!r}.")


@dataclass
class PreparedFrames:
    """Model-ready images of one video or image, with where each came from and its face box (None: no face)."""

    images: list[Image.Image] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    boxes: list = field(default_factory=list)
    sampled: int = 0

    @property
    def faces(self) -> int:
        return sum(box is not None for box in self.boxes)


def prepare_images(images: Sequence[Image.Image], times: Sequence[float], options: FrameOptions) -> PreparedFrames:
    """Face-crop `images` if `options.faces` (dropping faceless ones with the "skip" fallback), else keep them."""
    prepared = PreparedFrames(sampled=len(images))
    if not options.faces:
        prepared.images, prepared.times, prepared.boxes = list(images), list(times), [None] * len(images)
        return prepared
    from .faces import crop_largest_faces

    for crop, time in zip(crop_largest_faces(images, options.face_fallback), times):
        if crop.image is not None:
            prepared.images.append(crop.image)
            prepared.times.append(time)
            prepared.boxes.append(crop.box)
    return prepared


def prepare_video(path: str | Path, options: FrameOptions) -> PreparedFrames:
    """Sample a video's frames and prepare them; raises VideoLoadError when nothing is left to score."""
    video = sample_frames(path, options.frames)
    prepared = prepare_images(video.frames, video.times, options)
    if not prepared.images:
        raise VideoLoadError(f"{path}: no face found in any of its {len(video.frames)} sampled frames")
    return prepared


def aggregate_videos(
    probabilities: Sequence[float], labels: Sequence[int], videos: Sequence[str], aggregate: str = "mean"
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Per video (in order of first appearance): its name, the `aggregate` of its frames' fake probabilities,
    and its label; raises ValueError when one video's frames carry different labels."""
    probabilities, labels = np.asarray(probabilities, dtype=float), np.asarray(labels)
    names, inverse = np.unique(np.asarray(videos, dtype=object).astype(str), return_inverse=True)
    order = np.argsort([np.flatnonzero(inverse == i)[0] for i in range(len(names))])
    scores, truth = [], []
    for i in order:
        members = inverse == i
        if np.unique(labels[members]).size > 1:
            raise ValueError(f"the frames of video {names[i]!r} have different labels.")
        scores.append(AGGREGATES[aggregate](probabilities[members]))
        truth.append(labels[members][0])
    return [str(names[i]) for i in order], np.asarray(scores), np.asarray(truth)


def video_report(
    probabilities: Sequence[float],
    labels: Sequence[int],
    videos: Sequence[str],
    aggregate: str = "mean",
    threshold: float = DEFAULT_THRESHOLD,
    margin: float = DEFAULT_MARGIN,
) -> dict:
    """`collapse_report` on per-video fake probabilities, every key prefixed `video_` (video_auc, video_n, ...)."""
    _, scores, truth = aggregate_videos(probabilities, labels, videos, aggregate)
    return {VIDEO_PREFIX + key: value for key, value in collapse_report(scores, truth, threshold, margin).items()}
