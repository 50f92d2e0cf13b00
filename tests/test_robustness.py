"""`corit evaluate --perturb`: robustness sweeps through the command, their shape, determinism, plot and errors."""

import json

import pytest

from corit_hf.cli import main
from corit_hf.evaluation.collapse import HEADLINE_SCORES
from corit_hf.training.run import build_detector


SWEEP = ["--perturb", "jpeg=100,50", "--perturb", "blur=0,2", "--perturb", "resize=1,0.5", "--perturb", "noise=0,20"]
EVALUATE = ["--n-test", "12", "--splits", "test_gan", "test_vae", "--batch-size", "8"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    build_detector(seed=0).save_pretrained(folder)
    return folder


def test_sweep_table_json_and_plot(model_dir, tmp_path, capsys):
    output = tmp_path / "results.json"
    assert main(["evaluate", str(model_dir), *EVALUATE, *SWEEP, "--output", str(output)]) == 0
    results = json.loads(output.read_text())
    sweep = results["robustness"]
    assert list(sweep) == ["test_gan", "test_vae"]
    for split, by_name in sweep.items():
        assert {name: list(levels) for name, levels in by_name.items()} == {
            "jpeg": ["100", "50"],
            "blur": ["0", "2"],
            "resize": ["1", "0.5"],
            "noise": ["0", "20"],
        }
        clean = results["splits"][split]
        for name, level in (("blur", "0"), ("resize", "1"), ("noise", "0")):  # the levels that change nothing
            assert by_name[name][level] == {key: clean[key] for key in HEADLINE_SCORES}
        assert by_name["blur"]["2"] != by_name["blur"]["0"]  # real and fake images are both degraded and rescored
    table = capsys.readouterr().out
    assert "perturbation" in table and "test_vae             noise            20" in table
    assert (tmp_path / "robustness.png").read_bytes().startswith(b"\x89PNG")

    again = tmp_path / "again.json"
    assert main(["evaluate", str(model_dir), *EVALUATE, *SWEEP, "--output", str(again)]) == 0
    assert json.loads(again.read_text())["robustness"] == sweep  # deterministic, noise included


@pytest.mark.parametrize(
    "spec, message",
    [
        ("sharpen=1,2", "unknown perturbation 'sharpen'"),
        ("jpeg=100,0", "jpeg level 0 is out of range"),
        ("blur=one", "'one' is not a number"),
        ("resize", "give the levels"),
    ],
)
def test_bad_perturbations_are_one_line_errors(model_dir, capsys, spec, message):
    assert main(["evaluate", str(model_dir), "--perturb", spec]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("corit evaluate: error:") and message in error and "\n" not in error
