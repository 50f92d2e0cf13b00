"""How images and frames are stored in datasets: unchanged files by reference, everything else as lossless PNG.

JPEG quality is itself a cue detectors learn (a study of GenImage found its detectors read JPEG quality and image
size rather than fakeness), so nothing is re-encoded lossily: a file that decodes to upright RGB as it is keeps
its own bytes; conversions (alpha, 16-bit, CMYK, palette, EXIF rotation), frames and face crops become PNG.
"""

import io
import os

from PIL import Image

from .images import DEFAULT_MAX_PIXELS, open_image


ORIENTATION_TAG = 0x0112
PNG_COMPRESS_LEVEL = 1
"""zlib level of stored PNGs: level 1 encoded 224 px face crops 4x faster than PIL's default 6 for 10% more bytes."""


def png_bytes(image: Image.Image) -> bytes:
    """An image as lossless PNG bytes (frames are stored as decoded, never re-compressed lossily)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def shrink(image: Image.Image, shorter_side: int | None) -> Image.Image:
    """The image resized so its shorter side is at most `shorter_side` (None: unchanged)."""
    if not shorter_side or min(image.size) <= shorter_side:
        return image
    scale = shorter_side / min(image.size)
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BICUBIC)


def stored_size(image: Image.Image, face: bool, size: int | None) -> Image.Image:
    """A frame or image as stored at `size`: a face crop resized to `size` square, anything else shrunk to that
    shorter side (None: as it is)."""
    if face and size:
        return image.resize((size, size), Image.BICUBIC)
    return shrink(image, size)


def open_unchanged(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[Image.Image, bool, str]:
    """The upright RGB image of a file (`open_image`), whether the file already is that image (RGB, not rotated),
    and its format; raises `ImageLoadError` as `open_image` does."""
    image = open_image(path, max_pixels)
    with Image.open(path) as raw:
        unchanged = raw.mode == "RGB" and raw.getexif().get(ORIENTATION_TAG, 1) == 1
        return image, unchanged, raw.format or ""
