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

from ..bad_files import UnusableFile, over_limit
from ..defaults import VIDEO_FRAMES as DEFAULT_FRAMES
from ..extras import import_extra


MAX_FRAME_PIXELS = 7680 * 4320
"""Refuse frames above 8K: larger sizes are corrupt headers or decompression bombs."""
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ts")


class VideoLoadError(UnusableFile):
    """A video could not be used: not found, unreadable, empty, not a video, no video stream, truncated, too large
    or undecodable; `status` and `reason` word it as `bad_files.PROBLEMS` does for every command."""


def import_av():
    """The `av` module, or MissingExtra saying how to install the `video` extra."""
    return import_extra("av", "video", "reading videos needs PyAV")


@dataclass
class VideoIndex:
    """Where the frames of a video are, read from its packets without decoding: presentation times in seconds,
    ascending (`by_time`), or frame numbers when the container has no timestamps; the stream's codec; and the
    times of its keyframes (where decoding can start after a seek)."""

    path: str
    times: np.ndarray
    by_time: bool
    codec: str = ""
    keyframes: np.ndarray = field(default_factory=lambda: np.empty(0))

    def __len__(self) -> int:
        return len(self.times)


@dataclass
class SampledVideo:
    """Frames sampled from one video: upright RGB images, their times in seconds, their positions in presentation
    order, and the video's frame count and codec."""

    path: str
    frames: list[Image.Image] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    total_frames: int = 0
    codec: str = ""


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
    if n_frames < 1:
        raise ValueError(f"the number of frames must be positive, got {n_frames}.")
    index = index_video(path, max_pixels)
    return decode_positions(index, even_positions(index, n_frames))


def index_video(path: str | os.PathLike, max_pixels: int = MAX_FRAME_PIXELS) -> VideoIndex:
    """The frame times of a video from one pass over its packets; raises `VideoLoadError` for a missing, empty,
    unreadable, audio-only, truncated or oversized video."""
    av = import_av()
    name = os.fspath(path)
    if not Path(name).is_file():
        raise VideoLoadError(name, "not_found")
    if Path(name).stat().st_size == 0:
        raise VideoLoadError(name, "empty")
    try:
        times, keyframes, codec = _packet_times(name, max_pixels)
    except av.FFmpegError as error:
        raise VideoLoadError(name, "decode_error", _ffmpeg_reason(error)) from None
    if np.isnan(times).any():
        return VideoIndex(name, np.arange(len(times), dtype=float), False, codec)
    return VideoIndex(name, np.sort(times), True, codec, np.sort(keyframes))


def even_positions(index: VideoIndex, n_frames: int) -> list[int]:
    """Positions (in presentation order) of the frames nearest to `n_frames` evenly spaced times, ascending and
    distinct (every frame when the video has fewer)."""
    times = index.times
    targets = np.linspace(times[0], times[-1], min(n_frames, len(times)))
    nearest = np.abs(times[None, :] - targets[:, None]).argmin(axis=1)
    return sorted({int(position) for position in nearest})


def decode_positions(index: VideoIndex, positions: list[int]) -> SampledVideo:
    """Decode the frames at `positions` (ascending, in presentation order) of an indexed video, upright RGB;
    decoding stops after the last one. Raises `VideoLoadError` when the stream fails to decode."""
    av = import_av()
    try:
        return _decode_chosen(index, positions)
    except av.FFmpegError as error:
        raise VideoLoadError(index.path, "decode_error", _ffmpeg_reason(error)) from None


def _ffmpeg_reason(error: Exception) -> str:
    """FFmpeg's own message without the repeated file name."""
    return getattr(error, "strerror", None) or str(error)


def _open_container(name: str):
    """The open container of a video file; one that FFmpeg does not recognise at all is `not_media`, as a text
    file renamed .png is, and one the system cannot read is `unreadable`."""
    av = import_av()
    try:
        return av.open(name)
    except av.error.InvalidDataError:
        raise VideoLoadError(name, "not_media") from None
    except av.error.PermissionError as error:
        raise VideoLoadError(name, "unreadable", _ffmpeg_reason(error)) from None


def _open_video_stream(container, name: str, max_pixels: int):
    """The first video stream of an open container, checked for a usable frame size."""
    if not container.streams.video:
        kinds = sorted({stream.type for stream in container.streams}) or ["none"]
        raise VideoLoadError(name, "no_video", f"streams: {', '.join(kinds)}")
    stream = container.streams.video[0]
    width, height = stream.codec_context.width, stream.codec_context.height
    if width < 1 or height < 1:
        raise VideoLoadError(name, "decode_error", f"the video stream has no frame size ({width}x{height})")
    if width * height > max_pixels:
        raise VideoLoadError(name, "too_large", f"frames of {over_limit(width * height, max_pixels)}")
    return stream


def _packet_times(name: str, max_pixels: int) -> tuple[np.ndarray, np.ndarray, str]:
    """The presentation time of every frame of the video stream in decode order (NaN where unknown), those of its
    keyframes, and the stream's codec name."""
    with _open_container(name) as container:
        stream = _open_video_stream(container, name, max_pixels)
        packets = [
            (np.nan if packet.pts is None else float(packet.pts * stream.time_base), packet.is_keyframe)
            for packet in container.demux(stream)
            if packet.size > 0
        ]
        indexed = stream.frames  # the container's frame count (MP4's sample table), 0 when it has none
        codec = stream.codec_context.name
    if not packets:
        raise VideoLoadError(name, "decode_error", "the video stream holds no frames")
    if len(packets) < indexed:
        raise VideoLoadError(name, "truncated", f"only {len(packets)} of its {indexed} frames are in the file")
    times = np.asarray([time for time, _ in packets])
    return times, np.asarray([time for time, key in packets if key and not np.isnan(time)]), codec


def _decode_chosen(index: VideoIndex, positions: list[int]) -> SampledVideo:
    """Decode the video and keep, for each chosen position, the first frame at or after its time (or its number
    when there are no timestamps), upright RGB; stops after the last one.

    A chosen frame with a keyframe between the frames decoded so far and itself is reached by seeking to that
    keyframe, so a long video is not decoded whole; a container whose seek lands past the keyframe is decoded
    from its start instead.
    """
    with import_av().open(index.path) as container:
        video = _decode_seeking(container, index, positions, seek=index.by_time)
    if video is None:
        with import_av().open(index.path) as container:
            video = _decode_seeking(container, index, positions, seek=False)
    if not video.frames:
        raise VideoLoadError(index.path, "decode_error", "no frame of the video stream could be decoded")
    return video


def _decode_seeking(container, index: VideoIndex, positions: list[int], seek: bool) -> SampledVideo | None:
    """`_decode_chosen` on an open container, seeking to keyframes with `seek`; None when a seek went too far."""
    video = SampledVideo(path=index.path, total_frames=len(index), codec=index.codec)
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    rate = float(stream.average_rate or 1)
    pending, decoded, frames, number = list(positions), -np.inf, None, 0
    while pending:
        target = index.times[pending[0]]
        keyframe = _keyframe_before(index, target) if seek else None
        if frames is None or (keyframe is not None and keyframe > decoded):
            if keyframe is not None:
                container.seek(round(keyframe / stream.time_base), stream=stream)
            frames, landed = container.decode(stream), keyframe
        frame = next(frames, None)
        if frame is None:
            break
        time = float(frame.pts * stream.time_base) if frame.pts is not None else number / rate
        if landed is not None and time > landed + 1e-6:
            return None
        landed, decoded, number = None, time, number + 1
        key = time if index.by_time else number - 1
        if key < target:
            continue
        video.frames.append(_upright(frame))
        video.times.append(time)
        video.positions.append(pending[0])
        pending = [position for position in pending if index.times[position] > key]
    return video


def _keyframe_before(index: VideoIndex, time: float) -> float | None:
    """The time of the last keyframe at or before `time`, or None."""
    at = np.searchsorted(index.keyframes, time, side="right")
    return float(index.keyframes[at - 1]) if at else None


def _upright(frame) -> Image.Image:
    """The frame as an RGB image, turned as its display matrix says (phone videos)."""
    image = frame.to_image()
    rotation = frame.rotation
    return image.rotate(rotation, expand=True) if rotation else image
