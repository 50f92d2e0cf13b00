"""Test videos made with PyAV: moving crops of the packaged face photos, optionally forged in the face region."""

import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from matplotlib import cbook
from PIL import Image
from skimage import data as skimage_data

from corit_hf.data import FAMILIES


ASTRONAUT_FACE = (165, 45, 290, 185)
"""Hand-marked face box of scikit-image's astronaut (x0, y0, x1, y1)."""
HOPPER_FACE = (170, 120, 360, 340)
"""Hand-marked face box of matplotlib's Grace Hopper."""


def astronaut() -> Image.Image:
    return Image.fromarray(skimage_data.astronaut())


def grace_hopper() -> Image.Image:
    with cbook.get_sample_data("grace_hopper.jpg") as stream:
        return Image.open(stream).convert("RGB")


def moving_crops(photo: Image.Image, n_frames: int, size: tuple[int, int], step: int = 3) -> list[Image.Image]:
    """Frames of a camera panning slowly over `photo`: crops sliding by `step` px, resized to `size`."""
    width, height = size
    crop_width, crop_height = photo.width - step * n_frames, round((photo.width - step * n_frames) * height / width)
    crop_height = min(crop_height, photo.height)
    return [
        photo.crop((step * i, 0, step * i + crop_width, crop_height)).resize(size, Image.BILINEAR)
        for i in range(n_frames)
    ]


def forge_region(frame: Image.Image, box: tuple[int, int, int, int], family: str, seed: int = 0) -> Image.Image:
    """`frame` with forgery `family` of corit_hf.data applied inside `box` only (a face-swap stand-in)."""
    region = frame.crop(box)
    forged = FAMILIES[family](region, np.random.default_rng(seed))
    frame = frame.copy()
    frame.paste(forged, box[:2])
    return frame


def write_video(
    path: Path,
    frames: list[Image.Image],
    fps: int = 10,
    times: list[float] | None = None,
    rotation: int = 0,
    codec: str = "libx264",
    keyframe_interval: int | None = None,
) -> Path:
    """Encode RGB frames to `path` (yuv420p); `times` (seconds) gives a variable frame rate; `rotation` sets the
    display matrix (counter-clockwise degrees), so the stored frames are the displayed ones turned back."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
        stored = [frame.rotate(-rotation, expand=True) for frame in frames] if rotation else frames
        stream.width, stream.height = stored[0].size
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "18"} if codec == "libx264" else {}
        if keyframe_interval:
            stream.options = {**stream.options, "g": str(keyframe_interval)}
        if rotation:
            stream.set_display_rotation(rotation)
        for index, image in enumerate(stored):
            frame = av.VideoFrame.from_image(image)
            seconds = times[index] if times is not None else index / fps
            frame.pts = round(seconds * 1000)
            frame.time_base = stream.time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_audio_only(path: Path, seconds: float = 0.5) -> Path:
    """An AAC-in-MP4 file with no video stream."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        stream.layout = "mono"
        samples = np.zeros((1, 1024), dtype=np.float32)
        for _ in range(int(seconds * 16000 / 1024)):
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate = 16000
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def remux(source: Path, target: Path, **options) -> Path:
    """Copy a video's packets into a new MP4 (muxer `options`, e.g. the index first with movflags=faststart)."""
    with av.open(str(source)) as reader, av.open(str(target), "w", options=options) as writer:
        stream = writer.add_stream_from_template(reader.streams.video[0])
        for packet in reader.demux(reader.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                writer.mux(packet)
    return target


def place_clips(clips, root, files: dict[str, int]):
    """Copy the real (0) or fake (1) clip to each relative path of `files`."""
    for relative, label in files.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(clips[label], target)
    return root


def real_and_forged_clips(folder: Path, n_frames: int) -> tuple[Path, Path]:
    """A 64x48 clip panning over the astronaut and the same clip with the gan family in the face region."""
    frames = moving_crops(astronaut(), n_frames, (64, 48))
    forged = [forge_region(frame, (16, 4, 48, 36), "gan", seed=i) for i, frame in enumerate(frames)]
    return write_video(folder / "real.mp4", frames), write_video(folder / "fake.mp4", forged)
