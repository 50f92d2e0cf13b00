"""Shared pieces of the Hub, Space and browser tests: a tiny saved model, test images, local ports."""

import io
import socket
from pathlib import Path

from PIL import Image

from corit_hf import CoritConfig, CoritForImageClassification


def save_tiny_model(directory: Path, **config_kwargs) -> Path:
    """A random-init tiny CoRIT model saved with save_pretrained (weights, config, remote code, processor)."""
    CoritForImageClassification(CoritConfig.from_preset("tiny", **config_kwargs)).save_pretrained(directory)
    return directory


def photo_png(path: Path, size: tuple[int, int] = (96, 80)) -> Path:
    """A small RGB PNG with some structure (a gradient with a bright square)."""
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    image.paste((250, 40, 40), (size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2))
    image.save(path)
    return path


def bad_inputs(directory: Path) -> dict[str, tuple[Path, str]]:
    """Files the app must refuse with a readable reason: name -> (path, expected words of the message)."""
    renamed = directory / "notes.png"
    renamed.write_text("These are meeting notes, not a picture.\n")
    buffer = io.BytesIO()
    Image.linear_gradient("L").convert("RGB").save(buffer, format="JPEG")
    truncated = directory / "truncated.jpg"
    truncated.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    huge = directory / "huge.png"
    Image.new("1", (20000, 20000)).save(huge)  # 400 megapixels, ~50 kB compressed
    return {
        "text renamed .png": (renamed, "not a recognised image or video file"),
        "truncated JPEG": (truncated, "truncated"),
        "20000x20000": (huge, "too large (400 megapixels, above the limit of 64 megapixels)"),
    }


def odd_but_valid_inputs(directory: Path) -> dict[str, Path]:
    """Images the app must classify although they are unusual: 1x1 pixel and RGBA with transparency."""
    one_pixel = directory / "one_pixel.png"
    Image.new("RGB", (1, 1), (10, 200, 30)).save(one_pixel)
    rgba = directory / "transparent.png"
    Image.new("RGBA", (70, 50), (200, 30, 30, 90)).save(rgba)
    return {"1x1": one_pixel, "RGBA": rgba}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
