"""Forgery families: each turns a real RGB crop into a fake of the same size with one generator fingerprint.

A family is a function `(pixels, rng) -> pixels` on float32 HxWx3 arrays in 0..255, registered by name with
`@register_family("name")`; its docstring is its documentation. `FAMILIES[name](crop, rng)` accepts a uint8
array or a PIL image and returns the same type. Every family is deterministic given the rng, and a family's
fixed "generator weights" (the GAN kernel, the VAE decoder) come from a constant seed, so one family is one
generator across every image and every benchmark seed.
"""

import contextlib
import functools
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from .sources import photo_crop


GAN_CHECKERBOARD = 0.015
"""Size of the GAN kernel's per-phase gain differences (relative to 1)."""

ForgeFunction = Callable[[np.ndarray, np.random.Generator], np.ndarray]


@dataclass(frozen=True)
class ForgeryFamily:
    """A named forgery method: `forge` maps float HxWx3 pixels in 0..255 and an rng to forged pixels."""

    name: str
    forge: ForgeFunction
    description: str

    def __call__(self, crop: np.ndarray | Image.Image, rng: np.random.Generator) -> np.ndarray | Image.Image:
        """Forge `crop` (uint8 HxWx3 array or PIL image); returns a uint8 result of the same size and type."""
        pixels = np.asarray(crop.convert("RGB") if isinstance(crop, Image.Image) else crop, dtype=np.float32)
        with single_threaded_torch():
            forged = self.forge(pixels, rng)
        if forged.shape != pixels.shape:
            raise RuntimeError(f"Family {self.name!r} changed the image shape {pixels.shape} -> {forged.shape}.")
        result = np.clip(np.rint(forged), 0, 255).astype(np.uint8)
        return Image.fromarray(result) if isinstance(crop, Image.Image) else result


FAMILIES: dict[str, ForgeryFamily] = {}


@contextlib.contextmanager
def single_threaded_torch() -> Iterator[None]:
    """Run torch ops on one intra-op thread: on per-image tensors a thread pool only adds overhead (on a busy
    machine, 100x), and a data-building process should leave the other cores to the trainer."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def register_family(name: str) -> Callable[[ForgeFunction], ForgeFunction]:
    """Decorator adding a forge function to `FAMILIES` under `name`, documented by its docstring."""

    def register(forge: ForgeFunction) -> ForgeFunction:
        if name in FAMILIES:
            raise ValueError(f"Forgery family {name!r} is already registered.")
        description = " ".join((forge.__doc__ or "").split())
        FAMILIES[name] = ForgeryFamily(name=name, forge=forge, description=description)
        return forge

    return register


def get_family(name: str) -> ForgeryFamily:
    """The registered family `name`; a ValueError listing the known families otherwise."""
    if name not in FAMILIES:
        raise ValueError(f"Unknown forgery family {name!r}; registered families: {sorted(FAMILIES)}.")
    return FAMILIES[name]


def _generator_seed(name: str) -> int:
    """The constant seed of a family's fixed generator weights."""
    return zlib.crc32(f"corit-family-{name}".encode())


def _to_tensor(pixels: np.ndarray) -> torch.Tensor:
    """HxWx3 array -> 1x3xHxW float tensor."""
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))[None].float()


def _to_array(tensor: torch.Tensor) -> np.ndarray:
    """1x3xHxW tensor -> HxWx3 float32 array."""
    return tensor[0].permute(1, 2, 0).numpy().astype(np.float32)


def _gaussian_blur(pixels: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of an HxWxC array with reflected borders (numpy, no thread pool)."""
    radius = max(1, int(np.ceil(3 * sigma)))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps = (taps / taps.sum()).astype(np.float32)
    height, width = pixels.shape[:2]
    padded = np.pad(pixels, ((radius, radius), (radius, radius), (0, 0)), mode="reflect")
    rows = sum(tap * padded[i : i + height] for i, tap in enumerate(taps))
    return sum(tap * rows[:, i : i + width] for i, tap in enumerate(taps))


def _resize(pixels: np.ndarray, size: tuple[int, int], method: Image.Resampling) -> np.ndarray:
    """Resize float pixels (width, height) with PIL, one channel at a time in float mode."""
    channels = [Image.fromarray(pixels[..., c]).resize(size, method) for c in range(3)]
    return np.stack([np.asarray(channel) for channel in channels], axis=-1)


def calibrate_fake(
    forged: np.ndarray,
    source: np.ndarray,
    encode: Callable[[np.ndarray], bytes],
    steps: int = 8,
    tolerance: float = 0.01,
) -> np.ndarray:
    """Match a fake to the crop it was forged from: per-channel mean and std, and encoded file size.

    Blurring families shrink and texture-adding families grow the encoded file, and most shift contrast, so
    size and contrast alone would reveal them. The fake's high-pass band (image minus a sigma-1 blur) is
    scaled by a gain in [1/8, 8], found by bisection (at most `steps` encodes), until `encode(fake)` is within
    `tolerance` of the length of `encode(source)`; channel moments are matched at every step. Only the shape
    of each fingerprint is left to learn.
    """
    bands = _DetailBands(forged.astype(np.float32), source.astype(np.float32))
    target = len(encode(source))
    lower, upper = np.log(1 / 8), np.log(8.0)
    best, best_gap = None, np.inf
    for _ in range(steps):
        gain = (lower + upper) / 2
        candidate = bands.render(np.exp(gain))
        gap = len(encode(candidate)) - target
        if abs(gap) < best_gap:
            best, best_gap = candidate, abs(gap)
        if best_gap <= tolerance * target:
            break
        lower, upper = (gain, upper) if gap < 0 else (lower, gain)
    return best


class _DetailBands:
    """A fake split into centred low and high bands, rendered for any high-band gain with the per-channel
    mean and std of the source (moments computed once, analytically per gain)."""

    def __init__(self, forged: np.ndarray, source: np.ndarray):
        low = _gaussian_blur(forged, 1.0)
        self.low = low - low.mean(axis=(0, 1))
        self.high = (forged - low) - (forged - low).mean(axis=(0, 1))
        self.low_var = np.mean(self.low**2, axis=(0, 1))
        self.high_var = np.mean(self.high**2, axis=(0, 1))
        self.covariance = np.mean(self.low * self.high, axis=(0, 1))
        self.source_mean, self.source_std = source.mean(axis=(0, 1)), source.std(axis=(0, 1))

    def render(self, gain: float) -> np.ndarray:
        """`low + gain * high`, with the source's channel moments, as uint8."""
        variance = self.low_var + gain**2 * self.high_var + 2 * gain * self.covariance
        scale = self.source_std / np.maximum(np.sqrt(np.maximum(variance, 0.0)), 1e-3)
        pixels = (self.low + gain * self.high) * scale + self.source_mean
        return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=1)
def _gan_kernel() -> torch.Tensor:
    """The GAN family's fixed 3x3 transposed-convolution kernel (3->3 channels, stride 2).

    A bilinear kernel whose four output phases (even/odd rows x columns) get slightly different 3x3 colour
    gains that average to the identity: flat colours are kept on average, but every 2x2 output block carries
    the same periodic gain pattern, the checkerboard of uneven transposed-convolution overlap.
    """
    gen = torch.Generator().manual_seed(_generator_seed("gan"))
    perturbation = torch.randn(2, 2, 3, 3, generator=gen)
    gains = torch.eye(3) + GAN_CHECKERBOARD * (perturbation - perturbation.mean(dim=(0, 1)))
    bilinear = torch.tensor([0.5, 1.0, 0.5])
    odd = torch.tensor([1, 0, 1])
    kernel = torch.empty(3, 3, 3, 3)
    for y in range(3):
        for x in range(3):
            kernel[:, :, y, x] = bilinear[y] * bilinear[x] * gains[odd[y], odd[x]]
    return kernel.transpose(0, 1).contiguous()


@register_family("gan")
def gan_upsampling(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """GAN-style decoding: 2x area downsampling, then a stride-2 transposed convolution with a fixed 3x3
    kernel whose taps overlap unevenly, which leaves the checkerboard pattern of GAN upsamplers."""
    height, width = pixels.shape[:2]
    low = _resize(pixels, ((width + 1) // 2, (height + 1) // 2), Image.Resampling.BOX)
    low = low + rng.normal(0.0, 1.0, low.shape).astype(np.float32)
    padded = torch.nn.functional.pad(_to_tensor(low), (1, 1, 1, 1), mode="replicate")
    up = torch.nn.functional.conv_transpose2d(padded, _gan_kernel(), stride=2)
    return _to_array(up)[3 : 3 + height, 3 : 3 + width]


@register_family("resample")
def resampling(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Resampling: downscale by a random factor in [1.3, 2.5] (box filter), upscale back with bilinear or
    bicubic interpolation and sharpen (unsharp mask, amount 1..2), as upscaled generator outputs are."""
    height, width = pixels.shape[:2]
    factor = rng.uniform(1.3, 2.5)
    low = _resize(pixels, (max(1, round(width / factor)), max(1, round(height / factor))), Image.Resampling.BOX)
    method = (Image.Resampling.BILINEAR, Image.Resampling.BICUBIC)[rng.integers(2)]
    up = _resize(low, (width, height), method)
    return up + rng.uniform(1.0, 2.0) * (up - _gaussian_blur(up, 1.0))


@register_family("diffusion")
def diffusion_like(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Diffusion-like: add Gaussian noise (sigma 4..10 grey levels), then denoise it with a Gaussian smoother
    (sigma 0.6..1.1 px). Fine detail is lost and the residual noise is spatially correlated."""
    noisy = pixels + rng.normal(0.0, rng.uniform(4.0, 10.0), pixels.shape).astype(np.float32)
    return _gaussian_blur(noisy, rng.uniform(0.6, 1.1))


class _RandomDecoder(torch.nn.Module):
    """A tiny random convolutional autoencoder: 4x bottleneck, two learned-looking 2x upsampling stages."""

    def __init__(self, latent_channels: int = 4, hidden: int = 16):
        super().__init__()
        self.encode = torch.nn.Conv2d(3, latent_channels, kernel_size=4, stride=4)
        self.up1 = torch.nn.ConvTranspose2d(latent_channels, hidden, kernel_size=4, stride=2, padding=1)
        self.up2 = torch.nn.ConvTranspose2d(hidden, 3, kernel_size=4, stride=2, padding=1)

    def latent(self, image: torch.Tensor) -> torch.Tensor:
        return self.encode(image)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        return self.up2(torch.nn.functional.gelu(self.up1(latent)))


@functools.lru_cache(maxsize=1)
def _vae() -> _RandomDecoder:
    """The VAE family's fixed decoder (seeded, never trained)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_generator_seed("vae"))
        return _RandomDecoder().eval()


@register_family("vae")
def vae_bottleneck(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """VAE-like decoding: a 4x spatially downsampled latent (plus sampling noise) is decoded by bilinear
    upsampling of its low-pass image plus the texture of a fixed random transposed-convolution decoder, so
    detail below the latent's resolution is replaced by the decoder's own pattern."""
    height, width = pixels.shape[:2]
    pad_h, pad_w = -height % 4, -width % 4
    image = torch.nn.functional.pad(_to_tensor(pixels) / 127.5 - 1.0, (0, pad_w, 0, pad_h), mode="replicate")
    with torch.no_grad():
        net = _vae()
        latent = net.latent(image)
        latent = latent + 0.1 * torch.from_numpy(rng.standard_normal(latent.shape).astype(np.float32))
        texture = net.decode(latent)
        texture = texture - texture.mean(dim=(2, 3), keepdim=True)
        texture = texture / texture.std().clamp_min(1e-6)
        low = torch.nn.functional.avg_pool2d(image, 4)
        base = torch.nn.functional.interpolate(low, scale_factor=4, mode="bilinear", align_corners=False)
        decoded = (base + 0.015 * texture + 1.0) * 127.5
    return _to_array(decoded)[:height, :width]


@register_family("spectral")
def spectral_peaks(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Spectral peaks: add 2..4 faint high-frequency gratings (period 2.2..5 px, amplitude 1.5..3 grey
    levels), the periodic spectral artefacts that up-convolutions leave in generated images."""
    height, width = pixels.shape[:2]
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    pattern = np.zeros((height, width), dtype=np.float32)
    for _ in range(rng.integers(2, 5)):
        angle, period = rng.uniform(0, np.pi), rng.uniform(2.2, 5.0)
        phase = 2 * np.pi * (cols * np.cos(angle) + rows * np.sin(angle)) / period + rng.uniform(0, 2 * np.pi)
        pattern += rng.uniform(1.0, 2.0) * np.cos(phase)
    return pixels + pattern[..., None]


@register_family("splice")
def feathered_splice(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Semantic splice: an elliptical region (20..45% of the image) from a crop of another bundled photo is
    pasted with a feathered edge and a colour mismatch (per-channel gain 0.85..1.15, offset +-12)."""
    height, width = pixels.shape[:2]
    donor = np.asarray(Image.fromarray(photo_crop(max(height, width), rng)).resize((width, height)), np.float32)
    donor = donor * rng.uniform(0.85, 1.15, 3) + rng.uniform(-12.0, 12.0, 3)
    area = rng.uniform(0.2, 0.45)
    aspect = rng.uniform(0.6, 1.6)
    radius_y, radius_x = np.sqrt(area / np.pi * aspect) * height, np.sqrt(area / np.pi / aspect) * width
    centre_y, centre_x = rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width
    rows, cols = np.mgrid[0:height, 0:width]
    inside = ((rows - centre_y) / radius_y) ** 2 + ((cols - centre_x) / radius_x) ** 2 <= 1.0
    mask = _gaussian_blur(np.repeat(inside[..., None], 3, axis=-1).astype(np.float32), max(height, width) / 40)
    return mask * donor + (1.0 - mask) * pixels
