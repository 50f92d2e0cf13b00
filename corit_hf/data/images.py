"""Robust image opening: any readable file, stream or PIL image becomes an upright 8-bit RGB image.

Forensic folders collected from the wild hold odd modes (16-bit, CMYK, palette, alpha), rotated phone photos,
truncated downloads and files that are not images at all. Every loader, the CLI and the demo go through
`open_image` so they all accept and refuse the same files, with one exception type and a readable reason.
"""

import os
import re
import struct
import warnings
from typing import IO

import numpy as np
from PIL import Image, ImageOps

from ..bad_files import UnusableFile, over_limit


DEFAULT_MAX_PIXELS = 64_000_000
"""Refuse images above 64 megapixels: larger files are almost always decompression bombs or scans."""

_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, TypeError, struct.error, Image.DecompressionBombError)
"""What PIL raises on files it cannot use (`UnidentifiedImageError` and `FileNotFoundError` are OSErrors)."""
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


class ImageLoadError(UnusableFile):
    """An image could not be used: not found, unreadable, empty, not an image, truncated, above the pixel limit or
    undecodable; `status` and `reason` word it as `bad_files.PROBLEMS` does for every command."""


def open_image(
    source: str | os.PathLike | IO[bytes] | Image.Image, max_pixels: int = DEFAULT_MAX_PIXELS
) -> Image.Image:
    """Open `source` as an upright RGB image (EXIF orientation applied, alpha composited on white).

    The pixel count is checked from the header before any pixel is decoded, so oversized files cost nothing
    (`max_pixels` replaces PIL's decompression-bomb warning; its error, far above, is `too_large` as well).
    Raises `ImageLoadError` with the reason for anything that cannot be used.
    """
    name = _describe(source)
    try:
        if isinstance(source, Image.Image):
            return _decode(source, max_pixels, name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as image:
                return _decode(image, max_pixels, name)
    except _DECODE_ERRORS as error:
        raise load_error(source, error, max_pixels) from None


def load_error(
    source: str | os.PathLike | IO[bytes] | Image.Image, error: Exception, max_pixels: int = DEFAULT_MAX_PIXELS
) -> ImageLoadError:
    """The `ImageLoadError` for an exception PIL raised opening or decoding `source`: its kind and wording."""
    name = _describe(source)
    if isinstance(error, ImageLoadError):
        return error
    if isinstance(error, Image.UnidentifiedImageError):
        empty = isinstance(source, (str, os.PathLike)) and os.path.getsize(source) == 0
        return ImageLoadError(name, "empty" if empty else "not_media")
    if isinstance(error, FileNotFoundError):
        return ImageLoadError(name, "not_found")
    if isinstance(error, Image.DecompressionBombError):
        pixels = re.search(r"\((\d+) pixels\)", str(error))  # PIL's message is the only place it says the size
        limit = min(max_pixels, Image.MAX_IMAGE_PIXELS or max_pixels)
        return ImageLoadError(name, "too_large", over_limit(int(pixels[1]), limit) if pixels else str(error))
    if isinstance(error, OSError) and error.errno is not None:  # from the system (permissions, I/O), not PIL
        return ImageLoadError(name, "unreadable", error.strerror or "")
    if "truncated" in str(error).lower():
        return ImageLoadError(name, "truncated")
    return ImageLoadError(name, "decode_error", str(error))


def _decode(image: Image.Image, max_pixels: int, name: str) -> Image.Image:
    """Check the header size, then decode, rotate upright and convert to RGB."""
    _check_size(image.size, max_pixels, name)
    image.load()
    return _to_rgb(ImageOps.exif_transpose(image), name)


def _describe(source: object) -> str:
    """A short name of the source for error messages."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, Image.Image):
        return f"<{source.mode} image {source.width}x{source.height}>"
    return str(getattr(source, "name", "<stream>"))


def _check_size(size: tuple[int, int], max_pixels: int, name: str) -> None:
    """Refuse empty images and images above `max_pixels`, from the size alone."""
    width, height = size
    if width < 1 or height < 1:
        raise ImageLoadError(name, "decode_error", f"the image is {width}x{height} pixels")
    if width * height > max_pixels:
        raise ImageLoadError(name, "too_large", over_limit(width * height, max_pixels))


def _to_rgb(image: Image.Image, name: str) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB: alpha over white, high bit depths scaled, the rest via PIL."""
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in _ALPHA_MODES:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if image.mode in _SIXTEEN_BIT_MODES or image.mode in ("I", "F"):
        return Image.fromarray(_scale_to_uint8(np.asarray(image), image.mode)).convert("RGB")
    try:
        return image.convert("RGB")
    except ValueError as error:
        raise ImageLoadError(name, "decode_error", f"cannot convert mode {image.mode} to RGB: {error}") from None


def _scale_to_uint8(values: np.ndarray, mode: str) -> np.ndarray:
    """Map single-channel high-depth pixels to 0..255.

    16-bit modes use the full 0..65535 range. Mode `I` (where PNG and TIFF decoders may put 16-bit greyscale)
    is read as 8-bit when it fits in 0..255, as 16-bit when it fits in 0..65535, else scaled by its maximum.
    Floats in 0..1 are scaled by 255, other floats read as 0..255.
    """
    values = values.astype(np.float64)
    peak = float(values.max(initial=0.0))
    if mode == "F":
        top = 1.0 if peak <= 1.0 else 255.0
    elif mode in _SIXTEEN_BIT_MODES:
        top = 65535.0
    else:
        top = 255.0 if peak <= 255 else 65535.0 if peak <= 65535 else peak
    return np.clip(np.rint(values * (255.0 / top)), 0, 255).astype(np.uint8)
