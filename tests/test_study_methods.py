"""`corit study --methods`: the field's methods under the study's protocol, each trained as its recipe says (unless
--finetune overrides them all), side by side in the report with their trainable weights and step cost; --configs
still works, an unknown method is one line before any run, and a default study's cells are reused."""

import json
import shutil
from pathlib import Path

import pytest

from corit_hf.cli import main
from corit_hf.study import run as study_run


TINY = ["--max-steps", "2", "--n-train", "16", "--n-test", "8", "--batch-size", "8", "--gsnr-every", "2"]
METHODS = ["univfd", "gend", "corit"]
OLD_CELL = Path(__file__).parent / "fixtures" / "study-cells-without-backbone" / "baseline_rho0_seed0.json"
"""A cell of the default study (`--rhos 0 --configs baseline` on TINY), written before methods existed."""


def study(output: Path, *flags: str) -> int:
    return main(["study", *TINY, "--workers", "1", *flags, "--output-dir", str(output)])


def cells(output: Path) -> dict[str, dict]:
    return {path.name: json.loads(path.read_text()) for path in (output / "cells").glob("*.json")}


def summary_of(output: Path) -> dict:
    return json.loads((output / "study.json").read_text())


@pytest.fixture(scope="module")
def three_methods(tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("methods")
    assert study(output, "--rhos", "0", "0.5", "--methods", *METHODS) == 0
    return output


def test_each_method_gets_its_cells_its_tuning_and_its_costs(three_methods):
    written = cells(three_methods)
    assert set(written) == {f"tiny_{method}_rho{rho}_seed0.json" for method in METHODS for rho in ("0", "0.5")}
    tuning = {name: cell["settings"].get("finetuning", "full") for name, cell in written.items()}
    assert tuning["tiny_univfd_rho0_seed0.json"] == "head" and tuning["tiny_gend_rho0_seed0.json"] == "layernorm"
    assert tuning["tiny_corit_rho0_seed0.json"] == "full"
    weights = {cell["config"]: cell["trainable_parameters"] for cell in written.values()}
    assert weights["univfd"] < weights["gend"] < weights["corit"]  # the head < norms and head < everything
    assert all(cell["step_seconds"] > 0 for cell in written.values())


def test_the_report_sets_the_methods_side_by_side(three_methods):
    summary = summary_of(three_methods)["configs"]
    assert list(summary) == METHODS
    for method in METHODS:
        best = max(summary[method]["rows"], key=lambda row: row["auc_mean"])
        assert summary[method]["best_rho"] == best["rho"]
        assert summary[method]["unseen_auc_at_best_rho"] == best["unseen_auc_mean"]
    markdown = (three_methods / "study.md").read_text()
    assert "highest in-domain AUC" in markdown
    for method in METHODS:
        row = next(line for line in markdown.splitlines() if line.startswith(f"| {method} | "))
        assert f"{summary[method]['trainable_parameters']:,}" in row
        assert row.endswith(" corit |")  # step cost relative to the full-tuning method
    assert "each method's own tuning" in markdown


def test_configs_is_the_same_flag_and_finetune_overrides_every_method(tmp_path):
    assert study(tmp_path, "--rhos", "0", "--configs", "univfd", "--finetune", "full") == 0
    (cell,) = cells(tmp_path).values()
    assert cell["config"] == "univfd" and "finetuning" not in cell["settings"]  # full, as --finetune says
    assert "full fine-tuning (every method)" in (tmp_path / "study.md").read_text()


def test_a_method_trained_with_its_own_tuning_is_not_the_overridden_one(three_methods, tmp_path):
    shutil.copytree(three_methods / "cells", tmp_path / "cells")
    assert study(tmp_path, "--rhos", "0", "--methods", "univfd", "--finetune", "full") == 0
    assert (
        cells(tmp_path)["tiny_univfd_rho0_seed0.json"]["trainable_parameters"]
        > (cells(three_methods)["tiny_univfd_rho0_seed0.json"]["trainable_parameters"])
    )


def test_an_unknown_method_is_one_line_before_any_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(study_run, "run_cell", lambda *args: pytest.fail("a run trained"))
    assert study(tmp_path, "--rhos", "0", "--methods", "corit", "univdf") == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "corit study: error: --methods/--configs must be one of baseline, corit, corit-no-hri, corit-no-rrm, "
        "corit-no-rsi, effort, gend, lora, univfd, got univdf."
    )
    assert not (tmp_path / "cells").exists()


def test_the_default_studys_cells_are_reused_when_methods_join(tmp_path):
    (tmp_path / "cells").mkdir()
    shutil.copy(OLD_CELL, tmp_path / "cells")
    assert study(tmp_path, "--rhos", "0", "--methods", "baseline", "univfd") == 0
    assert set(cells(tmp_path)) == {OLD_CELL.name, "tiny_univfd_rho0_seed0.json"}  # baseline not retrained
    assert cells(tmp_path)[OLD_CELL.name] == json.loads(OLD_CELL.read_text())
    summary = summary_of(tmp_path)["configs"]
    assert summary["baseline"]["trainable_parameters"] is None and summary["univfd"]["trainable_parameters"] > 0
    assert "| baseline | full |" in (tmp_path / "study.md").read_text()
