"""The ImageNet teacher, `corit distill`, and the shipped `tiny-semantic` prior."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from corit_hf.cli import main
from corit_hf.prior.crops import HELD_OUT_BUNDLED
from corit_hf.prior.distill import RECORD_FILE, Student, agreement, fixed_holdout_set
from corit_hf.prior.registry import PRIORS
from corit_hf.prior.teacher import (
    TEACHER_IMAGE_SIZE,
    TeacherError,
    installed_teacher_file,
    load_teacher,
    teacher_inputs,
)
from corit_hf.training.run import build_detector, detector_config


TEACHER_FILE = installed_teacher_file()
needs_teacher = pytest.mark.skipif(
    TEACHER_FILE is None or not TEACHER_FILE.is_file(), reason="the `prior` extra (teacher weights) is not installed"
)
PRIOR = PRIORS["tiny-semantic"]
TABBY, TIGER_CAT, PERSIAN_CAT, SIAMESE_CAT, EGYPTIAN_CAT = 281, 282, 283, 284, 285
ESPRESSO, CUP, MILITARY_UNIFORM, MISSILE, PROJECTILE, SPACE_SHUTTLE = 967, 968, 652, 657, 744, 812


@pytest.fixture(scope="module")
def teacher():
    return load_teacher()


def centre_crop(pixels: np.ndarray) -> torch.Tensor:
    """A photo's centre square at the teacher's native 224 px, as a (1, 3, H, W) 0..1 tensor."""
    image = Image.fromarray(pixels)
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    image = image.crop((left, top, left + side, top + side)).resize((TEACHER_IMAGE_SIZE,) * 2, Image.BICUBIC)
    return torch.from_numpy(np.asarray(image)).permute(2, 0, 1)[None].float() / 255.0


@needs_teacher
def test_teacher_recognises_photos_of_known_content(teacher):
    from corit_hf.data.benchmark.sources import bundled_photos

    photos = bundled_photos()
    expected = {
        "skimage/chelsea": {TABBY, TIGER_CAT, PERSIAN_CAT, SIAMESE_CAT, EGYPTIAN_CAT},
        "skimage/coffee": {ESPRESSO, CUP},
        "skimage/rocket": {MISSILE, PROJECTILE, SPACE_SHUTTLE},
        "matplotlib/grace_hopper": {MILITARY_UNIFORM},
    }
    with torch.inference_mode():
        for name, classes in expected.items():
            top = int(teacher(teacher_inputs(centre_crop(photos[name]))).argmax())
            assert top in classes, (name, top)


def test_missing_truncated_and_foreign_teacher_files_give_one_clear_error(tmp_path):
    with pytest.raises(TeacherError, match="does not exist.*pip install"):
        load_teacher(tmp_path / "missing.pth")
    foreign = tmp_path / "foreign.pth"
    torch.save(torch.nn.Linear(3, 2).state_dict(), foreign)
    with pytest.raises(TeacherError, match="is not EfficientNet-Lite0"):
        load_teacher(foreign)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(foreign.read_bytes()[:200])
    with pytest.raises(TeacherError, match="unreadable or truncated"):
        load_teacher(truncated)


def test_cli_reports_a_bad_teacher_file_in_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    assert main(["distill", "--output-dir", str(tmp_path / "out"), "--teacher-file", str(bad)]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("corit distill: error: Teacher file")
    assert not (tmp_path / "out" / "model.safetensors").exists()


@needs_teacher
def test_distill_runs_end_to_end_and_resumes(tmp_path, capsys):
    argv = ["distill", "--output-dir", str(tmp_path / "prior"), "--n-crops", "48", "--epochs", "2"]
    argv += ["--batch-size", "16", "--n-holdout-crops", "0", "--teacher-size", "96"]
    assert main(argv) == 0
    record = json.loads((tmp_path / "prior" / RECORD_FILE).read_text())
    assert set(record["agreement"]) == {"fixed_holdout", "train"}
    assert record["images"]["held_out"]["photos"] == len(HELD_OUT_BUNDLED)
    model = build_detector(backbone=str(tmp_path / "prior"))
    assert model.config.vision_config.hidden_size == detector_config("tiny").vision_config.hidden_size
    first = (tmp_path / "prior" / "model.safetensors").read_bytes()
    assert main(argv) == 0  # resumes from the cached labels and the last checkpoint: same weights
    assert (tmp_path / "prior" / "model.safetensors").read_bytes() == first
    assert "fixed_holdout" in capsys.readouterr().out


def test_shipped_prior_loads_through_from_clip_and_by_name():
    from corit_hf import CoritForImageClassification

    model = CoritForImageClassification.from_clip(str(PRIOR))
    by_name = build_detector(backbone="tiny-semantic")
    loaded, named = model.backbone.state_dict(), by_name.backbone.state_dict()
    assert loaded.keys() == named.keys() and all(torch.equal(loaded[key], named[key]) for key in loaded)
    assert detector_config(backbone="tiny-semantic").vision_config.image_size == 64
    assert (PRIOR / "README.md").read_text().count("EfficientNet-Lite0") >= 1


@needs_teacher
def test_shipped_prior_agrees_with_the_teacher_as_recorded(teacher):
    record = json.loads((PRIOR / RECORD_FILE).read_text())
    crops = fixed_holdout_set(teacher, record["settings"]["teacher_size"], 64)
    measured = agreement(Student.from_folder(PRIOR), crops.pixels, crops.logits)
    recorded = record["agreement"]["fixed_holdout"]["student"]
    assert abs(measured["top1"] - recorded["top1"]) <= 0.03
    assert abs(measured["top5"] - recorded["top5"]) <= 0.03
