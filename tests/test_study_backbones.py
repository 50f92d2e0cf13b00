"""`corit study` on several backbones: cells named by backbone, a report that sets them side by side, a study grown
by a backbone training only that backbone's runs, cells written before backbones were in their names reused, and
one clear error for a mistyped backbone before any run trains."""

import csv
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from corit_hf import defaults
from corit_hf.cli import main
from corit_hf.evaluation.collapse import critical_radius
from corit_hf.study import run as study_run


TINY = ["--max-steps", "2", "--n-train", "16", "--n-test", "8", "--batch-size", "8", "--gsnr-every", "2"]
CONFIGS = ["baseline", "corit"]
RHOS = ("0", "0.5")
ONE_RUN = ["--rhos", "0", "--configs", "baseline"]
BACKBONES = ["tiny", "dinov2-tiny"]
OLD_CELL = Path(__file__).parent / "fixtures" / "study-cells-without-backbone" / "baseline_rho0_seed0.json"
"""A cell as `corit study` wrote it before a study had several backbones (`--rhos 0 --configs baseline` on TINY)."""


def study(output: Path, *flags: str, grid: tuple[str, ...] = ("--rhos", *RHOS, "--configs", *CONFIGS)) -> int:
    return main(["study", *TINY, *grid, *flags, "--output-dir", str(output)])


def cell_times(output: Path) -> dict[str, int]:
    return {path.name: path.stat().st_mtime_ns for path in (output / "cells").glob("*.json")}


def cell_names(backbones: list[str]) -> set[str]:
    return {f"{name}_{config}_rho{rho}_seed0.json" for name in backbones for config in CONFIGS for rho in RHOS}


def summary_of(output: Path) -> dict:
    return json.loads((output / "study.json").read_text())


@pytest.fixture(scope="module")
def two_backbones(tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("backbones")
    assert study(output, "--preset", *BACKBONES, "--workers", "2") == 0
    return output


def test_each_backbone_gets_its_own_cells(two_backbones):
    assert set(cell_times(two_backbones)) == cell_names(BACKBONES)
    for name in BACKBONES:  # recorded by the worker that trained the run: the backbone travelled with the settings
        cell = json.loads((two_backbones / "cells" / f"{name}_corit_rho0.5_seed0.json").read_text())
        assert (cell["settings"]["preset"], cell["settings"]["backbone"]) == (name, None)
        assert {"embeddings", "layer_00", "layer_03", "head"} <= set(cell["gsnr"])


def test_the_report_sets_the_backbones_side_by_side(two_backbones):
    summary = summary_of(two_backbones)
    assert list(summary["backbones"]) == BACKBONES and "configs" not in summary
    for name, backbone in summary["backbones"].items():
        assert (backbone["preset"], backbone["checkpoint"], backbone["learning_rate"]) == (name, None, 1e-3)
        for config_summary in backbone["configs"].values():
            aucs = [row["auc_mean"] for row in config_summary["rows"]]
            assert config_summary["cor"] == critical_radius([0.0, 0.5], aucs)
    markdown = (two_backbones / "study.md").read_text()
    assert markdown.count("| config | tiny | dinov2-tiny |") == 3  # COR, unseen AUC and GSNR per backbone
    assert "- random-init `dinov2-tiny` backbone, lr 0.001" in markdown
    assert "| config | backbone | rho=0 | rho=0.5 | COR |" in markdown
    assert "| corit | dinov2-tiny |" in markdown
    rows = list(csv.DictReader((two_backbones / "study.csv").open()))
    expected = [(name, config, rho) for name in BACKBONES for config in CONFIGS for rho in (0.0, 0.5)]
    assert [(row["backbone"], row["config"], float(row["rho"])) for row in rows] == expected
    with Image.open(two_backbones / "auc_vs_rho.png") as auc, Image.open(two_backbones / "gsnr_heatmap.png") as gsnr:
        assert auc.height == 2 * 4 * 110 and gsnr.height == round(2 * 3.6 * 110)  # a row of panels per backbone


def test_a_study_grown_by_a_backbone_trains_only_its_runs(two_backbones, capsys):
    before = cell_times(two_backbones)
    assert study(two_backbones, "--preset", *BACKBONES, "--backbone", "tiny-semantic", "--workers", "1") == 0
    after = cell_times(two_backbones)
    assert set(after) - set(before) == cell_names(["tiny-semantic"])
    assert {name: after[name] for name in before} == before
    summary = summary_of(two_backbones)
    assert list(summary["backbones"]) == [*BACKBONES, "tiny-semantic"]
    assert summary["backbones"]["tiny-semantic"]["checkpoint"] == "tiny-semantic"
    assert "| config | tiny | dinov2-tiny | tiny-semantic |" in capsys.readouterr().out


def test_cells_from_before_backbones_are_reused(tmp_path):
    (tmp_path / "cells").mkdir()
    shutil.copy(OLD_CELL, tmp_path / "cells")
    assert study(tmp_path, "--workers", "1", grid=ONE_RUN) == 0
    assert set(cell_times(tmp_path)) == {OLD_CELL.name}  # nothing trained
    assert summary_of(tmp_path)["cells"] == [json.loads(OLD_CELL.read_text())]

    assert study(tmp_path, "--preset", *BACKBONES, "--workers", "1", grid=ONE_RUN) == 0
    assert set(cell_times(tmp_path)) == {OLD_CELL.name, "dinov2-tiny_baseline_rho0_seed0.json"}
    assert summary_of(tmp_path)["cells"][0] == json.loads(OLD_CELL.read_text())


def test_each_backbone_gets_its_default_learning_rate_and_a_folder_a_file_name(tmp_path):
    from transformers import CLIPVisionConfig, CLIPVisionModel

    shape = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    folder = tmp_path / "weights" / "clip"
    CLIPVisionModel(CLIPVisionConfig(**shape, image_size=32, patch_size=8)).save_pretrained(folder)
    backbones = ["--preset", "tiny", "--backbone", str(folder)]
    assert study(tmp_path / "study", *backbones, "--workers", "1", grid=ONE_RUN) == 0
    cells = {path.name: json.loads(path.read_text()) for path in (tmp_path / "study" / "cells").glob("*.json")}
    [folder_cell] = [name for name in cells if name.startswith("clip-")]  # the folder's name and a hash of its path
    assert cells[folder_cell]["settings"]["learning_rate"] == defaults.LEARNING_RATE_PRETRAINED
    assert cells["tiny_baseline_rho0_seed0.json"]["settings"]["learning_rate"] == defaults.LEARNING_RATE
    assert f"- backbone `{folder}`, lr 2e-05" in (tmp_path / "study" / "study.md").read_text()


def test_a_run_failing_on_one_backbone_is_reported_under_it(tmp_path, monkeypatch, capsys):
    run_cell = study_run.run_cell

    def run_cell_failing_for_corit_on_dinov2(settings, backbone, splits, config, rho, seed):
        if (backbone.name, config) == ("dinov2-tiny", "corit"):
            raise RuntimeError("out of memory, say")
        return run_cell(settings, backbone, splits, config, rho, seed)

    monkeypatch.setattr(study_run, "run_cell", run_cell_failing_for_corit_on_dinov2)
    grid = ("--rhos", "0", "--configs", *CONFIGS)
    assert study(tmp_path, "--preset", *BACKBONES, "--workers", "1", grid=grid) == 1
    assert "run dinov2-tiny corit rho=0 seed=0 failed: RuntimeError: out of memory, say" in capsys.readouterr().err
    summary = summary_of(tmp_path)
    assert [failure["backbone"] for failure in summary["failed_runs"]] == ["dinov2-tiny"]
    assert {name: list(b["configs"]) for name, b in summary["backbones"].items()} == {
        "tiny": CONFIGS,
        "dinov2-tiny": ["baseline"],
    }
    markdown = (tmp_path / "study.md").read_text()
    assert "| failed |" in markdown  # its COR, unseen AUC and GSNR on dinov2-tiny
    assert "- dinov2-tiny corit rho=0 seed=0: RuntimeError: out of memory, say" in markdown


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--preset", "tiny", "dinov2-tny"], "--preset must be one of clip-vit-b16, "),
        (["--preset", "tiny", "--backbone", "missing-folder/"], "missing-folder/"),
        (["--preset", "tiny", "--backbone", "tiny"], "--preset tiny and --backbone tiny would share cell files"),
    ],
)
def test_a_bad_backbone_is_one_error_before_any_run_trains(tmp_path, capsys, flags, message):
    assert study(tmp_path, *flags, grid=ONE_RUN) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("corit study: error: ") and message in line
    assert not (tmp_path / "cells").exists()
