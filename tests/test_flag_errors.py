"""A bad flag value is one line that names the flag the user typed, in every command; the API names its own
arguments."""

import argparse

import pytest

from corit_hf import CoritConfig, CoritTrainingArguments
from corit_hf.cli import main
from corit_hf.cli.main import build_parser
from corit_hf.data import PrepareOptions
from corit_hf.models.configuration_corit import PRESETS
from corit_hf.study.run import StudySettings


MODEL = "/no/such/model"  # never opened: the values are refused first
TINY_TRAIN = ["train", "--n-train", "16", "--n-test", "8", "--max-steps", "1", "--batch-size", "8"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        # train: each kind of value (a radius, a ratio, counts, a range pair, a seed, a preset, a probability)
        (["train", "--rho", "-1"], "corit train: error: --rho must be a finite number >= 0, got -1."),
        (["train", "--rho", "nan"], "corit train: error: --rho must be a finite number >= 0, got nan."),
        (["train", "--rho", "abc"], "corit train: error: --rho must be a finite number >= 0, got abc."),
        (["train", "--keep-ratio", "2"], "corit train: error: --keep-ratio must be a number in (0, 1], got 2."),
        (
            ["train", "--rsi-strength", "-1"],
            "corit train: error: --rsi-strength must be a finite number >= 0, got -1.",
        ),
        (["train", "--hri-layers", "x"], "corit train: error: --hri-layers must be an integer, got x."),
        (["train", "--lora-rank", "0"], "corit train: error: --lora-rank must be an integer >= 1, got 0."),
        (["train", "--gsnr-every", "-1"], "corit train: error: --gsnr-every must be an integer >= 0, got -1."),
        (["train", "--epochs", "0"], "corit train: error: --epochs must be a finite number > 0, got 0."),
        (["train", "--max-steps", "0"], "corit train: error: --max-steps must be an integer >= 1, got 0."),
        (["train", "--batch-size", "2.5"], "corit train: error: --batch-size must be an integer >= 1, got 2.5."),
        (["train", "--lr", "-1"], "corit train: error: --lr must be a finite number >= 0, got -1."),
        (["train", "--seed", "-1"], "corit train: error: --seed must be an integer in [0, 4294967295], got -1."),
        (
            ["train", "--preset", "huge"],
            f"corit train: error: --preset must be one of {', '.join(sorted(PRESETS))}, got huge.",
        ),
        (["train", "--blur-prob", "1.5"], "corit train: error: --blur-prob must be a number in [0, 1], got 1.5."),
        (
            ["train", "--blur-sigma", "3", "1"],
            "corit train: error: --blur-sigma must be MIN MAX with MIN <= MAX, got 3 1.",
        ),
        (
            ["train", "--jpeg-quality", "50", "120"],
            "corit train: error: --jpeg-quality must be an integer in [1, 100], got 120.",
        ),
        (["train", "--eval-steps", "0"], "corit train: error: --eval-steps must be an integer >= 1, got 0."),
        (["train", "--workers", "-1"], "corit train: error: --workers must be an integer >= 0, got -1."),
        (["train", "--n-train", "0"], "corit train: error: --n-train must be an integer >= 1, got 0."),
        (["train", "--frames", "0"], "corit train: error: --frames must be an integer >= 1, got 0."),
        # evaluate and predict
        (
            ["evaluate", MODEL, "--threshold", "2"],
            "corit evaluate: error: --threshold must be a number in [0, 1], got 2.",
        ),
        (
            ["evaluate", MODEL, "--margin", "0.7"],
            "corit evaluate: error: --margin must be a number in [0, 0.5], got 0.7.",
        ),
        (["evaluate", MODEL, "--n-test", "0"], "corit evaluate: error: --n-test must be an integer >= 1, got 0."),
        (
            ["predict", MODEL, "x.png", "--threshold", "-0.5"],
            "corit predict: error: --threshold must be a number in [0, 1], got -0.5.",
        ),
        (
            ["predict", MODEL, "x.png", "--batch-size", "0"],
            "corit predict: error: --batch-size must be an integer >= 1, got 0.",
        ),
        # study
        (["study", "--rhos", "0", "-1"], "corit study: error: --rhos must be a finite number >= 0, got -1."),
        (["study", "--seeds", "-1"], "corit study: error: --seeds must be an integer in [0, 4294967295], got -1."),
        (["study", "--workers", "0"], "corit study: error: --workers must be an integer >= 1, got 0."),
        (["study", "--data-workers", "-1"], "corit study: error: --data-workers must be an integer >= 0, got -1."),
        (["study", "--cpus-per-run", "0"], "corit study: error: --cpus-per-run must be a finite number > 0, got 0."),
        (
            ["study", "--sam-ascent-every", "0"],
            "corit study: error: --sam-ascent-every must be an integer >= 1, got 0.",
        ),
        # prepare, distill, serve and the Hub commands
        (
            ["prepare", "src", "--output", "out", "--size", "0"],
            "corit prepare: error: --size must be an integer >= 1, got 0.",
        ),
        (
            ["prepare", "src", "--output", "out", "--num-proc", "0"],
            "corit prepare: error: --num-proc must be an integer >= 1, got 0.",
        ),
        (
            ["distill", "--output-dir", "out", "--holdout-fraction", "1"],
            "corit distill: error: --holdout-fraction must be a number in [0, 1), got 1.",
        ),
        (
            ["distill", "--output-dir", "out", "--temperature", "0"],
            "corit distill: error: --temperature must be a finite number > 0, got 0.",
        ),
        (
            ["distill", "--output-dir", "out", "--n-crops", "0"],
            "corit distill: error: --n-crops must be an integer >= 1, got 0.",
        ),
        (
            ["serve", MODEL, "--port", "99999"],
            "corit serve: error: --port must be an integer in [0, 65535], got 99999.",
        ),
        (
            ["push", MODEL, "--repo-id", "a b"],
            "corit push: error: --repo-id must be a Hub repo id, NAME or "
            "ORG/NAME: Repo id must use alphanumeric chars, '-', '_' or '.'. The name cannot start or end with '-' "
            "or '.' and the maximum length is 96: 'a b'.",
        ),
    ],
)
def test_a_bad_value_is_one_line_naming_the_flag(argv, message, capsys):
    assert main(argv) == 2
    assert capsys.readouterr().err == message + "\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([*TINY_TRAIN, "--gsnr-chunks", "1"], "--gsnr-chunks must be >= 2 for the microbatch estimator, got 1."),
        (
            [*TINY_TRAIN, "--hri-layers", "9"],
            "--hri-layers entry 9 is out of range: allowed -5..4 for a backbone with 4 layers.",
        ),
        (["study", "--rhos", "0.5", "1"], "--rhos must include 0 (the reference run of COR), got [0.5, 1.0]."),
    ],
)
def test_values_checked_against_other_values_name_the_flag_too(argv, message, capsys, tmp_path):
    assert main([*argv, "--output-dir", str(tmp_path)]) == 2
    errors = capsys.readouterr().err
    assert errors.splitlines()[-1] == f"corit {argv[0]}: error: {message}" and "Traceback" not in errors


def test_every_number_flag_is_checked_as_it_is_parsed():
    """No command takes a bare int or float: each number flag has a type from cli/values.py that names it."""
    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    bare = [
        f"corit {command} {action.option_strings[0]}"
        for command, parser in subparsers.choices.items()
        for action in parser._actions
        if action.type in (int, float)
    ]
    assert bare == []


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: CoritTrainingArguments(output_dir="out", sam_rho=-1), "sam_rho must be"),
        (lambda: CoritConfig(rrm_keep_ratio=2), "rrm_keep_ratio must be"),
        (lambda: StudySettings(rhos=[0.5, 1.0]), "rhos must include 0"),
        (lambda: PrepareOptions(frames=0), "frames must be positive"),
    ],
)
def test_the_python_api_names_its_own_arguments(make, message):
    with pytest.raises(ValueError, match=message) as error:
        make()
    assert "--" not in str(error.value)
