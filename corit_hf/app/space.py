"""The CoRIT demo app: fake probability, RRM region heatmaps and per-layer contributions for uploaded images.

It lives in the package so `corit serve` works from an installed wheel; `spaces/corit-demo/app.py` is a thin
wrapper around it, and `corit push-space` uploads this package next to that wrapper.
"""

import functools
import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd
import torch
from gradio.data_classes import ListFiles
from PIL import Image, ImageDraw, ImageOps
from pydantic import model_validator
from transformers import AutoConfig, AutoImageProcessor
from transformers.image_processing_utils import BaseImageProcessor

from ..data import FAMILIES, ImageLoadError, open_image
from ..evaluation.scoring import fake_probability
from ..models.loading import first_line, quiet_weight_loading, resolve_model
from ..models.modeling_corit import CoritForImageClassification
from ..video.frames import is_video_path


TITLE = "CoRIT forged-image detector"
MODEL_ENV = "CORIT_MODEL"
MAX_FILE_SIZE = "20mb"
MAX_IMAGES = 16
CONCURRENCY_LIMIT = 4
QUEUE_SIZE = 64
CACHE_AGE_S = 3600  # result images older than this are deleted (checked as often)
EXAMPLE_FAMILIES = ("gan", "diffusion")
TILE_SIZE = 160
KEPT_ALPHA, DROPPED_ALPHA = 0.6, 0.15
KEY_WIDTH = 112  # the colour key at the right of each heatmap strip: two bars, kept and dropped, then the labels
KEY_BAR_WIDTH, KEY_GAP, KEY_TOP, KEY_BOTTOM = 30, 4, 18, 140
RESULT_COLUMNS = ["image", "fake probability", "label"]
CONTRIBUTION_COLUMNS = ["image", "layer", "contribution", "pushes toward"]
EXPLANATION = (
    "Each uploaded image gets the probability that it is fake and, for every HRI layer, the CGP region map the "
    "model computed: red patches push towards *fake*, blue towards *real*; faint patches are the ones RRM dropped "
    "(the key at the right of each strip shows both). The contribution table splits the classifier's "
    "fake-minus-real logit margin into one share per HRI layer (the margin of that layer's feature f_l divided by "
    "the number of layers); the shares plus the classifier bias add up to the margin. A video is scored as the "
    "field does: 16 frames sampled evenly, each cropped to its largest face (the whole frame when none is found); "
    "it gets the mean fake probability, a strip of the frames with the face box each was scored on (red: fake, "
    "green: real) and a plot of every frame's fake probability."
)


@dataclass
class Detector:
    """A loaded CoRIT model with its image processor."""

    model: CoritForImageClassification
    processor: BaseImageProcessor
    source: str

    @property
    def real_label_id(self) -> int:
        return self.model.config.real_label_id

    @torch.no_grad()
    def analyse(self, images: list[Image.Image]) -> tuple[torch.Tensor, torch.Tensor, list[np.ndarray], torch.Tensor]:
        """Fake probabilities, predicted ids, per-image heatmap strips and per-layer margin contributions."""
        pixel_values = self.processor(images=images, return_tensors="pt")["pixel_values"]
        outputs = self.model(pixel_values, output_region_scores=True)
        fake_probabilities = fake_probability(outputs.logits, self.real_label_id)
        strips = [
            heatmap_strip(view, [(s[i], m[i]) for s, m in zip(outputs.region_scores, outputs.region_masks)])
            for i, view in enumerate(model_views(pixel_values, self.processor))
        ]
        contributions = layer_contributions(self.model, outputs.layer_features, outputs.logits)
        return fake_probabilities, outputs.logits.argmax(dim=-1), strips, contributions


def load_detector(source: str) -> Detector:
    """Load a CoRIT model folder or Hub repo id; ValueError/OSError with the reason when it is not one."""
    location = resolve_model(source)
    config = AutoConfig.from_pretrained(location)
    if config.model_type != "corit":
        raise ValueError(f"{source} holds a {config.model_type!r} model, not a CoRIT ('corit') model.")
    with quiet_weight_loading():
        model = CoritForImageClassification.from_pretrained(location).eval()
    return Detector(model=model, processor=AutoImageProcessor.from_pretrained(location), source=source)


def model_views(pixel_values: torch.Tensor, processor: BaseImageProcessor) -> list[np.ndarray]:
    """The crops the model saw, un-normalised with the mean and std of the `processor` that made them, back to uint8
    RGB arrays."""
    mean = torch.tensor(processor.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(processor.image_std).view(1, 3, 1, 1)
    pixels = (pixel_values.float() * std + mean).clamp(0, 1).mul(255).round().to(torch.uint8)
    return list(pixels.permute(0, 2, 3, 1).numpy())


@torch.no_grad()
def layer_contributions(
    model: CoritForImageClassification, layer_features: tuple[torch.Tensor, ...], logits: torch.Tensor
) -> torch.Tensor:
    """Per sample and HRI layer: (W[fake] - W[real]) . f_l / L, the layer's share of the logit margin.

    `layer_features` are the model's own f_l (`output_region_scores=True`); `fake` is the most likely fake class.
    """
    real = model.config.real_label_id
    features = torch.stack(layer_features, dim=1)
    masked = logits.float().clone()
    masked[:, real] = -torch.inf
    weight = model.classifier.weight
    margin_rows = weight[masked.argmax(dim=-1)] - weight[real]
    return torch.einsum("bld,bd->bl", features.float(), margin_rows.float()) / len(layer_features)


def diverging_colours(values: np.ndarray) -> np.ndarray:
    """Blue (-1) to white (0) to red (+1), as float RGB in [0, 1]."""
    values = np.clip(values, -1.0, 1.0)
    red = np.where(values < 0, 1.0 + values, 1.0)
    blue = np.where(values > 0, 1.0 - values, 1.0)
    green = 1.0 - np.abs(values)
    return np.stack([red, green, blue], axis=-1)


def heatmap_tile(view: np.ndarray, scores: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    """One layer's CGP scores over the model's view: signed colours, RRM-dropped patches faint."""
    grid = int(round(scores.numel() ** 0.5))
    scores = scores.float().view(grid, grid).numpy()
    colours = diverging_colours(scores / max(float(np.abs(scores).max()), 1e-12))
    alpha = np.where(mask.view(grid, grid).numpy() > 0, KEPT_ALPHA, DROPPED_ALPHA)[..., None]
    base = np.asarray(Image.fromarray(view).resize((TILE_SIZE, TILE_SIZE), Image.BICUBIC))
    repeat = -(-TILE_SIZE // grid)
    colours = np.kron(colours, np.ones((repeat, repeat, 1)))[:TILE_SIZE, :TILE_SIZE]
    alpha = np.kron(alpha, np.ones((repeat, repeat, 1)))[:TILE_SIZE, :TILE_SIZE]
    return overlay(base, colours, alpha)


def overlay(base: np.ndarray, colours: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """`colours` (float RGB in [0, 1]) laid over the uint8 image `base` with opacity `alpha`."""
    return (base * (1.0 - alpha) + colours * 255.0 * alpha).round().astype(np.uint8)


def colour_key() -> np.ndarray:
    """The heatmaps' colour key, one tile high: the CGP score scale (fake, 0, real) as kept patches show it and as
    RRM-dropped ones do, over a neutral grey."""
    height = KEY_BOTTOM - KEY_TOP
    scale = diverging_colours(np.linspace(1.0, -1.0, height))[:, None, :].repeat(KEY_BAR_WIDTH, axis=1)
    grey = np.full((height, KEY_BAR_WIDTH, 3), 128, dtype=np.uint8)
    image = Image.new("RGB", (KEY_WIDTH, TILE_SIZE), "white")
    draw = ImageDraw.Draw(image)
    draw.text((KEY_GAP, 3), "CGP score", fill="black")
    for index, (alpha, caption) in enumerate(((KEPT_ALPHA, "kept"), (DROPPED_ALPHA, "dropped"))):
        left = KEY_GAP + index * (KEY_BAR_WIDTH + KEY_GAP)
        image.paste(Image.fromarray(overlay(grey, scale, alpha)), (left, KEY_TOP))
        draw.text((left + KEY_BAR_WIDTH / 2, KEY_BOTTOM + 4), caption, fill="black", anchor="mt")
    labels = {"fake": (KEY_TOP, "lt"), "0": ((KEY_TOP + KEY_BOTTOM) / 2, "lm"), "real": (KEY_BOTTOM, "lb")}
    for text, (y, anchor) in labels.items():
        draw.text((2 * (KEY_BAR_WIDTH + KEY_GAP) + KEY_GAP, y), text, fill="black", anchor=anchor)
    return np.asarray(image)


def heatmap_strip(view: np.ndarray, layers: list[tuple[torch.Tensor, torch.Tensor]]) -> np.ndarray:
    """The model's view, one heatmap tile per HRI layer and the colour key, side by side."""
    base = np.asarray(Image.fromarray(view).resize((TILE_SIZE, TILE_SIZE), Image.BICUBIC))
    tiles = [heatmap_tile(view, scores, mask) for scores, mask in layers]
    return np.concatenate([base, *tiles, colour_key()], axis=1)


def label_strip(strip: np.ndarray, captions: list[str]) -> Image.Image:
    """Write one caption in the corner of each tile of a strip."""
    image = Image.fromarray(strip)
    draw = ImageDraw.Draw(image)
    for index, caption in enumerate(captions):
        draw.text((index * TILE_SIZE + 4, 4), caption, fill="white", stroke_width=2, stroke_fill="black")
    return image


def readable_error(error: ImageLoadError, path: str) -> str:
    """The loader's reason, naming the file by its uploaded name rather than the server's temp path."""
    return f"{Path(path).name}: {error.reason}"


def analyse_videos(detector: Detector, paths: list[str], output_dir: Path) -> tuple[list, list, list[str]]:
    """Results rows and gallery items (PNGs in `output_dir`) of the usable videos, messages for the rest."""
    from .video import VideoLoadError, analyse_video

    results, gallery, problems = [], [], []
    for path in paths:
        try:
            row, images = analyse_video(detector, path)
        except VideoLoadError as error:
            problems.append(readable_error(error, path))
            continue
        results.append(row)
        gallery += [(save_png(image, output_dir), caption) for image, caption in images]
    return results, gallery, problems


def open_uploads(paths: list[str]) -> tuple[list[tuple[str, Image.Image]], list[str]]:
    """Decode uploads through `open_image`: (name, image) pairs for the usable ones, messages for the rest."""
    images, problems = [], []
    for path in paths:
        try:
            images.append((Path(path).name, open_image(path)))
        except ImageLoadError as error:
            problems.append(readable_error(error, path))
    return images, problems


def empty_outputs(message: str) -> tuple[str, pd.DataFrame, list, pd.DataFrame]:
    """The four outputs when nothing could be analysed."""
    return message, pd.DataFrame(columns=RESULT_COLUMNS), [], pd.DataFrame(columns=CONTRIBUTION_COLUMNS)


def status_message(count: int, problems: list[str], skipped: int, videos: int = 0) -> str:
    """Markdown summary of a request: how many images and videos were analysed and why others were not."""
    counts = [f"{n} {noun}{'s' if n != 1 else ''}" for n, noun in ((count, "image"), (videos, "video")) if n]
    lines = [f"Analysed {' and '.join(counts)}."] if counts else []
    if skipped:
        lines.append(f"Only the first {MAX_IMAGES} files are analysed per request; {skipped} skipped.")
    if problems:
        lines.append("Could not use these files:")
        lines.extend(f"- {problem}" for problem in problems)
    return "\n".join(lines)


def save_png(image: Image.Image, directory: Path) -> str:
    """Write `image` under a fresh unique name and return its path.

    Gradio caches returned PIL images under a content-hash name and rewrites that file in place, so identical
    results of concurrent requests could be served half-written; a unique file written before the event
    returns is never rewritten.
    """
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{uuid.uuid4().hex}.png"
    image.save(path, compress_level=1)  # fast: the file is served once and deleted after CACHE_AGE_S
    return str(path)


def analyse_uploads(
    detector: Detector, paths: list[str] | None, output_dir: Path
) -> tuple[str, pd.DataFrame, list, pd.DataFrame]:
    """The app's one event: status message, results table, gallery (heatmaps of images, frame strips and
    probability plots of videos; PNGs in `output_dir`), layer contributions of images."""
    paths = list(paths or [])
    if not paths:
        return empty_outputs("Upload one or more images (PNG, JPEG, WebP, ...) or videos (MP4, WebM, ...).")
    videos = [path for path in paths[:MAX_IMAGES] if is_video_path(path)]
    images, problems = open_uploads([path for path in paths[:MAX_IMAGES] if not is_video_path(path)])
    results, gallery, rows = analyse_images(detector, images, output_dir) if images else ([], [], [])
    video_results, video_gallery, video_problems = analyse_videos(detector, videos, output_dir)
    skipped = max(0, len(paths) - MAX_IMAGES)
    message = status_message(len(images), problems + video_problems, skipped, len(video_results))
    if not results and not video_results:
        return empty_outputs(message)
    return (
        message,
        pd.DataFrame(results + video_results, columns=RESULT_COLUMNS),
        gallery + video_gallery,
        pd.DataFrame(rows, columns=CONTRIBUTION_COLUMNS),
    )


def analyse_images(
    detector: Detector, images: list[tuple[str, Image.Image]], output_dir: Path
) -> tuple[list, list, list]:
    """Results rows, heatmap gallery items (PNGs in `output_dir`) and layer contribution rows of images."""
    fake_probability, predicted, strips, contributions = detector.analyse([image for _, image in images])
    config = detector.model.config
    captions = ["input"] + [f"layer {layer}" for layer in config.hri_layers]
    results, gallery, rows = [], [], []
    for i, (name, _) in enumerate(images):
        label = config.id2label[int(predicted[i])]
        results.append([name, round(float(fake_probability[i]), 4), label])
        strip = save_png(label_strip(strips[i], captions), output_dir)
        gallery.append((strip, f"{name}: {label}, P(fake) = {fake_probability[i]:.3f}"))
        for layer, value in zip(config.hri_layers, contributions[i].tolist()):
            rows.append([name, layer, round(value, 4), "fake" if value > 0 else "real"])
    return results, gallery, rows


def model_problem(source: str | None) -> tuple[Detector | None, str | None]:
    """Load the detector, or explain in Markdown why there is none (unset or unusable source)."""
    if not source:
        return None, (
            f"**No model loaded.** Set the `{MODEL_ENV}` environment variable to a CoRIT model folder or Hub "
            f"repo id (for example `{MODEL_ENV}=./my-model python app.py`, or `corit serve ./my-model`), then "
            "restart the app."
        )
    try:
        return load_detector(source), None
    except Exception as error:  # any load failure (missing, corrupt, wrong model) becomes the page's message
        return None, f"**Could not load the model `{source}`** (from `{MODEL_ENV}`): {first_line(error)}"


class OneOrMoreFiles(ListFiles):
    """The upload list, also accepting one file: API clients often send `handle_file(path)` without a list."""

    @model_validator(mode="before")
    @classmethod
    def wrap_single_file(cls, value: object) -> object:
        return [value] if isinstance(value, dict) else value


@functools.cache
def example_files() -> tuple[Path, ...]:
    """Offline example PNGs, written once per process: matplotlib's sample photo and two forgeries of it."""
    import matplotlib.cbook

    directory = Path(tempfile.mkdtemp(prefix="corit-examples-"))
    photo = ImageOps.fit(open_image(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)), (256, 256))
    forgeries = {name: FAMILIES[name](photo, np.random.default_rng(0)) for name in EXAMPLE_FAMILIES}
    paths = []
    for name, image in {"photo": photo, **forgeries}.items():
        paths.append(directory / f"{name}.png")
        image.save(paths[-1])
    return tuple(paths)


def build_demo(source: str | None = None) -> gr.Blocks:
    """The Blocks app for the model at `source` (default: env CORIT_MODEL); it starts even when that fails."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    source = source if source is not None else os.environ.get(MODEL_ENV)
    detector, problem = model_problem(source)

    def analyse(paths: list[str] | None) -> tuple[str, pd.DataFrame, list, pd.DataFrame]:
        if detector is None:
            return empty_outputs(problem)
        return analyse_uploads(detector, paths, Path(gallery.GRADIO_CACHE) / "corit")

    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=(CACHE_AGE_S, CACHE_AGE_S)) as demo:
        gr.Markdown(f"# {TITLE}\n\n{EXPLANATION}")
        gr.Markdown(problem or f"Model: `{detector.source}`")
        with gr.Row():
            with gr.Column(scale=1):
                files = gr.Files(label="Images or videos", file_count="multiple", type="filepath")
                files.data_model = OneOrMoreFiles  # gr.Files validates a list before `preprocess`, which takes one
                button = gr.Button("Analyse", variant="primary")
                gr.Examples(examples=[[[str(path)]] for path in example_files()], inputs=files, cache_examples=False)
            with gr.Column(scale=2):
                status = gr.Markdown(label="Status")
                results = gr.Dataframe(label="Results", headers=RESULT_COLUMNS, interactive=False)
                gallery = gr.Gallery(label="RRM region heatmaps per HRI layer", format="png", columns=1)
                contributions = gr.Dataframe(
                    label="Layer contributions to the fake-real margin",
                    headers=CONTRIBUTION_COLUMNS,
                    interactive=False,
                )
        button.click(analyse, inputs=files, outputs=[status, results, gallery, contributions], api_name="analyse")
    return demo.queue(default_concurrency_limit=CONCURRENCY_LIMIT, max_size=QUEUE_SIZE)


def launch(demo: gr.Blocks, **launch_kwargs) -> tuple:
    """Launch with the app's fixed limits (upload size); `launch_kwargs` go to `Blocks.launch`.

    Also sets torch's intra-op threads to cpu_count / CONCURRENCY_LIMIT for this process: the queue runs that
    many requests at once, and oversubscribed threads made small models ~8x slower on a busy 2-core machine.
    """
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // CONCURRENCY_LIMIT))
    return demo.launch(max_file_size=MAX_FILE_SIZE, **launch_kwargs)


__all__ = ["MODEL_ENV", "TITLE", "Detector", "build_demo", "launch", "load_detector"]
