"""A folder of real/fake class folders alone (no train split) trains: a seeded, class-balanced validation split is
carved out of it (`--val-fraction`; a video's frames all on one side), printed and recorded; `corit evaluate`
scores the folder whole, as its test split."""

import json

import pytest
from _layouts import BLUE, RED, make_layout
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from corit_hf.cli import main
from corit_hf.data.splits import with_validation


TRAIN = ["--max-steps", "1", "--batch-size", "4", "--gsnr-every", "0", "--augment", "none"]


@pytest.fixture(scope="module")
def flat(tmp_path_factory):
    """`0_real/` and `1_fake/` with ten images each."""
    root = tmp_path_factory.mktemp("flat")
    make_layout(root, {"0_real": RED, "1_fake": BLUE}, count=10)
    return root


def rows(labels: list[int], videos: list[str] | None = None) -> Dataset:
    """A split with a `row` number, the labels (real=0) and the videos, if any."""
    columns = {"row": list(range(len(labels))), "label": labels, **({"video": videos} if videos else {})}
    features = {"row": Value("int32"), "label": ClassLabel(names=["real", "fake"])}
    return Dataset.from_dict(
        columns, features=Features({**features, **({"video": Value("string")} if videos else {})})
    )


def test_a_flat_folder_trains_less_a_printed_validation_split_and_evaluates_whole(flat, tmp_path, capsys):
    model = tmp_path / "model"
    assert main(["train", "--data", str(flat), *TRAIN, "--output-dir", str(model)]) == 0
    assert "validation: 10 % of train, seed 0, class-balanced (2 of 20 images; 18 train)\n" in capsys.readouterr().out
    metrics = json.loads((model / "metrics.json").read_text())
    carved = {"fraction": 0.1, "seed": 0, "from": "test", "unit": "images", "validation": 2, "train": 18}
    assert metrics["validation_split"] == carved and metrics["validation"]["n"] == 2
    output = tmp_path / "eval.json"
    assert main(["evaluate", str(model), "--data", str(flat), "--output", str(output)]) == 0
    assert {name: scores["n"] for name, scores in json.loads(output.read_text())["splits"].items()} == {"test": 20}


def test_val_fraction_sets_the_share_of_a_prepared_flat_folder_and_bad_values_are_one_clear_error(
    flat, tmp_path, capsys
):
    model, prepared = tmp_path / "model", tmp_path / "prepared"
    assert main(["prepare", str(flat), "--output", str(prepared), "--num-proc", "1"]) == 0
    assert main(["train", "--data", str(prepared), *TRAIN, "--val-fraction", "0.3", "--output-dir", str(model)]) == 0
    assert "validation: 30 % of train, seed 0, class-balanced (6 of 20 images; 14 train)" in capsys.readouterr().out
    assert json.loads((model / "metrics.json").read_text())["validation"]["n"] == 6
    for value in ("1", "-0.1", "nan"):
        assert main(["train", "--data", str(flat), *TRAIN, "--val-fraction", value]) == 2
        assert f"--val-fraction must be a number in [0, 1), got {value}." in capsys.readouterr().err
    assert main(["train", *TRAIN, "--n-train", "8", "--n-test", "4", "--val-fraction", "0.2"]) == 2
    assert "the data has its own (splits: train, validation, test_" in capsys.readouterr().err


def test_the_validation_split_is_class_balanced_seeded_and_ordered():
    data = DatasetDict({"test": rows([0] * 40 + [1] * 60)})
    splits, carved = with_validation(data, 0.25)
    assert list(splits) == ["train", "validation"] and carved["from"] == "test"
    validation, train = splits["validation"].to_dict(), splits["train"].to_dict()
    assert sorted(validation["label"]) == [0] * 10 + [1] * 15  # a quarter of each class
    assert sorted(train["row"] + validation["row"]) == list(range(100)) and train["row"] == sorted(train["row"])
    assert list(with_validation(data, 0.25)[0]["validation"]["row"]) == validation["row"]  # the same every time
    default, _ = with_validation(data)
    assert sorted(default["validation"]["label"]) == [0] * 4 + [1] * 6
    tiny, _ = with_validation(DatasetDict({"test": rows([0, 0, 1])}))
    assert sorted(tiny["validation"]["label"]) == [0]  # two real images give one to each side; one fake trains
    with_train = DatasetDict({"train": rows([0] * 10 + [1] * 10), "test_x": rows([0, 1])})
    assert with_validation(with_train)[1] is None  # data with a train split gets no validation unless asked
    carved_train, record = with_validation(with_train, 0.2)
    assert {name: len(split) for name, split in carved_train.items()} == {"train": 16, "validation": 4, "test_x": 2}
    assert record["from"] == "train"


def test_videos_are_split_by_video_never_by_frame():
    videos = [f"v{index // 4:02d}" for index in range(80)]  # 20 videos of 4 frames, the first 10 real
    splits, carved = with_validation(DatasetDict({"test": rows([0] * 40 + [1] * 40, videos)}), 0.2)
    train, validation = set(splits["train"]["video"]), list(splits["validation"]["video"])
    assert not train & set(validation) and len(train) == 16
    assert sorted(validation.count(video) for video in set(validation)) == [4] * 4  # whole videos
    assert sorted(splits["validation"]["label"]) == [0] * 8 + [1] * 8  # two real and two fake videos
    assert (carved["unit"], carved["validation"], carved["train"]) == ("videos", 4, 16)


def test_a_study_on_a_flat_folder_scores_its_carved_validation_split(flat, tmp_path, capsys):
    make_layout(tmp_path / "other", {"real": RED, "fake": BLUE})
    flags = ["--rhos", "0", "--configs", "baseline", "--max-steps", "1", "--batch-size", "4", "--gsnr-every", "0"]
    flags += ["--data", str(flat), "--test-data", str(tmp_path / "other"), "--val-fraction", "0.2", "--workers", "1"]
    assert main(["study", *flags, "--output-dir", str(tmp_path / "study")]) == 0
    line = "validation: 20 % of train, seed 0, class-balanced (4 of 20 images; 16 train)"
    assert line in capsys.readouterr().out
    cell = json.loads((tmp_path / "study" / "cells" / "tiny_baseline_rho0_seed0.json").read_text())
    assert {name: scores["n"] for name, scores in cell["splits"].items()} == {"validation": 4, "test_other": 4}
    summary = json.loads((tmp_path / "study" / "study.json").read_text())
    assert summary["validation_split"] == cell["validation_split"] and summary["validation_split"]["train"] == 16
    assert summary["in_domain_split"] == "validation" and summary["settings"]["val_fraction"] == 0.2
    assert main(["study", "--val-fraction", "0.2"]) == 2
    assert "--val-fraction needs --data" in capsys.readouterr().err
