"""How videos and images become model inputs: frames sampled from a video, face-cropped on request."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .face_frames import sample_face_frames
from .faces import FaceDetector, crop_faces, shared_detector
from .frames import DEFAULT_FRAMES, VideoLoadError, sample_frames


AGGREGATES = {"mean": np.mean, "median": np.median}


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
            raise ValueError(f"frames must be positive, got {self.frames}.")
        if self.aggregate not in AGGREGATES:
            raise ValueError(f"the frame aggregate must be one of {sorted(AGGREGATES)}, got {self.aggregate!r}.")


@dataclass
class PreparedFrames:
    """Model-ready images of one video or image, with where each came from (time in seconds, position in the
    video's presentation order) and its face box (None: no face); for a video, also how many frames were sampled,
    how many of those without a face were replaced by a nearby frame with one, its frame count, codec and frame
    size (width, height, upright)."""

    images: list[Image.Image] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    boxes: list = field(default_factory=list)
    sampled: int = 0
    positions: list[int] = field(default_factory=list)
    replaced: int = 0
    total_frames: int = 0
    codec: str = ""
    frame_size: tuple[int, int] = (0, 0)

    @property
    def faces(self) -> int:
        return sum(box is not None for box in self.boxes)


def prepare_images(
    images: Sequence[Image.Image], times: Sequence[float], options: FrameOptions, detector: FaceDetector | None = None
) -> PreparedFrames:
    """Face-crop `images` if `options.faces` (dropping faceless ones with the "skip" fallback), else keep them."""
    boxes = (detector or shared_detector()).largest_faces(images) if options.faces else [None] * len(images)
    return _cropped(images, times, [0] * len(images), boxes, options)


def prepare_video(path: str | Path, options: FrameOptions, detector: FaceDetector | None = None) -> PreparedFrames:
    """Sample a video's frames and prepare them (with `options.faces`, a sampled frame without a face gives way
    to the nearest frame with one: `sample_face_frames`); raises VideoLoadError when nothing is left to score."""
    if options.faces:
        found = sample_face_frames(path, options.frames, detector or shared_detector())
        video, boxes = found.video, found.boxes
    else:
        video = sample_frames(path, options.frames)
        boxes = [None] * len(video.frames)
    prepared = _cropped(video.frames, video.times, video.positions, boxes, options)
    prepared.replaced = found.replaced if options.faces else 0
    prepared.total_frames, prepared.codec, prepared.frame_size = video.total_frames, video.codec, video.frames[0].size
    if not prepared.images:
        raise VideoLoadError(path, "no_face", f"in any of its {len(video.frames)} sampled frames")
    return prepared


def _cropped(
    images: Sequence[Image.Image], times: Sequence[float], positions: Sequence[int], boxes: list, options: FrameOptions
) -> PreparedFrames:
    """The images cut to their face boxes; those without a box kept whole or left out, as `options` says."""
    prepared = PreparedFrames(sampled=len(images))
    crops = crop_faces(images, boxes, options.face_fallback)
    for crop, time, position in zip(crops, times, positions):
        if crop.image is not None:
            prepared.images.append(crop.image)
            prepared.times.append(time)
            prepared.positions.append(position)
            prepared.boxes.append(crop.box)
    return prepared
