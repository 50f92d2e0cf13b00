"""`corit train`, `evaluate` and `predict` end to end on tiny data, in-process and as a real console script."""

import csv
import json
import shutil
import subprocess
import sysconfig

import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageClassification, pipeline

from corit_hf import CoritConfig, CoritForImageClassification
from corit_hf.cli import main
from corit_hf.evaluation.collapse import SCORE_NAMES


TINY_DATA = ["--n-train", "32", "--n-test", "16"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    output = tmp_path_factory.mktemp("model")
    args = ["train", *TINY_DATA, "--max-steps", "4", "--batch-size", "8", "--gsnr-every", "2", "--rho", "0.05"]
    assert main([*args, "--output-dir", str(output)]) == 0
    return output


@pytest.fixture
def image_folder(tmp_path):
    folder = tmp_path / "images"
    (folder / "nested").mkdir(parents=True)
    for index, colour in enumerate(["red", "green", "blue"]):
        target = folder / ("nested" if index == 2 else "") / f"image_{index}.png"
        Image.new("RGB", (80, 60), colour).save(target)
    (folder / "broken.png").write_bytes(b"not an image at all")
    (folder / "notes.txt").write_text("ignored: not an image suffix")
    return folder


def test_train_writes_a_loadable_model_folder(model_dir):
    names = {path.name for path in model_dir.iterdir()}
    expected = {"model.safetensors", "config.json", "preprocessor_config.json", "metrics.json", "gsnr.jsonl"}
    assert expected | {"configuration_corit.py", "modeling_corit.py"} <= names
    config = json.loads((model_dir / "config.json").read_text())
    assert config["auto_map"]["AutoModelForImageClassification"] == "modeling_corit.CoritForImageClassification"
    model = AutoModelForImageClassification.from_pretrained(model_dir)
    assert model.config.id2label == {0: "real", 1: "fake"}

    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert metrics["train"]["train_loss"] > 0
    assert set(metrics["validation"]) == {*SCORE_NAMES, "collapsed", "n"}
    records = [json.loads(line) for line in (model_dir / "gsnr.jsonl").read_text().splitlines()]
    assert len(records) == 2 and records[0]["step"] < records[1]["step"]
    assert "gsnr/head" in records[0] and "gsnr/layer_00" in records[0]


def test_train_switches_reach_the_config(tmp_path):
    output = tmp_path / "baseline"
    args = ["train", *TINY_DATA, "--max-steps", "1", "--batch-size", "8", "--baseline", "--rho", "0"]
    assert main([*args, "--gsnr-every", "0", "--output-dir", str(output)]) == 0
    config = json.loads((output / "config.json").read_text())
    assert (config["use_cgp_mask"], config["rsi_strength"], config["hri_layers"]) == (False, 0.0, [-1])
    assert (output / "gsnr.jsonl").read_text() == ""


def test_lora_training_saves_a_merged_plain_model(tmp_path):
    output = tmp_path / "lora"
    args = [
        "train",
        *TINY_DATA,
        "--max-steps",
        "2",
        "--batch-size",
        "8",
        "--finetune",
        "lora",
        "--lora-rank",
        "2",
        "--gsnr-every",
        "0",
    ]
    assert main([*args, "--output-dir", str(output)]) == 0
    model = AutoModelForImageClassification.from_pretrained(output)
    assert not any("lora" in name for name, _ in model.named_parameters())


def test_train_on_a_forensic_folder_from_a_clip_backbone(tmp_path):
    from transformers import CLIPVisionConfig, CLIPVisionModel

    data = tmp_path / "data"
    for split in ("train", "val"):
        for label, colour in (("real", "white"), ("fake", "black")):
            (data / split / label).mkdir(parents=True)
            for index in range(4):
                Image.new("RGB", (40, 40), colour).save(data / split / label / f"{index}.png")
    (data / "train" / "fake" / "broken.png").write_bytes(b"truncated")
    clip = tmp_path / "clip"
    shape = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    CLIPVisionModel(CLIPVisionConfig(**shape, image_size=32, patch_size=8)).save_pretrained(clip)

    output = tmp_path / "model"
    args = ["train", "--data", str(data), "--backbone", str(clip), "--max-steps", "2", "--batch-size", "4"]
    assert main([*args, "--output-dir", str(output)]) == 0
    config = json.loads((output / "config.json").read_text())
    assert config["base_model_name_or_path"] == str(clip)
    assert config["vision_config"]["hidden_size"] == 32
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["validation"]["n"] == 8
    assert metrics["learning_rate"] == 2e-5  # the gentle default for CLIP weights


def test_shipped_prior_trains_at_the_tiny_learning_rate(tmp_path):
    # `tiny-semantic` is the tiny shape: CLIP's fine-tuning rate would barely move it.
    output = tmp_path / "semantic"
    args = ["train", *TINY_DATA, "--backbone", "tiny-semantic", "--max-steps", "1", "--batch-size", "8"]
    assert main([*args, "--gsnr-every", "0", "--output-dir", str(output)]) == 0
    assert json.loads((output / "metrics.json").read_text())["learning_rate"] == 1e-3


def test_evaluate_writes_eval_results(model_dir, capsys):
    assert main(["evaluate", str(model_dir), "--n-test", "16"]) == 0
    results = json.loads((model_dir / "eval_results.json").read_text())
    assert results["model"] == str(model_dir)
    assert results["dataset"] == {"name": "corit forensic benchmark", "type": "corit-benchmark", "config": "train-gan"}
    assert {"test_gan", "test_vae", "test_splice"} <= set(results["splits"])
    for scores in results["splits"].values():
        assert set(scores) == {*SCORE_NAMES, "collapsed", "n"}
        assert 0.0 <= scores["auc"] <= 1.0 and isinstance(scores["collapsed"], bool) and scores["n"] == 16
    table = capsys.readouterr().out
    assert "test_gan" in table and "AUC" in table


def test_evaluate_on_a_saved_dataset_with_chosen_splits(model_dir, tmp_path):
    from corit_hf.data import build_benchmark

    saved = tmp_path / "saved"
    build_benchmark(n_train=4, n_test=8, test_families=["gan"], progress=False).save_to_disk(str(saved))
    output = tmp_path / "results.json"
    args = ["evaluate", str(model_dir), "--data", str(saved), "--splits", "validation", "--output", str(output)]
    assert main(args) == 0
    results = json.loads(output.read_text())
    assert list(results["splits"]) == ["validation"]
    assert results["dataset"] == {"name": "saved", "type": str(saved), "config": None}


def test_predict_skips_corrupt_files_and_writes_the_rest(model_dir, image_folder, tmp_path, capsys):
    output = tmp_path / "predictions.csv"
    assert main(["predict", str(model_dir), str(image_folder), "--output", str(output)]) == 1
    rows = list(csv.DictReader(output.open()))
    assert [row["path"].rsplit("/", 1)[-1] for row in rows] == ["image_0.png", "image_1.png", "image_2.png"]
    for row in rows:
        assert 0.0 <= float(row["fake_probability"]) <= 1.0
        assert row["label"] == ("fake" if float(row["fake_probability"]) > 0.5 else "real")
    errors = capsys.readouterr().err
    broken = image_folder / "broken.png"
    assert f"corit predict: skipped {broken}: not a recognised image or video file" in errors.splitlines()
    assert errors.count(str(broken)) == 1  # the file is named once, not again inside the reason
    assert "notes.txt" not in errors


def test_predict_threshold_and_json_lines_to_stdout(model_dir, image_folder, capsys):
    target = str(image_folder / "image_0.png")
    assert main(["predict", str(model_dir), target, "--format", "jsonl", "--threshold", "0"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line)["label"] == "fake"


@pytest.fixture(scope="module")
def undecided_model(tmp_path_factory):
    """A detector with a zero classifier: equal logits, so the fake probability of every image is exactly 0.5."""
    model = CoritForImageClassification(CoritConfig.from_preset("tiny"))
    torch.nn.init.zeros_(model.classifier.weight)
    torch.nn.init.zeros_(model.classifier.bias)
    folder = tmp_path_factory.mktemp("undecided")
    model.save_pretrained(folder)
    return folder


def test_a_fake_probability_of_one_half_is_real_everywhere(undecided_model, image_folder, tmp_path, capsys):
    output = tmp_path / "results.json"
    args = ["evaluate", str(undecided_model), "--n-test", "16", "--splits", "test_gan", "--output", str(output)]
    assert main(args) == 0
    scores = json.loads(output.read_text())["splits"]["test_gan"]
    assert (scores["real_accuracy"], scores["fake_accuracy"], scores["accuracy"]) == (1.0, 0.0, 0.5)
    capsys.readouterr()

    image = image_folder / "image_0.png"
    assert main(["predict", str(undecided_model), str(image), "--format", "jsonl"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert (row["fake_probability"], row["label"]) == (0.5, "real")
    assert pipeline("image-classification", model=str(undecided_model))(str(image))[0]["label"] == "real"


def test_console_script_predicts_in_a_real_subprocess(model_dir, image_folder, tmp_path):
    output = tmp_path / "predictions.jsonl"
    corit = shutil.which("corit", path=sysconfig.get_path("scripts"))
    assert corit, "the corit console script is not installed in this environment"
    target = str(image_folder / "nested")
    result = subprocess.run([corit, "predict", str(model_dir), target, "--output", str(output)], capture_output=True)
    assert result.returncode == 0, result.stderr.decode()
    (row,) = [json.loads(line) for line in output.read_text().splitlines()]
    assert set(row) == {"path", "fake_probability", "label"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["evaluate", "/no/such/model"], "model /no/such/model: no such folder."),
        (["predict", "/no/such/model", "/no/such/image.png"], "does not exist"),
        (["train", "--data", "/no/such/folder"], "no such folder"),
        (["train", "--batch-size", "0"], "--batch-size must be an integer >= 1"),
        (["study", "--sam-ascent-every", "0"], "--sam-ascent-every must be an integer >= 1"),
        (["study", "--rhos", "0.5", "1"], "--rhos must include 0"),
        (["predict", "/no/such/model", ".", "--output", "out.xlsx"], "--format"),
    ],
)
def test_bad_paths_and_values_fail_with_one_line(argv, message, capsys):
    assert main(argv) == 2
    errors = capsys.readouterr().err
    assert message in errors and "Traceback" not in errors


@pytest.mark.parametrize("command", ["train", "evaluate", "predict", "study", "distill"])
def test_help_explains_each_command(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"usage: corit {command}" in capsys.readouterr().out
