"""Video frames for detection: N frames sampled uniformly in time from a video file, decoded with PyAV.

Face-deepfake benchmarks are videos; the field scores 32 frames per video (DeepfakeBench, GenD). Frames are
picked by presentation time, so variable-frame-rate videos are sampled evenly in time, not in frame count; a
video shorter than N frames gives all its frames; the display-matrix rotation of phone videos is applied.
Anything that cannot be used raises `VideoLoadError` (a `ValueError`) with a readable reason.
"""

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..defaults import VIDEO_FRAMES as DEFAULT_FRAMES


MAX_FRAME_PIXELS = 7680 * 4320
"""Refuse frames above 8K: larger sizes are corrupt headers or decompression bombs."""
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ts")


class VideoLoadError(ValueError):
    """A video could not be used: unreadable, not a video, no video stream, corrupt, or too large."""


class MissingVideoExtra(ValueError):
    """A package of the `video` extra (PyAV, the face detector) is not installed."""


def import_av():
    """The `av` module, or MissingVideoExtra saying how to install it."""
    try:
        import av
    except ImportError:
        raise MissingVideoExtra("reading videos needs PyAV: pip install 'corit-hf[video]'.") from None
    return av


@dataclass
class SampledVideo:
    """Frames sampled from one video: upright RGB images, their times in seconds, and the video's frame count."""

    path: str
    frames: list[Image.Image] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    total_frames: int = 0


def is_video_path(path: str | os.PathLike) -> bool:
    """Whether a file name has a video extension."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def sample_frames(
    path: str | os.PathLike, n_frames: int = DEFAULT_FRAMES, max_pixels: int = MAX_FRAME_PIXELS
) -> SampledVideo:
    """`n_frames` frames of a video, evenly spaced in presentation time (all frames when it has fewer).

    A first pass reads packet timestamps only (no decoding) to choose the frames; a second decodes up to the
    last chosen frame. Raises `VideoLoadError` for an empty or unreadable file, a file without a video stream
    (audio only), a file with fewer frames than its index lists (truncated), frames above `max_pixels`, or a
    stream that fails to decode.
    """
    av = import_av()
    name = os.fspath(path)
    if n_frames < 1:
        raise ValueError(f"the number of frames must be positive, got {n_frames}.")
    if not Path(name).is_file():
        raise VideoLoadError(f"{name}: file not found")
    if Path(name).stat().st_size == 0:
        raise VideoLoadError(f"{name}: empty file")
    try:
        timestamps = _packet_times(name, max_pixels)
    except av.FFmpegError as error:
        raise VideoLoadError(f"{name}: not a readable video ({_ffmpeg_reason(error)})") from None
    try:
        return _decode_chosen(name, _choose(timestamps, n_frames), len(timestamps))
    except av.FFmpegError as error:
        raise VideoLoadError(f"{name}: corrupt video stream ({_ffmpeg_reason(error)})") from None


def _ffmpeg_reason(error: Exception) -> str:
    """FFmpeg's own message without the repeated file name."""
    return getattr(error, "strerror", None) or str(error)


def _open_video_stream(container, name: str, max_pixels: int):
    """The first video stream of an open container, checked for a usable frame size."""
    if not container.streams.video:
        kinds = sorted({stream.type for stream in container.streams}) or ["none"]
        raise VideoLoadError(f"{name}: no video stream (streams: {', '.join(kinds)})")
    stream = container.streams.video[0]
    width, height = stream.codec_context.width, stream.codec_context.height
    if width < 1 or height < 1:
        raise VideoLoadError(f"{name}: the video stream has no frame size ({width}x{height})")
    if width * height > max_pixels:
        raise VideoLoadError(
            f"{name}: {width}x{height} frames are above the limit of {max_pixels / 1e6:.1f} megapixels"
        )
    return stream


def _packet_times(name: str, max_pixels: int) -> np.ndarray:
    """The presentation time of every frame of the video stream, in decode order (NaN where unknown)."""
    with import_av().open(name) as container:
        stream = _open_video_stream(container, name, max_pixels)
        times = [
            np.nan if packet.pts is None else float(packet.pts * stream.time_base)
            for packet in container.demux(stream)
            if packet.size > 0
        ]
        indexed = stream.frames  # the container's frame count (MP4's sample table), 0 when it has none
    if not times:
        raise VideoLoadError(f"{name}: the video stream holds no frames")
    if len(times) < indexed:
        raise VideoLoadError(f"{name}: truncated: only {len(times)} of its {indexed} frames are in the file")
    return np.asarray(times)


def _choose(times: np.ndarray, n_frames: int) -> tuple[list[float], bool]:
    """Which frames to keep, ascending, and whether they are presentation times: the frame nearest to each of
    `n_frames` evenly spaced times, or evenly spaced frame numbers when the container has no timestamps."""
    if np.isnan(times).any():
        return sorted({float(i) for i in np.round(np.linspace(0, len(times) - 1, min(n_frames, len(times))))}), False
    ordered = np.sort(times)
    targets = np.linspace(ordered[0], ordered[-1], min(n_frames, len(ordered)))
    nearest = np.abs(ordered[None, :] - targets[:, None]).argmin(axis=1)
    return sorted({float(ordered[i]) for i in nearest}), True


def _decode_chosen(name: str, chosen: tuple[list[float], bool], total_frames: int) -> SampledVideo:
    """Decode the video and keep, for each chosen time (or presentation index), the first frame at or after
    it, upright RGB; stops after the last one."""
    pending, by_time = list(chosen[0]), chosen[1]
    video = SampledVideo(path=name, total_frames=total_frames)
    with import_av().open(name) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = float(stream.average_rate or 1)
        for index, frame in enumerate(container.decode(stream)):
            time = float(frame.pts * stream.time_base) if frame.pts is not None else index / rate
            key = time if by_time else index
            if key < pending[0]:
                continue
            video.frames.append(_upright(frame))
            video.times.append(time)
            pending = [target for target in pending if target > key]
            if not pending:
                break
    if not video.frames:
        raise VideoLoadError(f"{name}: no frame of the video stream could be decoded")
    return video


def _upright(frame) -> Image.Image:
    """The frame as an RGB image, turned as its display matrix says (phone videos)."""
    image = frame.to_image()
    rotation = frame.rotation
    return image.rotate(rotation, expand=True) if rotation else image
