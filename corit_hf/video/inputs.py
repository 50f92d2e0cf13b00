"""How videos and images become model inputs: frames sampled from a video, face-cropped on request."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

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
