"""`corit distill`: a semantic prior for the CLIP vision tower, distilled from an ImageNet teacher.

The student is a `CLIPVisionModel` of a preset's shape with a linear ImageNet head on its pooled output. It learns
to match the teacher's temperature-softened predictions (KL divergence) on augmented crops of real photos and
cut-out objects, while its own inputs are blurred, rescaled, JPEG-compressed and noised. The teacher labels every
crop once (cached); the student then trains for several epochs, with a checkpoint after each, so an interrupted
run resumes. The output folder is a `CLIPVisionModel` (what `from_clip` and `--backbone` load) plus the head, a
JSON record and a model card.
"""

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm
from transformers import CLIPVisionConfig, CLIPVisionModel, get_cosine_schedule_with_warmup, set_seed

from .. import defaults
from ..data.families import single_threaded_torch
from ..files import atomic_target, write_json, write_text_atomic
from ..models.configuration_corit import PRESETS, CoritConfig, backbone_family
from .crops import ImagePool, build_pools, bundled_holdout_pool, degrade, pool_crops
from .teacher import TEACHER_PACKAGE, TEACHER_VERSION, load_teacher, teacher_inputs


HEAD_FILE = "imagenet_head.safetensors"
RECORD_FILE = "distill.json"
CARD_FILE = "README.md"
STATE_DIR = ".distill"
LABELS_FILE = "teacher_labels.pt"
CHECKPOINT_FILE = "checkpoint.pt"
TEACHER_BATCH = 64
FIXED_HOLDOUT_CROPS = 128
"""Size of the fixed held-out set (crops of the held-out bundled photos) that the tests re-measure."""
CLIP_TYPE = CLIPVisionConfig.model_type
"""The student is a CLIP vision tower: the presets it takes are CLIP's."""


@dataclass
class DistillSettings:
    """Everything a distillation depends on; a resume only reuses state written with the same settings."""

    images: list[str] = field(default_factory=list)
    preset: str = defaults.DISTILL_PRESET
    n_crops: int = defaults.DISTILL_N_CROPS
    n_holdout_crops: int = defaults.DISTILL_N_HOLDOUT_CROPS
    epochs: int = defaults.DISTILL_EPOCHS
    batch_size: int = defaults.DISTILL_BATCH_SIZE
    learning_rate: float = defaults.DISTILL_LEARNING_RATE
    weight_decay: float = 0.05
    temperature: float = defaults.DISTILL_TEMPERATURE
    teacher_size: int = defaults.DISTILL_TEACHER_SIZE
    holdout_fraction: float = defaults.DISTILL_HOLDOUT_FRACTION
    seed: int = 0

    def __post_init__(self):
        clip_presets = sorted(name for name, shape in PRESETS.items() if shape["model_type"] == CLIP_TYPE)
        if self.preset not in clip_presets:
            raise ValueError(f"Unknown CLIP preset {self.preset!r}; choose one of {clip_presets}.")
        for name in ("n_crops", "epochs", "batch_size", "teacher_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}.")
        if not 0.0 <= self.holdout_fraction < 1.0:
            raise ValueError(f"holdout_fraction must be in [0, 1), got {self.holdout_fraction}.")
        self.images = [str(path) for path in self.images]

    def label_settings(self) -> dict:
        """What the teacher's labels of the training crops depend on (the cache key of those labels)."""
        keys = ("images", "preset", "n_crops", "teacher_size", "holdout_fraction", "seed")
        return {key: getattr(self, key) for key in keys}


class Student(nn.Module):
    """The CLIP vision tower being distilled, plus the linear ImageNet head used only for distillation."""

    def __init__(self, vision: CLIPVisionModel, num_classes: int = 1000):
        super().__init__()
        self.vision = vision
        self.head = nn.Linear(vision.config.hidden_size, num_classes)

    @classmethod
    def from_preset(cls, preset: str) -> "Student":
        return cls(CLIPVisionModel(CoritConfig.from_preset(preset).vision_config))

    @classmethod
    def from_folder(cls, folder: str | os.PathLike) -> "Student":
        """A distilled prior folder with its head, e.g. to measure its agreement with the teacher."""
        student = cls(CLIPVisionModel.from_pretrained(folder))
        student.head.load_state_dict(load_file(Path(folder) / HEAD_FILE))
        return student.eval()

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.head(self.vision(pixel_values).pooler_output)


def student_inputs(pixels: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, 3) images as CLIP-normalised (N, 3, H, W) floats, as `image_processor_for` makes them."""
    images = torch.as_tensor(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2).float() / 255.0
    family = backbone_family(CLIP_TYPE)
    mean, std = torch.tensor(family.image_mean).view(1, 3, 1, 1), torch.tensor(family.image_std).view(1, 3, 1, 1)
    return (images - mean) / std


@torch.inference_mode()
def teacher_logits(
    teacher: nn.Module, crops: np.ndarray, progress: bool = False, desc: str = "teacher"
) -> torch.Tensor:
    """The teacher's ImageNet logits (float16) for uint8 crops at the teacher's input size."""
    teacher = teacher.to(memory_format=torch.channels_last)
    outputs = []
    for start in range(0, len(crops), TEACHER_BATCH):
        batch = torch.as_tensor(crops[start : start + TEACHER_BATCH]).permute(0, 3, 1, 2).float() / 255.0
        outputs.append(teacher(teacher_inputs(batch).contiguous(memory_format=torch.channels_last)).half())
    return torch.cat(outputs) if outputs else torch.zeros(0, 1000, dtype=torch.float16)


def downscale(crops: np.ndarray, size: int) -> np.ndarray:
    """Crops resized (antialiased) to the student's input size, as uint8."""
    if crops.shape[1] == size:
        return crops
    images = torch.as_tensor(crops).permute(0, 3, 1, 2).float()
    images = nn.functional.interpolate(images, size=(size, size), mode="bilinear", antialias=True)
    return images.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


@dataclass
class LabelledCrops:
    """Student-size uint8 crops and the teacher's logits for them."""

    pixels: np.ndarray
    logits: torch.Tensor

    def save(self, path: Path) -> None:
        with atomic_target(path) as temporary:
            torch.save({"pixels": torch.from_numpy(self.pixels), "logits": self.logits}, temporary)

    @classmethod
    def load(cls, path: Path) -> "LabelledCrops":
        state = torch.load(path, weights_only=True)
        return cls(state["pixels"].numpy(), state["logits"])


def labelled_crops(
    teacher: nn.Module, pool: ImagePool, count: int, teacher_size: int, student_size: int, seed: int, progress: bool
) -> LabelledCrops:
    """`count` crops of `pool` labelled by the teacher at `teacher_size`, stored at `student_size`."""
    pixels, logits = [], []
    chunk = TEACHER_BATCH * 8
    bar = tqdm(total=count, desc="teacher labels", unit="crop", disable=not progress)
    for index, start in enumerate(range(0, count, chunk)):
        crops = pool_crops(pool, min(chunk, count - start), teacher_size, seed=seed * 100_003 + index)
        logits.append(teacher_logits(teacher, crops))
        pixels.append(downscale(crops, student_size))
        bar.update(len(crops))
    bar.close()
    return LabelledCrops(np.concatenate(pixels), torch.cat(logits))


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher || student) on temperature-softened distributions, scaled by T^2 (Hinton et al. 2015)."""
    log_student = nn.functional.log_softmax(student_logits / temperature, dim=-1)
    log_teacher = nn.functional.log_softmax(teacher_logits.float() / temperature, dim=-1)
    return nn.functional.kl_div(log_student, log_teacher, log_target=True, reduction="batchmean") * temperature**2


@torch.inference_mode()
def agreement(student: nn.Module, pixels: np.ndarray, logits: torch.Tensor, batch_size: int = 256) -> dict:
    """Top-1 agreement (same top class) and top-5 agreement (the teacher's top class among the student's five)."""
    student.eval()
    predictions = torch.cat(
        [student(student_inputs(pixels[start : start + batch_size])) for start in range(0, len(pixels), batch_size)]
    )
    teacher_top = logits.float().argmax(dim=-1)
    top5 = predictions.topk(5, dim=-1).indices
    return {
        "top1": float((predictions.argmax(dim=-1) == teacher_top).float().mean()),
        "top5": float((top5 == teacher_top[:, None]).any(dim=-1).float().mean()),
        "n": len(pixels),
    }


def fixed_holdout_set(teacher: nn.Module, teacher_size: int, student_size: int) -> LabelledCrops:
    """The fixed held-out crops (bundled photos no distillation uses), labelled by the teacher."""
    return labelled_crops(
        teacher, bundled_holdout_pool(), FIXED_HOLDOUT_CROPS, teacher_size, student_size, seed=12345, progress=False
    )


def distill(
    settings: DistillSettings,
    output_dir: str | os.PathLike,
    teacher_file: str | os.PathLike | None = None,
    data_notes: list[str] | None = None,
    progress: bool = True,
) -> dict:
    """Distil the teacher into a student of `settings.preset`'s shape; write the prior folder; return its record."""
    started = time.perf_counter()
    output_dir = Path(output_dir)
    teacher = load_teacher(teacher_file)
    state_dir = output_dir / STATE_DIR
    state_key = asdict(settings)
    student_size = PRESETS[settings.preset]["image_size"]
    train_pool, held_out_pool = build_pools(settings.images, settings.holdout_fraction)
    if not train_pool.photos:
        raise ValueError("No training photos: every image was held out or unreadable.")
    with single_threaded_torch():  # on a busy CPU one thread is several times faster than a straggling pool
        training = _cached_labels(
            state_dir,
            settings.label_settings(),
            lambda: labelled_crops(
                teacher, train_pool, settings.n_crops, settings.teacher_size, student_size, settings.seed, progress
            ),
        )
        student = train_student(settings, training, state_dir, state_key, progress)
    record = {
        "settings": state_key,
        "teacher": {"package": TEACHER_PACKAGE, "version": TEACHER_VERSION, "architecture": "EfficientNet-Lite0"},
        "images": {
            "train": {"photos": len(train_pool.photos), "objects": len(train_pool.objects)},
            "held_out": {"photos": len(held_out_pool.photos), "objects": len(held_out_pool.objects)},
            "notes": data_notes or [],
        },
        "agreement": measure_agreements(teacher, student, settings, training, held_out_pool, student_size),
        "seconds": round(time.perf_counter() - started, 1),
    }
    save_prior(student, output_dir, record)
    return record


def _cached_labels(state_dir: Path, label_key: dict, make) -> LabelledCrops:
    """The teacher's labels from an earlier run with the same label settings, else made now and saved."""
    path, key_path = state_dir / LABELS_FILE, state_dir / "labels.json"
    if path.is_file() and key_path.is_file() and json.loads(key_path.read_text()) == label_key:
        return LabelledCrops.load(path)
    for stale in (path, state_dir / CHECKPOINT_FILE):
        stale.unlink(missing_ok=True)
    crops = make()
    crops.save(path)
    write_json(key_path, label_key)
    return crops


def train_student(
    settings: DistillSettings, crops: LabelledCrops, state_dir: Path, state_key: dict, progress: bool
) -> Student:
    """The student trained on the labelled crops; resumes from the last epoch's checkpoint when there is one."""
    set_seed(settings.seed)
    student = Student.from_preset(settings.preset)
    optimizer = torch.optim.AdamW(student.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    steps_per_epoch = math.ceil(len(crops.pixels) / settings.batch_size)
    total = steps_per_epoch * settings.epochs
    scheduler = get_cosine_schedule_with_warmup(optimizer, min(total // 20, 500), total)
    start_epoch = _resume(state_dir / CHECKPOINT_FILE, state_key, student, optimizer, scheduler)
    bar = tqdm(total=total, initial=start_epoch * steps_per_epoch, desc="distill", unit="step", disable=not progress)
    for epoch in range(start_epoch, settings.epochs):
        student.train()
        rng = np.random.default_rng([settings.seed, epoch])
        for indices in np.array_split(rng.permutation(len(crops.pixels)), steps_per_epoch):
            pixels = np.stack([degrade(crops.pixels[i], rng) for i in indices])
            loss = distillation_loss(student(student_inputs(pixels)), crops.logits[indices], settings.temperature)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(student.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            bar.set_postfix_str(f"epoch {epoch + 1} loss {loss.item():.3f}")
            bar.update()
        _checkpoint(state_dir / CHECKPOINT_FILE, state_key, epoch + 1, student, optimizer, scheduler)
    bar.close()
    return student.eval()


def _checkpoint(path: Path, state_key: dict, epochs_done: int, student, optimizer, scheduler) -> None:
    state = {
        "settings": state_key,
        "epochs_done": epochs_done,
        "student": student.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
    }
    with atomic_target(path) as temporary:
        torch.save(state, temporary)


def _resume(path: Path, state_key: dict, student, optimizer, scheduler) -> int:
    """Epochs already done by an earlier run with the same settings (its weights and optimizer loaded), else 0."""
    if not path.is_file():
        return 0
    state = torch.load(path, weights_only=False)
    if state.get("settings") != state_key:
        return 0
    student.load_state_dict(state["student"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    return state["epochs_done"]


def measure_agreements(
    teacher: nn.Module,
    student: Student,
    settings: DistillSettings,
    training: LabelledCrops,
    held_out_pool: ImagePool,
    student_size: int,
) -> dict:
    """Agreement of the student, and of a random-init student of the same shape, on held-out and training crops."""
    set_seed(settings.seed + 1)
    random_student = Student.from_preset(settings.preset).eval()
    sets = {"fixed_holdout": fixed_holdout_set(teacher, settings.teacher_size, student_size)}
    if held_out_pool.photos and settings.n_holdout_crops:
        sets["holdout"] = labelled_crops(
            teacher, held_out_pool, settings.n_holdout_crops, settings.teacher_size, student_size, 777, False
        )
    seen = slice(0, min(1000, len(training.pixels)))
    sets["train"] = LabelledCrops(training.pixels[seen], training.logits[seen])
    return {
        name: {
            "student": agreement(student, crops.pixels, crops.logits),
            "random_init": agreement(random_student, crops.pixels, crops.logits),
        }
        for name, crops in sets.items()
    }


def save_prior(student: Student, output_dir: Path, record: dict) -> None:
    """The `CLIPVisionModel` folder (safetensors + config), the ImageNet head, the record and the model card."""
    student.vision.save_pretrained(output_dir)
    with atomic_target(output_dir / HEAD_FILE) as temporary:
        save_file({name: tensor.contiguous() for name, tensor in student.head.state_dict().items()}, str(temporary))
    write_json(output_dir / RECORD_FILE, record)
    write_text_atomic(output_dir / CARD_FILE, prior_card(record))


def prior_card(record: dict) -> str:
    """A short model card: what the prior is, its teacher, data, licences, agreement figures and recipe."""
    settings, images = record["settings"], record["images"]
    rows = [
        f"| {name} | {scores['student']['top1']:.1%} | {scores['student']['top5']:.1%} | "
        f"{scores['random_init']['top1']:.1%} | {scores['random_init']['top5']:.1%} | {scores['student']['n']} |"
        for name, scores in record["agreement"].items()
    ]
    notes = "".join(f"- {note}\n" for note in images["notes"])
    paths = settings["images"]
    images_text = " ".join(paths) if len(paths) <= 4 else f"<the {len(paths)} files and folders in {RECORD_FILE}>"
    return f"""---
library_name: transformers
license: apache-2.0
tags: [clip, vision, distillation, corit]
---

# CoRIT semantic prior ({settings["preset"]} CLIP vision tower)

A `CLIPVisionModel` of the `{settings["preset"]}` shape whose features carry an ImageNet *semantic prior*, distilled
from EfficientNet-Lite0 (ImageNet-1k; weights from the `{TEACHER_PACKAGE}` {TEACHER_VERSION} package, Apache-2.0)
with `corit distill`. It stands in for CLIP weights, which this project cannot obtain offline, in the collapse
study. It is a small distillation, not CLIP: use it to study detectors on a semantic backbone, not as a
general-purpose image encoder. `{HEAD_FILE}` holds the linear ImageNet head used during distillation.

## Data

Training: {images["train"]["photos"]} photos and {images["train"]["objects"]} cut-out objects (pasted on photo crops).
Held out (whole images, never cropped for training): {images["held_out"]["photos"]} photos and
{images["held_out"]["objects"]} objects. The bundled package photos (scikit-image BSD-3, scikit-learn BSD-3,
matplotlib's Grace Hopper, public domain) come with the Python packages.
{notes}
## Agreement with the teacher

Top-1: the student's top class equals the teacher's. Top-5: the teacher's top class is among the student's five.
`random_init` is a student of the same shape before distillation (chance is 0.1% / 0.5%).

| crops | top-1 | top-5 | random-init top-1 | random-init top-5 | n |
|---|---:|---:|---:|---:|---:|
{chr(10).join(rows)}

`fixed_holdout`: crops of the five held-out bundled photos (astronaut, chelsea, coffee, rocket, Grace Hopper);
`holdout`: crops of the held-out images above; `train`: crops the student trained on.

## Recipe

{settings["n_crops"]} crops labelled by the teacher at {settings["teacher_size"]} px, student at its preset size;
{settings["epochs"]} epochs, batch {settings["batch_size"]}, AdamW lr {settings["learning_rate"]:g}
(weight decay {settings["weight_decay"]:g}, cosine), KL at temperature {settings["temperature"]:g}; student inputs
blurred, rescaled, JPEG-compressed and noised at random; CutMix of crops; seed {settings["seed"]}. It took
{record["seconds"] / 60:.1f} minutes on a 2-core CPU.

```bash
corit distill --output-dir prior --images {images_text} \\
    --n-crops {settings["n_crops"]} --epochs {settings["epochs"]} --teacher-size {settings["teacher_size"]} \\
    --seed {settings["seed"]}
```

The weights are released under Apache-2.0 like the teacher; the training images keep their own licences (above).
"""
