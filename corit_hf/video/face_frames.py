"""A video's face frames: N frames sampled evenly in time, each frame without a face replaced by the nearest frame
that has one.

DeepfakeBench drops sampled frames without a face (a video then trains on fewer frames); GenD spreads out from
the middle of the video until it has N faces. Here each sampled frame owns the frames nearer to it than to any
other sampled frame; when it has no face, up to `FACE_TRIES` of those, spread from its neighbour to the edge of
its share, are decoded in one more pass and the nearest with a face takes its place. The spread stays even and a
video's cost stays bounded (at most `FACE_TRIES` extra detections per frame without a face).
"""

from dataclasses import dataclass, field

import numpy as np

from .faces import FaceBox, FaceDetector
from .frames import MAX_FRAME_PIXELS, SampledVideo, decode_positions, even_positions, index_video


FACE_TRIES = 4
"""Frames tried in place of a sampled frame without a face."""


@dataclass
class FaceFrames:
    """The kept frames of a video (sampled or replacements, in time order), the largest face of each (None where
    none was found), and how many sampled frames were replaced."""

    video: SampledVideo
    boxes: list[FaceBox | None] = field(default_factory=list)
    replaced: int = 0


def sample_face_frames(
    path: str, n_frames: int, detector: FaceDetector, max_pixels: int = MAX_FRAME_PIXELS
) -> FaceFrames:
    """`n_frames` frames evenly spaced in time (all when the video has fewer) and their largest faces; a frame
    without a face is replaced by the nearest tried frame of its share that has one. Raises `VideoLoadError` as
    `sample_frames` does."""
    index = index_video(path, max_pixels)
    video = decode_positions(index, even_positions(index, n_frames))
    found = FaceFrames(video, detector.largest_faces(video.frames))
    missing = [k for k, box in enumerate(found.boxes) if box is None]
    tries = {k: replacement_tries(video.positions, k, len(index)) for k in missing}
    wanted = sorted({position for positions in tries.values() for position in positions})
    if not wanted:
        return found
    extra = decode_positions(index, wanted)
    faces = dict(zip(extra.positions, zip(extra.frames, extra.times, detector.largest_faces(extra.frames))))
    for k in missing:
        position = next((p for p in tries[k] if p in faces and faces[p][2] is not None), None)
        if position is not None:
            video.frames[k], video.times[k], found.boxes[k] = faces[position]
            video.positions[k] = position
            found.replaced += 1
    return found


def replacement_tries(positions: list[int], k: int, total: int) -> list[int]:
    """Up to `FACE_TRIES` positions to try in place of sampled frame `k`, nearest first: spread evenly over the
    frames nearer to it than to the sampled frames beside it."""
    here = positions[k]
    low = (positions[k - 1] + here) / 2 if k > 0 else -1
    high = (here + positions[k + 1]) / 2 if k + 1 < len(positions) else total
    share = [q for q in range(int(np.floor(low)) + 1, int(np.ceil(high))) if low < q < high and q != here]
    share.sort(key=lambda q: (abs(q - here), q))
    if not share:
        return []
    ranks = np.unique(np.round(np.linspace(0, len(share) - 1, min(FACE_TRIES, len(share)))).astype(int))
    return [share[rank] for rank in ranks]
