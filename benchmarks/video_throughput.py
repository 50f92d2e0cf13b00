"""Decoded and face-cropped frames per second: 32 frames sampled per video from 1280x720 H.264 clips.

    python benchmarks/video_throughput.py [--videos 3] [--seconds 10] [--frames 32]

Each clip is a 25 fps pan over a 1280x720 scene (scikit-image's coffee) with the astronaut's face in it, made
here with PyAV. Prints, per stage, the median over clips of the time per video and the sampled frames per
second: sampling alone (timestamp pass + decoding up to the last chosen frame), and sampling + MTCNN + crop.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data as skimage_data

from corit_hf.video.faces import crop_largest_faces, shared_detector
from corit_hf.video.frames import sample_frames


SIZE = (1280, 720)
FPS = 25


def make_clip(path: Path, seconds: float, seed: int) -> Path:
    """A 25 fps 1280x720 H.264 clip: the scene drifts and the face moves across it."""
    import av

    rng = np.random.default_rng(seed)
    scene = Image.fromarray(skimage_data.coffee()).resize((SIZE[0] + 200, SIZE[1] + 100))
    face = Image.fromarray(skimage_data.astronaut()).resize((320, 320))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = *SIZE, "yuv420p"
        for index in range(int(seconds * FPS)):
            frame = scene.crop((index % 200, index % 100, index % 200 + SIZE[0], index % 100 + SIZE[1]))
            frame.paste(face, (300 + 2 * index % 600, 200 + int(rng.integers(0, 20))))
            for packet in stream.encode(av.VideoFrame.from_image(frame)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--frames", type=int, default=32)
    args = parser.parse_args()
    shared_detector()  # load the networks outside the timing
    decode, crop, faces = [], [], []
    with tempfile.TemporaryDirectory() as folder:
        clips = [make_clip(Path(folder) / f"clip_{i}.mp4", args.seconds, i) for i in range(args.videos)]
        for clip in clips:
            start = time.perf_counter()
            video = sample_frames(clip, args.frames)
            decoded = time.perf_counter()
            crops = crop_largest_faces(video.frames, "whole", size=224)
            decode.append(decoded - start)
            crop.append(time.perf_counter() - start)
            faces.append(sum(item.box is not None for item in crops))
    n = len(video.frames)
    print(f"{args.videos} clips of {args.seconds:g} s, {SIZE[0]}x{SIZE[1]} at {FPS} fps, {n} frames sampled per clip")
    for name, times in (("sample (decode)", decode), ("sample + face crop", crop)):
        median = statistics.median(times)
        print(f"  {name:<20} {median:6.2f} s/video  {n / median:7.1f} frames/s")
    print(f"  faces found: {faces} of {n} per clip")


if __name__ == "__main__":
    main()
