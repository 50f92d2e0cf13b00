"""Videos in the demo app: frames sampled and face-cropped as the field does, scored, and shown.

Each uploaded video gets a results row (the mean of its frames' fake probabilities), a strip of the sampled
frames with the face box the model was shown, and a plot of the fake probability of each frame over time.
"""

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image, ImageDraw

from ..evaluation.collapse import DEFAULT_THRESHOLD, is_labelled_fake
from ..evaluation.scoring import image_probabilities
from ..video.faces import crop_largest_faces
from ..video.frames import VideoLoadError, sample_frames


SPACE_FRAMES = 16
"""Frames per uploaded video: half the benchmark's 32, to keep a request interactive on a CPU."""
STRIP_COLUMNS = 8
STRIP_HEIGHT = 120
FAKE_COLOUR, REAL_COLOUR = (220, 40, 40), (40, 160, 60)


def analyse_video(
    detector, path: str, threshold: float = DEFAULT_THRESHOLD
) -> tuple[list, list[tuple[Image.Image, str]]]:
    """The results row and the captioned gallery images (frame strip, probability plot) of one video;
    raises VideoLoadError for an unusable one."""
    video = sample_frames(path, SPACE_FRAMES)
    crops = crop_largest_faces(video.frames, "whole")
    probabilities = image_probabilities(detector.model, detector.processor, [crop.image for crop in crops])
    score = float(np.mean(probabilities))
    config = detector.model.config
    label = "fake" if is_labelled_fake(score, threshold) else config.id2label[detector.real_label_id]
    name = Path(path).name
    faces = sum(crop.box is not None for crop in crops)
    summary = f"{name}: {label}, P(fake) = {score:.3f} (mean of {len(crops)} frames, {faces} with a face)"
    strip = frame_strip(video.frames, [crop.box for crop in crops], probabilities, video.times, threshold)
    plot = probability_plot(video.times, probabilities, score, threshold, name)
    return [name, round(score, 4), label], [(strip, summary), (plot, f"{name}: P(fake) per frame")]


def frame_strip(
    frames: list[Image.Image], boxes: list, probabilities: np.ndarray, times: list[float], threshold: float
) -> Image.Image:
    """The sampled frames as a grid of thumbnails, each with its face box (red: fake, green: real) and its
    time and fake probability."""
    width = round(STRIP_HEIGHT * frames[0].width / frames[0].height)
    rows = -(-len(frames) // STRIP_COLUMNS)
    strip = Image.new("RGB", (width * min(len(frames), STRIP_COLUMNS), STRIP_HEIGHT * rows), "white")
    for index, (frame, box, probability, time) in enumerate(zip(frames, boxes, probabilities, times)):
        scale = STRIP_HEIGHT / frame.height
        tile = frame.resize((width, STRIP_HEIGHT), Image.BILINEAR)
        draw = ImageDraw.Draw(tile)
        colour = FAKE_COLOUR if is_labelled_fake(probability, threshold) else REAL_COLOUR
        if box is not None:
            draw.rectangle([value * scale for value in box.crop_box(frame.size)], outline=colour, width=2)
        caption = f"{time:.1f}s {probability:.2f}"
        draw.text((3, 3), caption, fill="white", stroke_width=2, stroke_fill="black")
        strip.paste(tile, ((index % STRIP_COLUMNS) * width, (index // STRIP_COLUMNS) * STRIP_HEIGHT))
    return strip


def probability_plot(
    times: list[float], probabilities: np.ndarray, score: float, threshold: float, title: str
) -> Image.Image:
    """Fake probability of each sampled frame against its time, with the video's mean and the threshold."""
    figure = Figure(figsize=(6.4, 2.4), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    axes.plot(times, probabilities, marker="o", color="tab:red", label="frame")
    axes.axhline(score, color="black", linewidth=1, label=f"video mean {score:.3f}")
    axes.axhline(threshold, color="grey", linestyle=":", linewidth=1, label="threshold")
    axes.set(ylim=(-0.02, 1.02), xlabel="time (s)", ylabel="P(fake)", title=title)
    axes.legend(loc="upper right", fontsize="small")
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return Image.fromarray(np.asarray(canvas.buffer_rgba())).convert("RGB")


__all__ = ["SPACE_FRAMES", "VideoLoadError", "analyse_video", "frame_strip", "probability_plot"]
