"""Batch forensic examples into model inputs with the model's image processor."""

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from transformers.image_processing_utils import BaseImageProcessor

from .images import DEFAULT_MAX_PIXELS, open_image


class ForensicCollator:
    """Turn `{"image": ..., "label": int}` examples into `{"pixel_values", "labels"}` tensors.

    Images may be PIL images, paths or file objects; each goes through `open_image` (upright RGB) and then
    the image processor (resize, crop, normalise). `labels` is returned only when every example has one, so
    the same collator serves training and prediction. With `Trainer`, pass `remove_unused_columns=False`
    (the model has no `image` argument, so Trainer would otherwise drop the column before collation).
    """

    def __init__(
        self,
        image_processor: BaseImageProcessor,
        image_column: str = "image",
        label_column: str = "label",
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ):
        self.image_processor = image_processor
        self.image_column = image_column
        self.label_column = label_column
        self.max_pixels = max_pixels

    def __call__(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        images = [open_image(example[self.image_column], self.max_pixels) for example in examples]
        batch = {"pixel_values": self.image_processor(images, return_tensors="pt")["pixel_values"]}
        if all(example.get(self.label_column) is not None for example in examples):
            batch["labels"] = torch.tensor([int(example[self.label_column]) for example in examples])
        return batch
