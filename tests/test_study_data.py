"""`corit study --data` on small image and video folders: test splits from --test-data, the in-domain split,
seeded class-balanced subsets, video-level AUCs; and --test-data for `corit train` and `corit evaluate`."""

import csv
import json

import pytest
from _layouts import BLUE, RED, make_layout
from _videos import astronaut, forge_region, grace_hopper, moving_crops, write_video
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from corit_hf.cli import main
from corit_hf.data import build_benchmark, write_benchmark_folder
from corit_hf.data.splits import balanced_subset


RUN = ["--rhos", "0", "--configs", "baseline", "--max-steps", "2", "--batch-size", "8", "--gsnr-every", "2"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """`train_data` (train, validation, test_gan), and two folders to test on: `vae` (a plain `test` split) and
    `more` (a `test_gan` split, which clashes with the training data's)."""
    root = tmp_path_factory.mktemp("folders")
    splits = build_benchmark(n_train=24, n_test=12, test_families=["gan", "vae"], progress=False)
    write_benchmark_folder(
        DatasetDict({name: splits[name] for name in ("train", "validation", "test_gan")}), root / "train_data"
    )
    write_benchmark_folder(DatasetDict({"test": splits["test_vae"]}), root / "vae")
    write_benchmark_folder(DatasetDict({"test_gan": splits["test_gan"]}), root / "more")
    return root


def study(output, data, *flags: str) -> int:
    return main(["study", *RUN, "--data", str(data), *flags, "--workers", "1", "--output-dir", str(output)])


@pytest.fixture(scope="module")
def folder_study(folders, tmp_path_factory):
    output = tmp_path_factory.mktemp("folder_study")
    test_data = ["--test-data", str(folders / "vae"), str(folders / "more")]
    assert (
        study(output, folders / "train_data", *test_data, "--n-train", "16", "--n-test", "8", "--data-workers", "1")
        == 0
    )
    return output


def test_a_study_on_folders_scores_every_test_split_under_a_unique_name(folder_study, folders):
    cell = json.loads((folder_study / "cells" / "tiny_baseline_rho0_seed0.json").read_text())
    assert list(cell["splits"]) == ["validation", "test_gan", "test_vae", "test_gan_more"]
    assert all(scores["n"] == 8 for scores in cell["splits"].values())  # --n-test: 4 real and 4 fake each
    assert cell["settings"]["data"] == str(folders / "train_data")
    assert cell["settings"]["augment"] == "blur-jpeg"  # folders train with the field's augmentation by default
    summary = json.loads((folder_study / "study.json").read_text())
    assert summary["in_domain_split"] == "validation"
    row = summary["configs"]["baseline"]["rows"][0]
    assert row["auc_mean"] == cell["splits"]["validation"]["auc"]
    unseen = [cell["splits"][name]["auc"] for name in ("test_gan", "test_vae", "test_gan_more")]
    assert row["unseen_auc_mean"] == pytest.approx(sum(unseen) / 3)
    assert f"Trained on `{folders / 'train_data'}` (16 images" in (folder_study / "study.md").read_text()


def test_in_domain_picks_the_cor_split_without_retraining(folder_study, folders):
    cell = folder_study / "cells" / "tiny_baseline_rho0_seed0.json"
    written = cell.stat().st_mtime_ns
    test_data = ["--test-data", str(folders / "vae"), str(folders / "more")]
    flags = [*test_data, "--n-train", "16", "--n-test", "8", "--in-domain", "test_vae"]
    assert study(folder_study, folders / "train_data", *flags) == 0
    assert cell.stat().st_mtime_ns == written
    summary = json.loads((folder_study / "study.json").read_text())
    assert summary["in_domain_split"] == "test_vae"
    vae_auc = json.loads(cell.read_text())["splits"]["test_vae"]["auc"]
    assert summary["configs"]["baseline"]["rows"][0]["auc_mean"] == vae_auc
    flags[-1] = "test_nothing"  # every cell is there, but no split of that name
    assert study(folder_study, folders / "train_data", *flags) == 2


def test_a_missing_in_domain_split_is_one_clear_error(folders, tmp_path, capsys):
    assert study(tmp_path, folders / "train_data", "--in-domain", "test_nothing") == 2
    assert "no split 'test_nothing'" in capsys.readouterr().err
    make_layout(
        tmp_path / "generators", {"guided/0_real": RED, "guided/1_fake": BLUE, "ldm/0_real": RED, "ldm/1_fake": BLUE}
    )
    assert study(tmp_path, tmp_path / "generators") == 2  # two test splits: none says what to train on
    assert "has no train split and 2 splits (test_guided, test_ldm)" in capsys.readouterr().err
    saved = tmp_path / "saved"
    splits = build_benchmark(n_train=4, n_test=4, test_families=["gan"], progress=False)
    DatasetDict({"train": splits["train"], "validation": splits["validation"]}).save_to_disk(str(saved))
    assert study(tmp_path, saved) == 2  # the in-domain split alone: nothing unseen to test on
    assert "add --test-data" in capsys.readouterr().err
    assert main(["study", "--test-data", str(folders / "vae")]) == 2
    assert "--test-data needs --data" in capsys.readouterr().err


def labelled(labels: list[int], videos: list[str] | None = None) -> Dataset:
    columns = {"label": labels, **({"video": videos} if videos else {})}
    features = {"label": ClassLabel(names=["real", "fake"]), **({"video": Value("string")} if videos else {})}
    return Dataset.from_dict(columns, features=Features(features))


def test_subsets_are_class_balanced_and_seeded():
    data = labelled([0] * 30 + [1] * 70)
    subset = balanced_subset(data, 20, seed=1)
    assert sorted(subset["label"]) == [0] * 10 + [1] * 10
    assert balanced_subset(data, 20, seed=1)["label"] == subset["label"]
    indexed = data.add_column("row", list(range(100)))
    assert balanced_subset(indexed, 20, seed=1)["row"] != balanced_subset(indexed, 20, seed=2)["row"]
    assert sorted(balanced_subset(data, 80)["label"]) == [0] * 30 + [1] * 40  # a short class is kept whole
    assert len(balanced_subset(data, None)) == 100


def test_video_subsets_keep_whole_videos():
    videos = [f"v{index // 4}" for index in range(40)]  # 10 videos of 4 frames, the first 5 real
    subset = balanced_subset(labelled([0] * 20 + [1] * 20, videos), 4)
    kept = {video: subset["video"].count(video) for video in set(subset["video"])}
    assert len(kept) == 4 and set(kept.values()) == {4}
    assert sorted(subset["label"]) == [0] * 8 + [1] * 8


@pytest.fixture(scope="module")
def video_folder(tmp_path_factory):
    """train/ and val/ folders with two real and two fake videos each (fakes: a forged face region)."""
    root = tmp_path_factory.mktemp("videos")
    for split in ("train", "val"):
        for index, (photo, face) in enumerate([(astronaut(), (50, 20, 110, 80)), (grace_hopper(), (40, 30, 100, 90))]):
            frames = moving_crops(photo, 6, (160, 120), step=2 + index)
            write_video(root / split / "real" / f"{index}.mp4", frames)
            write_video(root / split / "fake" / f"{index}.mp4", [forge_region(f, face, "gan", index) for f in frames])
    return root


def test_a_study_on_videos_gives_video_level_aucs(video_folder, tmp_path):
    flags = ["--test-data", str(video_folder / "val"), "--frames", "3", "--n-test", "2", "--augment", "none"]
    assert study(tmp_path, video_folder, *flags) == 0
    cell = json.loads((tmp_path / "cells" / "tiny_baseline_rho0_seed0.json").read_text())
    assert list(cell["splits"]) == ["validation", "test_val"]
    scores = cell["splits"]["validation"]
    assert (scores["video_n"], scores["n"]) == (2, 6)  # --n-test counts videos: one real and one fake, 3 frames each
    assert 0 <= scores["video_auc"] <= 1
    summary = json.loads((tmp_path / "study.json").read_text())
    video_aucs = summary["configs"]["baseline"]["rows"][0]["split_video_auc_mean"]
    assert video_aucs == {name: cell["splits"][name]["video_auc"] for name in ("validation", "test_val")}
    (row,) = csv.DictReader((tmp_path / "study.csv").open())
    assert float(row["video_auc_validation"]) == pytest.approx(scores["video_auc"])


def test_a_study_on_prepared_videos_equals_the_raw_folders_and_decodes_nothing(video_folder, tmp_path, monkeypatch):
    prepared = {"train": tmp_path / "ffpp", "test": tmp_path / "celeb"}
    assert main(["prepare", str(video_folder), "--output", str(prepared["train"]), "--frames", "3"]) == 0
    assert main(["prepare", str(video_folder / "val"), "--output", str(prepared["test"]), "--frames", "3"]) == 0
    common = ["--n-test", "2", "--augment", "none"]
    raw_test = ["--test-data", str(video_folder / "val"), "--frames", "3"]
    assert study(tmp_path / "raw", video_folder, *raw_test, *common) == 0

    def no_decoding(*args, **kwargs):
        raise AssertionError("a file was decoded during the study")

    monkeypatch.setattr("corit_hf.data.preparation.workers.prepare_file", no_decoding)
    assert study(tmp_path / "ready", prepared["train"], "--test-data", str(prepared["test"]), *common) == 0
    cell = "cells/tiny_baseline_rho0_seed0.json"
    raw, ready = (json.loads((tmp_path / name / cell).read_text()) for name in ("raw", "ready"))
    assert list(ready["splits"]) == ["validation", "test_celeb"]
    assert ready["splits"]["validation"]["video_n"] == 2 and ready["splits"]["test_celeb"]["video_n"] == 2
    assert ready["splits"]["validation"] == raw["splits"]["validation"]
    assert ready["splits"]["test_celeb"] == raw["splits"]["test_val"]


def test_train_and_evaluate_take_test_data(folders, tmp_path):
    model = tmp_path / "model"
    argv = ["train", "--data", str(folders / "train_data"), "--test-data", str(folders / "vae"), "--max-steps", "1"]
    assert main([*argv, "--batch-size", "8", "--gsnr-every", "0", "--output-dir", str(model)]) == 0
    metrics = json.loads((model / "metrics.json").read_text())
    assert list(metrics["test"]) == ["test_vae"] and metrics["test"]["test_vae"]["n"] == 12

    output = tmp_path / "results.json"
    argv = [
        "evaluate",
        str(model),
        "--test-data",
        str(folders / "vae"),
        str(folders / "more"),
        "--output",
        str(output),
    ]
    assert main(argv) == 0
    assert list(json.loads(output.read_text())["splits"]) == ["test_vae", "test_gan"]
    argv = ["evaluate", str(model), "--data", str(folders / "train_data"), "--test-data", str(folders / "more")]
    assert main([*argv, "--output", str(output)]) == 0
    assert list(json.loads(output.read_text())["splits"]) == ["test_gan", "test_gan_more"]
