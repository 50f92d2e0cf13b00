"""Forensic data: open_image, the offline benchmark (determinism, no leak, learnable), folders, collator."""

import io
import json

import numpy as np
import pytest
import torch
import yaml
from _layouts import BLUE, LAYOUT_CASES, RED, make_layout
from datasets import DatasetDict, load_dataset
from datasets import Image as ImageFeature
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from corit_hf import CoritConfig, CoritForImageClassification, image_processor_for
from corit_hf.data import (
    FAMILIES,
    ForensicCollator,
    ImageLoadError,
    build_benchmark,
    get_family,
    load_forensic_folder,
    open_image,
    register_family,
    write_benchmark_folder,
)


REQUIRED_FAMILIES = {"gan", "resample", "diffusion", "vae", "spectral", "splice"}


def encoded(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def raw_bytes(split) -> list[bytes]:
    return [image["bytes"] for image in split.cast_column("image", ImageFeature(decode=False))["image"]]


@pytest.fixture(scope="module")
def benchmark():
    """Train on gan, test on every family: shared by the leak, learnability and export tests."""
    return build_benchmark(train_family="gan", n_train=400, n_test=300, n_validation=20, seed=0, progress=False)


# open_image


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (Image.new("CMYK", (4, 4), (0, 255, 255, 0)), (255, 0, 0)),
        (Image.new("L", (4, 4), 77), (77, 77, 77)),
        (Image.new("1", (4, 4), 1), (255, 255, 255)),
        (Image.new("RGBA", (4, 4), (255, 0, 0, 0)), (255, 255, 255)),
        (Image.new("LA", (4, 4), (0, 255)), (0, 0, 0)),
        (Image.new("I;16", (4, 4), 65535), (255, 255, 255)),
        (Image.new("I", (4, 4), 32896), (128, 128, 128)),
    ],
    ids=["cmyk", "greyscale", "bilevel", "transparent-rgba", "opaque-la", "16-bit", "32-bit-int"],
)
def test_open_image_converts_modes_to_rgb(image, expected):
    fmt = "JPEG" if image.mode == "CMYK" else "PNG" if image.mode != "I" else "TIFF"
    result = open_image(io.BytesIO(encoded(image, fmt)))
    assert result.mode == "RGB"
    assert result.size == image.size
    assert np.abs(np.asarray(result)[0, 0].astype(int) - expected).max() <= 3


def test_open_image_palette_with_and_without_transparency():
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    assert open_image(palette).getpixel((0, 0)) == (10, 200, 30)
    palette.info["transparency"] = 1
    assert open_image(io.BytesIO(encoded(palette))).getpixel((0, 0)) == (255, 255, 255)


def test_open_image_applies_exif_orientation(tmp_path):
    image = Image.new("RGB", (40, 20), (0, 0, 0))
    image.paste((255, 255, 255), (0, 0, 10, 20))  # white left band
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif, quality=95)
    upright = np.asarray(open_image(path))
    assert upright.shape == (40, 20, 3)
    assert upright[:10].mean() > 200 and upright[-10:].mean() < 50  # left band is now on top


def test_open_image_refuses_large_images_before_decoding(tmp_path, monkeypatch):
    path = tmp_path / "large.png"
    Image.new("L", (2000, 1000)).save(path)
    with pytest.raises(ImageLoadError, match=r"too large \(2 megapixels, above the limit of 1 megapixels\)"):
        open_image(path, max_pixels=1_000_000)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100_000)  # PIL's own bomb check fires first
    with pytest.raises(ImageLoadError, match=r"too large \(2 megapixels, above the limit of 0.1 megapixels\)"):
        open_image(path, max_pixels=10_000_000)
    assert open_image(Image.new("RGB", (30, 30))).size == (30, 30)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"this is not an image", "not a recognised image or video file"),
        (b"", "empty file"),
        (encoded(Image.new("RGB", (300, 300), (9, 99, 199)), "JPEG")[:600], "truncated"),
    ],
)
def test_open_image_unreadable_raises_image_load_error(tmp_path, data, reason):
    path = tmp_path / "bad.png"
    path.write_bytes(data)
    with pytest.raises(ImageLoadError, match=reason):
        open_image(path)
    with pytest.raises(ValueError):
        open_image(tmp_path / "missing.png")


# families and the benchmark


def test_registry_has_the_six_families_and_they_keep_size_and_type():
    assert REQUIRED_FAMILIES <= set(FAMILIES)
    crop = np.random.default_rng(0).integers(0, 256, (37, 45, 3), dtype=np.uint8)
    for name in REQUIRED_FAMILIES:
        family = get_family(name)
        assert family.description
        forged = family(crop, np.random.default_rng(1))
        assert forged.shape == crop.shape and forged.dtype == np.uint8
        assert np.array_equal(forged, family(crop, np.random.default_rng(1)))
        assert not np.array_equal(forged, crop)
        assert family(Image.fromarray(crop), np.random.default_rng(1)).size == (45, 37)
    with pytest.raises(ValueError, match="registered families"):
        get_family("no-such-family")


def test_register_family_adds_a_family_to_the_benchmark():
    @register_family("invert")
    def invert(pixels, rng):
        """Colour inversion."""
        return 255.0 - pixels

    try:
        with pytest.raises(ValueError, match="already registered"):
            register_family("invert")(invert)
        dataset = build_benchmark("invert", ["invert"], n_train=4, n_test=4, progress=False)
        assert set(dataset) == {"train", "validation", "test_invert"}
        assert FAMILIES["invert"].description == "Colour inversion."
    finally:
        FAMILIES.pop("invert")


def test_benchmark_splits_labels_and_balance(benchmark):
    assert list(benchmark) == ["train", "validation"] + [f"test_{name}" for name in sorted(FAMILIES)]
    assert benchmark["train"].features["label"].names == ["real", "fake"]
    for name, split in benchmark.items():
        labels = np.array(split["label"])
        assert (labels == 0).sum() == (labels == 1).sum() == len(split) // 2
        family = "gan" if name in ("train", "validation") else name.removeprefix("test_")
        assert set(np.array(split["family"])[labels == 1]) == {family}
        assert set(np.array(split["family"])[labels == 0]) == {"real"}
    first = benchmark["test_vae"][0]["image"]
    assert first.size == (64, 64) and first.format == "PNG"


def test_benchmark_is_deterministic_and_seeded():
    both = build_benchmark("resample", ["spectral", "splice"], n_train=6, n_test=6, seed=3, progress=False)
    one = build_benchmark("resample", ["splice"], n_train=6, n_test=6, seed=3, progress=False)
    assert raw_bytes(both["test_splice"]) == raw_bytes(one["test_splice"])
    assert raw_bytes(both["train"]) == raw_bytes(one["train"])
    other_seed = build_benchmark("resample", ["splice"], n_train=6, n_test=6, seed=4, progress=False)
    assert set(raw_bytes(other_seed["test_splice"])).isdisjoint(raw_bytes(one["test_splice"]))


def test_jpeg_encoding_applies_to_both_classes():
    dataset = build_benchmark("gan", ["gan"], n_train=4, n_test=4, encoding="jpeg", jpeg_quality=80, progress=False)
    assert {example["image"].format for example in dataset["test_gan"]} == {"JPEG"}
    with pytest.raises(ValueError, match="encoding"):
        build_benchmark(encoding="webp")


def test_benchmark_cache_dir_round_trip(tmp_path):
    first = build_benchmark("vae", ["vae"], n_train=4, n_test=4, cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.iterdir())) == 1
    again = build_benchmark("vae", ["vae"], n_train=4, n_test=4, cache_dir=tmp_path, progress=False)
    assert raw_bytes(again["test_vae"]) == raw_bytes(first["test_vae"])


def format_statistics(split) -> np.ndarray:
    rows = []
    for data in raw_bytes(split):
        pixels = np.asarray(Image.open(io.BytesIO(data)), dtype=np.float64)
        rows.append([len(data), np.log(len(data)), *pixels.mean(axis=(0, 1)), *pixels.std(axis=(0, 1))])
    return np.array(rows)


def test_no_format_or_colour_statistic_separates_the_classes(benchmark):
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    classifier = make_pipeline(StandardScaler(), LogisticRegression())
    for family in FAMILIES:
        split = benchmark[f"test_{family}"]
        auc = cross_val_score(classifier, format_statistics(split), split["label"], cv=folds, scoring="roc_auc")
        assert auc.mean() < 0.65, f"{family}: file size / colour statistics give AUC {auc.mean():.3f}"


def test_tiny_corit_learns_the_gan_family(benchmark):
    torch.manual_seed(0)
    config = CoritConfig.from_preset("tiny")
    collator = ForensicCollator(image_processor_for(config))
    train, test = collator(list(benchmark["train"])), collator(list(benchmark["test_gan"]))
    model = CoritForImageClassification(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    order = torch.Generator().manual_seed(0)
    for _ in range(150):
        batch = torch.randint(0, len(train["labels"]), (32,), generator=order)
        loss = model(pixel_values=train["pixel_values"][batch], labels=train["labels"][batch]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        fake_probability = model(pixel_values=test["pixel_values"]).logits.softmax(-1)[:, 1]
    assert roc_auc_score(test["labels"], fake_probability) > 0.9


# export and folders


def test_written_folder_round_trips_and_has_a_hub_card(benchmark, tmp_path):
    small = DatasetDict({name: split.select(range(6)) for name, split in benchmark.items()})
    folder = write_benchmark_folder(small, tmp_path / "bench")
    assert (folder / "test_spectral" / "fake" / "spectral").is_dir() and (folder / "train" / "real").is_dir()

    header = yaml.safe_load((folder / "README.md").read_text().split("---")[1])
    assert header["task_categories"] == ["image-classification"] and header["license"]
    assert [config["split"] for config in header["configs"][0]["data_files"]] == list(small)
    assert "seed 0" in (folder / "README.md").read_text()

    loaded, report = load_forensic_folder(folder)
    assert not report.skipped and list(loaded) == list(small)
    for name in small:
        written = loaded[name].cast_column("image", ImageFeature(decode=False))["image"]
        assert sorted(raw_bytes(small[name])) == sorted(open(image["path"], "rb").read() for image in written)
        assert sorted(loaded[name]["label"]) == sorted(small[name]["label"])

    hub_style = load_dataset(str(folder))
    assert list(hub_style) == list(small) and sorted(hub_style["train"]["label"]) == [0, 0, 0, 1, 1, 1]
    with pytest.raises(FileExistsError):
        write_benchmark_folder(small, folder)


@pytest.mark.parametrize("layout", LAYOUT_CASES, ids=list(LAYOUT_CASES))
def test_every_layout_loads_with_real_0_and_fake_1(tmp_path, layout):
    folders, expected_splits = LAYOUT_CASES[layout]
    make_layout(tmp_path, folders)
    dataset, report = load_forensic_folder(tmp_path)
    assert {name: len(split) for name, split in dataset.items()} == expected_splits
    assert not report.skipped
    for split in dataset.values():
        for example in split:
            assert example["image"].getpixel((0, 0)) == (RED if example["label"] == 0 else BLUE)
    if layout == "real-fake-families":
        assert sorted(dataset["test"]["family"]) == ["gan", "gan", "real", "real", "vae", "vae"]


def test_split_override_and_unknown_layout(tmp_path):
    make_layout(tmp_path / "progan_train", {"airplane/0_real": RED, "airplane/1_fake": BLUE})
    dataset, _ = load_forensic_folder(tmp_path / "progan_train", split="train")
    assert list(dataset) == ["train"] and sorted(dataset["train"]["label"]) == [0, 0, 1, 1]
    make_layout(tmp_path / "unsorted", {"cats": RED, "dogs": BLUE})
    with pytest.raises(ValueError, match="0_real") as error:
        load_forensic_folder(tmp_path / "unsorted")
    assert "nature" in str(error.value) and "real|fake" in str(error.value)


def test_folder_with_bad_files_loads_the_good_ones_and_reports_the_rest(tmp_path):
    real, fake = tmp_path / "0_real", tmp_path / "1_fake"
    real.mkdir()
    fake.mkdir()
    Image.new("RGB", (16, 16), RED).save(real / "good.png")
    Image.new("RGBA", (16, 16), (0, 0, 255, 0)).save(real / "transparent.png")
    Image.fromarray(np.full((16, 16), 65535, dtype=np.uint16)).save(real / "sixteen_bit.png")
    Image.new("RGB", (1, 1), BLUE).save(fake / "tiny.png")
    Image.new("RGB", (3000, 3000), BLUE).save(fake / "huge.png")
    (fake / "notes.png").write_text("not an image")
    (fake / "truncated.jpg").write_bytes(encoded(Image.new("RGB", (300, 300), BLUE), "JPEG")[:700])
    (fake / ".DS_Store").write_bytes(b"\0")

    dataset, report = load_forensic_folder(tmp_path, max_pixels=4_000_000)

    assert sorted(dataset["test"]["label"]) == [0, 0, 0, 1]
    colours = {example["image"].getpixel((0, 0)) for example in dataset["test"]}
    assert colours == {RED, (255, 255, 255), BLUE}  # alpha on white; 16-bit white stays white
    assert {example["image"].mode for example in dataset["test"]} == {"RGB"}
    reasons = {path.rsplit("/", 1)[-1]: reason for path, reason in report.skipped}
    assert set(reasons) == {"huge.png", "notes.png", "truncated.jpg"}
    assert "megapixels" in reasons["huge.png"] and reasons["notes.png"] == "not a recognised image or video file"
    assert "truncated" in reasons["truncated.jpg"]
    assert "Skipped 3 files" in report.summary() and report.loaded == {"test": 4}


# collator


def test_collator_makes_model_inputs(benchmark):
    config = CoritConfig.from_preset("tiny")
    collator = ForensicCollator(image_processor_for(config))
    examples = [benchmark["validation"][index] for index in range(4)]
    batch = collator(examples)
    assert batch["pixel_values"].shape == (4, 3, 64, 64)
    assert batch["labels"].tolist() == [example["label"] for example in examples]
    output = CoritForImageClassification(config)(**batch)
    assert output.logits.shape == (4, 2) and torch.isfinite(output.loss)
    unlabelled = collator([{"image": Image.new("RGBA", (1, 1))}, {"image": Image.new("I;16", (300, 20))}])
    assert set(unlabelled) == {"pixel_values"} and unlabelled["pixel_values"].shape == (2, 3, 64, 64)


def test_metadata_jsonl_labels_are_integers(benchmark, tmp_path):
    small = DatasetDict({name: split.select(range(2)) for name, split in benchmark.items()})
    folder = write_benchmark_folder(small, tmp_path / "bench")
    records = [json.loads(line) for line in (folder / "test_gan" / "metadata.jsonl").read_text().splitlines()]
    assert records == [
        {"file_name": "real/000000.png", "label": 0, "family": "real"},
        {"file_name": "fake/gan/000001.png", "label": 1, "family": "gan"},
    ]
