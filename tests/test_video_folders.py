"""FaceForensics++, Celeb-DF, DFDC and real/fake video layouts, and videos in `corit evaluate` and `corit train`."""

import json

import pytest
from _videos import astronaut, moving_crops, place_clips, real_and_forged_clips, write_video

from corit_hf.cli import main
from corit_hf.data import load_forensic_folder
from corit_hf.video.inputs import FrameOptions


TWO_FRAMES = FrameOptions(frames=2)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """A real and a forged three-frame clip to copy into the layouts."""
    return real_and_forged_clips(tmp_path_factory.mktemp("clips"), 3)


def _videos_by_split(dataset) -> dict[str, dict[str, int]]:
    return {
        name: {video: label for video, label in zip(split["video"], split["label"])} for name, split in dataset.items()
    }


def test_faceforensics_has_one_test_split_per_method(clips, tmp_path):
    root = place_clips(
        clips,
        tmp_path / "FaceForensics++",
        {
            "original_sequences/youtube/c23/videos/000.mp4": 0,
            "original_sequences/youtube/c23/videos/001.mp4": 0,
            "original_sequences/actors/c23/videos/01__walking.mp4": 0,
            "manipulated_sequences/Deepfakes/c23/videos/000_001.mp4": 1,
            "manipulated_sequences/Deepfakes/masks/videos/000_001.mp4": 1,
            "manipulated_sequences/Face2Face/c23/videos/001_000.mp4": 1,
            "manipulated_sequences/DeepFakeDetection/c23/videos/01_02__walking.mp4": 1,
        },
    )
    dataset, report = load_forensic_folder(root, frame_options=TWO_FRAMES)
    youtube = {f"original_sequences/youtube/c23/videos/00{i}.mp4": 0 for i in (0, 1)}
    assert _videos_by_split(dataset) == {
        "test_DeepFakeDetection": {
            "original_sequences/actors/c23/videos/01__walking.mp4": 0,
            "manipulated_sequences/DeepFakeDetection/c23/videos/01_02__walking.mp4": 1,
        },
        "test_Deepfakes": {**youtube, "manipulated_sequences/Deepfakes/c23/videos/000_001.mp4": 1},
        "test_Face2Face": {**youtube, "manipulated_sequences/Face2Face/c23/videos/001_000.mp4": 1},
    }
    assert report.loaded == {"test_DeepFakeDetection": 4, "test_Deepfakes": 6, "test_Face2Face": 6}  # 2 frames each
    assert report.videos == 6 and report.skipped == []
    assert set(dataset["test_Face2Face"]["family"]) == {"real", "Face2Face"}


def test_faceforensics_compressions_get_their_own_splits(clips, tmp_path):
    files = {f"original_sequences/youtube/{c}/videos/000.mp4": 0 for c in ("c23", "c40")}
    files.update({f"manipulated_sequences/FaceSwap/{c}/videos/000_001.mp4": 1 for c in ("c23", "c40")})
    dataset, _ = load_forensic_folder(place_clips(clips, tmp_path, files), frame_options=TWO_FRAMES)
    assert _videos_by_split(dataset)["test_FaceSwap_c40"] == {
        "original_sequences/youtube/c40/videos/000.mp4": 0,
        "manipulated_sequences/FaceSwap/c40/videos/000_001.mp4": 1,
    }
    assert list(dataset) == ["test_FaceSwap_c23", "test_FaceSwap_c40"]


def test_celeb_df_tests_the_listed_videos_and_trains_on_the_rest(clips, tmp_path):
    files = {
        "Celeb-real/id0_0000.mp4": 0,
        "YouTube-real/00000.mp4": 0,
        "Celeb-synthesis/id0_id1_0000.mp4": 1,
        "Celeb-synthesis/id0_id1_0001.mp4": 1,
    }
    root = place_clips(clips, tmp_path / "Celeb-DF-v2", files)
    # The list's own numbers mean 1 = real, 0 = synthesised; labels come from the folders.
    (root / "List_of_testing_videos.txt").write_text("1 YouTube-real/00000.mp4\n0 Celeb-synthesis/id0_id1_0001.mp4\n")
    dataset, _ = load_forensic_folder(root, frame_options=TWO_FRAMES)
    assert _videos_by_split(dataset) == {
        "train": {"Celeb-real/id0_0000.mp4": 0, "Celeb-synthesis/id0_id1_0000.mp4": 1},
        "test": {"YouTube-real/00000.mp4": 0, "Celeb-synthesis/id0_id1_0001.mp4": 1},
    }
    assert set(dataset["test"]["family"]) == {"real", "celeb-df"}


def test_dfdc_reads_labels_and_splits_from_metadata_and_skips_bad_videos(clips, tmp_path):
    root = place_clips(clips, tmp_path / "dfdc", {"part_0/aaa.mp4": 1, "part_0/bbb.mp4": 0, "part_1/ccc.mp4": 1})
    (root / "part_0" / "broken.mp4").write_text("not a video")
    metadata = {
        "aaa.mp4": {"label": "FAKE", "split": "train", "original": "bbb.mp4"},
        "bbb.mp4": {"label": "REAL", "split": "train"},
        "broken.mp4": {"label": "REAL", "split": "train"},
        "missing.mp4": {"label": "FAKE", "split": "train"},
    }
    (root / "part_0" / "metadata.json").write_text(json.dumps(metadata))
    (root / "part_1" / "metadata.json").write_text(json.dumps({"ccc.mp4": {"label": "FAKE"}}))
    dataset, report = load_forensic_folder(root, frame_options=TWO_FRAMES)
    assert _videos_by_split(dataset) == {
        "train": {"part_0/aaa.mp4": 1, "part_0/bbb.mp4": 0},
        "test": {"part_1/ccc.mp4": 1},
    }
    reasons = dict(report.skipped)
    assert reasons[str(root / "part_0" / "broken.mp4")] == "not a recognised image or video file"
    assert reasons[str(root / "part_0" / "missing.mp4")] == "file not found"


@pytest.fixture(scope="module")
def video_folder(clips, tmp_path_factory):
    """real/ and fake/ folders of videos, plus a still image and an unreadable video."""
    root = tmp_path_factory.mktemp("real_fake_videos")
    place_clips(clips, root, {"real/r1.mp4": 0, "real/r2.mp4": 0, "fake/f1.mp4": 1, "fake/f2.mp4": 1})
    astronaut().resize((64, 64)).save(root / "real" / "photo.png")
    (root / "fake" / "zero.mp4").write_bytes(b"")
    return root


def test_real_fake_folders_of_videos_become_frame_rows(video_folder):
    dataset, report = load_forensic_folder(video_folder, frame_options=FrameOptions(frames=3), frame_size=32)
    test = dataset["test"]
    assert sorted(set(test["video"])) == ["fake/f1.mp4", "fake/f2.mp4", "real/photo.png", "real/r1.mp4", "real/r2.mp4"]
    assert len(test) == 4 * 3 + 1 and report.videos == 4
    assert min(test[0]["image"].size) == 32  # stored at the requested size
    assert report.skipped == [(str(video_folder / "fake" / "zero.mp4"), "empty file")]
    assert "(4 videos as frames)" in report.summary()


def test_image_folders_keep_their_columns(tmp_path):
    for name in ("real", "fake"):
        (tmp_path / name).mkdir()
        astronaut().resize((32, 32)).save(tmp_path / name / "a.png")
    dataset, _ = load_forensic_folder(tmp_path)
    assert dataset["test"].column_names == ["image", "label", "family"]


def test_evaluate_reports_frame_and_video_scores(video_folder, tmp_path, capsys):
    model = tmp_path / "model"
    assert main(["train", "--max-steps", "1", "--batch-size", "4", "--n-train", "8", "--n-test", "8", "--rho", "0",
                 "--gsnr-every", "0", "--output-dir", str(model)]) == 0  # fmt: skip
    output = tmp_path / "eval.json"
    assert main(["evaluate", str(model), "--data", str(video_folder), "--frames", "2", "--output", str(output)]) == 0
    scores = json.loads(output.read_text())["splits"]["test"]
    assert scores["n"] == 4 * 2 + 1 and scores["video_n"] == 5
    assert {"auc", "ap", "accuracy", "eer", "video_auc", "video_ap", "video_accuracy", "video_eer"} <= set(scores)
    assert "per video:" in capsys.readouterr().out


def test_train_samples_frames_from_video_folders(clips, tmp_path):
    root = place_clips(clips, tmp_path / "celeb", {"Celeb-real/a.mp4": 0, "Celeb-synthesis/b.mp4": 1})
    (root / "List_of_testing_videos.txt").write_text("")
    output = tmp_path / "model"
    args = ["train", "--data", str(root), "--frames", "2", "--max-steps", "2", "--batch-size", "2", "--rho", "0.05"]
    assert main([*args, "--gsnr-every", "0", "--output-dir", str(output)]) == 0
    assert (output / "model.safetensors").is_file()


def test_faces_need_data_folders(tmp_path, capsys):
    assert main(["train", "--faces", "--max-steps", "1", "--output-dir", str(tmp_path)]) == 2
    assert "--faces crops faces of --data folders" in capsys.readouterr().err


def test_faces_crop_folder_images_and_frames(tmp_path):
    from PIL import Image
    from skimage import data as skimage_data

    write_video(tmp_path / "real" / "face.mp4", moving_crops(astronaut(), 3, (160, 120)))
    (tmp_path / "fake").mkdir()
    astronaut().save(tmp_path / "fake" / "face.png")
    Image.fromarray(skimage_data.coffee()).save(tmp_path / "fake" / "coffee.png")
    options = FrameOptions(frames=2, faces=True, face_fallback="skip")
    dataset, report = load_forensic_folder(tmp_path, frame_options=options, frame_size=48)
    assert sorted(dataset["test"]["video"]) == ["fake/face.png", "real/face.mp4", "real/face.mp4"]
    assert all(row["image"].size == (48, 48) for row in dataset["test"])  # square crops at the stored size
    assert report.skipped == [(str(tmp_path / "fake" / "coffee.png"), "no face found")]
    assert report.frames_without_face == 1
