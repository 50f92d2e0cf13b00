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
