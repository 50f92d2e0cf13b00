"""Write a forensic DatasetDict as an image folder with a Hub dataset card.

The folder is `<split>/real/*` and `<split>/fake/<family>/*` (readable by `load_forensic_folder`), plus a
`metadata.jsonl` per split (`file_name`, integer `label`, `family`) and a README.md whose YAML header declares
the splits and the real=0 / fake=1 ClassLabel, so `datasets.load_dataset(folder)` and the Hub read it with
the right labels too (locally the label loads as an integer column; the card shows how to cast it).
Image bytes are copied unchanged: re-encoding would add a format difference between the classes.
"""

import io
import json
import os
from pathlib import Path

import jinja2
from datasets import DatasetDict, Image
from PIL import Image as PILImage

from ...resources import card_template as packaged_card_template
from .build import REAL_FAMILY, benchmark_params
from .families import FAMILIES
from .sources import bundled_photos


DATASET_CARD = "dataset_card.md"
EXTENSIONS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "BMP": ".bmp", "TIFF": ".tif", "GIF": ".gif"}
SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"))


def write_benchmark_folder(
    dataset: DatasetDict, path: str | os.PathLike, card_template: str | os.PathLike | None = None
) -> Path:
    """Write `dataset` (columns `image`, `label`, optional `family`) under `path` with a README.md card.

    Works for `build_benchmark` output (the card then records its families, size, seed and encoding) and for
    any DatasetDict with the same columns, e.g. from `load_forensic_folder`. `path` must not exist or be
    empty. Returns the folder path.
    """
    root = Path(path)
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root} is not empty; write the benchmark to a new folder.")
    splits = [_write_split(dataset[name], name, root / name) for name in dataset]
    template = Path(card_template) if card_template is not None else packaged_card_template(DATASET_CARD)
    card = jinja2.Template(template.read_text(), keep_trailing_newline=True).render(**_card_context(dataset, splits))
    (root / "README.md").write_text(card)
    return root


def _write_split(split, name: str, directory: Path) -> dict:
    """Copy one split's image bytes into real/ and fake/<family>/; return its card summary."""
    label_names = split.features["label"].names
    families = split["family"] if "family" in split.column_names else [None] * len(split)
    records, counts = [], {"real": 0, "fake": 0}
    for index, (image, label, family) in enumerate(
        zip(split.cast_column("image", Image(decode=False))["image"], split["label"], families)
    ):
        data = image["bytes"] if image["bytes"] is not None else Path(image["path"]).read_bytes()
        class_name = label_names[label]
        subfolder = Path(class_name) if class_name == "real" or family in (None, "fake") else Path("fake") / family
        file_name = (subfolder / f"{index:06d}{_extension(data)}").as_posix()
        (directory / subfolder).mkdir(parents=True, exist_ok=True)
        (directory / file_name).write_bytes(data)
        records.append({"file_name": file_name, "label": label, "family": family or class_name})
        counts[class_name] += 1
    (directory / "metadata.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    fake_families = sorted({record["family"] for record in records if record["label"] == 1})
    return {"name": name, "real": counts["real"], "fake": counts["fake"], "families": fake_families}


def _extension(data: bytes) -> str:
    """The file extension of encoded image bytes, from their format."""
    with PILImage.open(io.BytesIO(data)) as image:
        return EXTENSIONS.get(image.format, f".{image.format.lower()}")


def _card_context(dataset: DatasetDict, splits: list[dict]) -> dict:
    """The variables of the dataset card template."""
    total = sum(split["real"] + split["fake"] for split in splits)
    params = benchmark_params(dataset)
    first_split = next(iter(dataset.values()))
    first = first_split[0]["image"] if len(first_split) else None
    families = sorted({family for split in splits for family in split["families"]} - {REAL_FAMILY})
    return {
        "splits": splits,
        "total": total,
        "size_category": next((name for limit, name in SIZE_CATEGORIES if total < limit), "n>1M"),
        "image_size": f"{first.width}x{first.height}" if first is not None else "unknown",
        "image_format": first.format if first is not None else "unknown",
        "params": params,
        "families": [
            {"name": name, "description": FAMILIES[name].description if name in FAMILIES else ""} for name in families
        ],
        "photos": sorted(bundled_photos()) if params else [],
    }
