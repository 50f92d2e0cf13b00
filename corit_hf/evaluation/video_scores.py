"""Video-level scores: a video's fake probability aggregates its frames', scored with the frame-level metrics.

A video's fake probability is the mean of its frames' fake probabilities (the field's convention; the median
is an option). The video-level numbers are `corit_hf.evaluation.collapse.collapse_report` on those per-video
probabilities, so frame and video scores are the same metrics.
"""

from collections.abc import Sequence

import numpy as np

from ..video.inputs import AGGREGATES
from .collapse import DEFAULT_MARGIN, DEFAULT_THRESHOLD, collapse_report


VIDEO_PREFIX = "video_"


def aggregate_videos(
    probabilities: Sequence[float], labels: Sequence[int], videos: Sequence[str], aggregate: str = "mean"
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Per video (in order of first appearance): its name, the `aggregate` of its frames' fake probabilities,
    and its label; raises ValueError when one video's frames carry different labels.

    One sort groups the frames of each video, so the cost grows with the frames, not frames x videos (DFDC has
    more than 100,000 videos)."""
    probabilities, labels = np.asarray(probabilities, dtype=float), np.asarray(labels)
    if len(probabilities) == 0:
        return [], np.empty(0), np.empty(0, dtype=labels.dtype)
    names, first, inverse = np.unique(
        np.asarray(videos, dtype=object).astype(str), return_index=True, return_inverse=True
    )
    grouped = np.argsort(inverse, kind="stable")
    starts = np.concatenate([[0], np.flatnonzero(np.diff(inverse[grouped])) + 1])
    grouped_labels = labels[grouped]
    mixed = np.minimum.reduceat(grouped_labels, starts) != np.maximum.reduceat(grouped_labels, starts)
    if mixed.any():
        raise ValueError(f"the frames of video {names[np.argmax(mixed)]!r} have different labels.")
    frames = np.split(probabilities[grouped], starts[1:])
    scores = np.asarray([AGGREGATES[aggregate](video) for video in frames])
    order = np.argsort(first)
    return [str(name) for name in names[order]], scores[order], grouped_labels[starts][order]


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
