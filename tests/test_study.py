"""`corit study` end to end on a tiny grid: outputs, COR per configuration, resuming and growing the grid."""

import csv
import json

import pytest
from PIL import Image

from corit_hf import defaults
from corit_hf.cli import main
from corit_hf.defaults import CONFIGURATIONS
from corit_hf.evaluation.collapse import critical_radius


CONFIGS = ["baseline", "corit"]
TINY = ["--max-steps", "2", "--n-train", "16", "--n-test", "8", "--batch-size", "8", "--gsnr-every", "2"]


def study(output, rhos=("0", "0.5"), configs=CONFIGS, seeds=("0",), workers="1") -> int:
    argv = ["study", *TINY, "--rhos", *rhos, "--configs", *configs, "--seeds", *seeds, "--workers", workers]
    return main([*argv, "--output-dir", str(output)])


def cell_times(output) -> dict[str, int]:
    return {path.name: path.stat().st_mtime_ns for path in (output / "cells").iterdir()}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    output = tmp_path_factory.mktemp("study")
    assert study(output) == 0
    return output


def test_study_writes_every_report_file(finished):
    for name in ("study.json", "study.csv", "study.md", "auc_vs_rho.png", "gsnr_heatmap.png"):
        assert (finished / name).stat().st_size > 0
    for name in ("auc_vs_rho.png", "gsnr_heatmap.png"):
        with Image.open(finished / name) as image:
            assert image.format == "PNG"
    assert len(list((finished / "cells").glob("*.json"))) == 4


def test_study_summary_and_cor_follow_the_cells(finished):
    summary = json.loads((finished / "study.json").read_text())
    assert list(summary["configs"]) == CONFIGS
    for config_summary in summary["configs"].values():
        rows = config_summary["rows"]
        assert [row["rho"] for row in rows] == [0.0, 0.5]
        assert config_summary["cor"] == critical_radius([0.0, 0.5], [row["auc_mean"] for row in rows])
        layers = rows[0]["gsnr_by_layer"]
        assert {"embeddings", "layer_00", "head"} <= set(layers)
        assert all(value >= 0 for value in layers.values())
    spearman = summary["gsnr_cor_spearman"]
    assert set(spearman) == {"rho", "p_value", "n", "note"}


def test_study_csv_and_markdown(finished, capsys):
    rows = list(csv.DictReader((finished / "study.csv").open()))
    assert [(row["config"], float(row["rho"])) for row in rows] == [(c, r) for c in CONFIGS for r in (0.0, 0.5)]
    assert {"auc_mean", "unseen_auc_mean", "collapsed_runs", "gsnr_mean", "auc_test_vae"} <= set(rows[0])
    markdown = (finished / "study.md").read_text()
    assert "| config | rho=0 | rho=0.5 | COR |" in markdown
    assert "Spearman" in markdown


def test_rerun_resumes_and_a_grown_grid_trains_only_new_runs(finished, capsys):
    before = cell_times(finished)
    assert study(finished) == 0
    assert cell_times(finished) == before
    assert "| baseline |" in capsys.readouterr().out

    assert study(finished, rhos=("0", "0.5", "1"), configs=["baseline"]) == 0
    after = cell_times(finished)
    assert set(after) - set(before) == {"tiny_baseline_rho1_seed0.json"}
    assert all(after[name] == before[name] for name in before)
    summary = json.loads((finished / "study.json").read_text())
    assert list(summary["configs"]) == ["baseline"]
    assert [row["rho"] for row in summary["configs"]["baseline"]["rows"]] == [0.0, 0.5, 1.0]


@pytest.mark.parametrize("changed", [["--lr", "0.01"], ["--augment", "blur-jpeg"]])
def test_changed_settings_retrain_stale_cells(tmp_path, changed):
    assert study(tmp_path, rhos=("0",), configs=["baseline"]) == 0
    before = cell_times(tmp_path)
    argv = ["study", *TINY, "--rhos", "0", "--configs", "baseline", "--workers", "1", *changed]
    assert main([*argv, "--output-dir", str(tmp_path)]) == 0
    assert cell_times(tmp_path)["tiny_baseline_rho0_seed0.json"] != before["tiny_baseline_rho0_seed0.json"]
    cell = json.loads((tmp_path / "cells" / "tiny_baseline_rho0_seed0.json").read_text())
    assert cell["settings"].get("augment") == ("blur-jpeg" if "--augment" in changed else None)


def test_looksam_study_retrains_its_cells_and_says_so(tmp_path):
    """Plain-SAM cells carry no sam_ascent_every (cells from before LookSAM stay valid); k = 2 cells are new runs."""
    assert study(tmp_path, rhos=("0", "0.5"), configs=["baseline"]) == 0
    before = cell_times(tmp_path)
    assert (
        "sam_ascent_every"
        not in json.loads((tmp_path / "cells" / "tiny_baseline_rho0.5_seed0.json").read_text())["settings"]
    )
    argv = ["study", *TINY, "--rhos", "0", "0.5", "--configs", "baseline", "--workers", "1", "--sam-ascent-every", "2"]
    assert main([*argv, "--output-dir", str(tmp_path)]) == 0
    assert cell_times(tmp_path)["tiny_baseline_rho0.5_seed0.json"] != before["tiny_baseline_rho0.5_seed0.json"]
    assert json.loads((tmp_path / "study.json").read_text())["settings"]["sam_ascent_every"] == 2
    assert "LookSAM over SAM, a full ascent every 2 steps" in (tmp_path / "study.md").read_text()


def test_parallel_workers_and_several_seeds(tmp_path):
    assert study(tmp_path, rhos=("0", "0.5"), configs=["baseline"], seeds=("0", "1"), workers="2") == 0
    summary = json.loads((tmp_path / "study.json").read_text())
    row = summary["configs"]["baseline"]["rows"][0]
    assert row["seeds"] == 2 and len(row["auc_by_seed"]) == 2
    assert len(summary["configs"]["baseline"]["cor_by_seed"]) == 2
    assert "±" in (tmp_path / "study.md").read_text()


def test_study_from_a_clip_backbone(tmp_path):
    from transformers import CLIPVisionConfig, CLIPVisionModel

    shape = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    CLIPVisionModel(CLIPVisionConfig(**shape, image_size=32, patch_size=8)).save_pretrained(tmp_path / "clip")
    argv = [
        "study",
        *TINY,
        "--rhos",
        "0",
        "--configs",
        "corit",
        "--workers",
        "1",
        "--backbone",
        str(tmp_path / "clip"),
    ]
    assert main([*argv, "--output-dir", str(tmp_path / "study")]) == 0
    assert f"backbone `{tmp_path / 'clip'}`" in (tmp_path / "study" / "study.md").read_text()


def test_study_on_the_shipped_prior_with_layernorm_tuning(tmp_path):
    argv = ["study", *TINY, "--rhos", "0", "--configs", "baseline", "--workers", "1", "--backbone", "tiny-semantic"]
    assert main([*argv, "--finetune", "layernorm", "--output-dir", str(tmp_path)]) == 0
    cell = json.loads((tmp_path / "cells" / "tiny-semantic_baseline_rho0_seed0.json").read_text())
    assert cell["settings"]["finetuning"] == "layernorm" and cell["settings"]["backbone"] == "tiny-semantic"
    assert "layernorm fine-tuning" in (tmp_path / "study.md").read_text()


def test_defaults_name_every_configuration():
    assert set(defaults.CONFIG_NAMES) == set(CONFIGURATIONS)
    assert set(defaults.STUDY_CONFIGS) <= set(CONFIGURATIONS)
    assert 0.0 in defaults.STUDY_RHOS and max(defaults.STUDY_RHOS) > 1
