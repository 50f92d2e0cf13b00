"""Frame sampling, face detection and crops, video-level scores, and videos in `corit predict`."""

import csv
import json
from dataclasses import replace

import numpy as np
import pytest
from _videos import (
    ASTRONAUT_FACE,
    HOPPER_FACE,
    astronaut,
    forge_region,
    grace_hopper,
    moving_crops,
    remux,
    write_audio_only,
    write_video,
)
from PIL import Image
from skimage import data as skimage_data

from corit_hf.cli import main
from corit_hf.evaluation.collapse import collapse_report
from corit_hf.evaluation.video_scores import aggregate_videos, video_report
from corit_hf.video.faces import FaceBox, crop_face, crop_largest_faces, shared_detector
from corit_hf.video.frames import VideoLoadError, decode_positions, even_positions, index_video, sample_frames


FRAME_SIZE = (160, 120)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """A face video, a forged face video, a face-free video, and broken files, made with PyAV."""
    folder = tmp_path_factory.mktemp("videos")
    frames = moving_crops(astronaut(), 12, FRAME_SIZE)
    forged = [forge_region(frame, (40, 10, 110, 80), "gan", seed=i) for i, frame in enumerate(frames)]
    coffee = Image.fromarray(skimage_data.coffee())
    made = {
        "face": write_video(folder / "face.mp4", frames),
        "forged": write_video(folder / "forged.mp4", forged),
        "no_face": write_video(folder / "no_face.mp4", moving_crops(coffee, 6, FRAME_SIZE)),
        "audio": write_audio_only(folder / "audio.mp4"),
        "empty": folder / "empty.mp4",
        "text": folder / "text.mp4",
        "truncated": folder / "truncated.mp4",
    }
    made["faststart"] = remux(made["face"], folder / "faststart.mp4", movflags="faststart")
    whole = made["faststart"].read_bytes()
    (folder / "faststart_truncated.mp4").write_bytes(whole[: len(whole) * 2 // 3])  # index first, data cut
    made["faststart_truncated"] = folder / "faststart_truncated.mp4"
    corrupt = bytearray(made["face"].read_bytes())
    corrupt[len(corrupt) // 3 : len(corrupt) // 3 + 2000] = np.random.default_rng(0).bytes(2000)
    made["corrupt"] = folder / "corrupt.mp4"
    made["corrupt"].write_bytes(bytes(corrupt))
    made["empty"].write_bytes(b"")
    made["text"].write_text("not a video")
    whole = made["face"].read_bytes()
    made["truncated"].write_bytes(whole[: len(whole) // 2])
    return made


def test_frames_are_sampled_evenly_and_short_videos_give_all_frames(videos):
    sampled = sample_frames(videos["face"], 4)
    assert len(sampled.frames) == 4 and sampled.total_frames == 12
    assert sampled.times == pytest.approx([0.0, 0.4, 0.7, 1.1])  # nearest frames to 0, 1.1/3, 2.2/3, 1.1 s at 10 fps
    assert all(frame.size == FRAME_SIZE and frame.mode == "RGB" for frame in sampled.frames)
    assert len(sample_frames(videos["face"], 32).frames) == 12


def test_long_videos_seek_to_keyframes_and_get_the_frames_of_a_full_decode(tmp_path):
    frames = moving_crops(astronaut(), 40, FRAME_SIZE, step=1)
    path = write_video(tmp_path / "long.mp4", frames, codec="mpeg4", keyframe_interval=8)
    index = index_video(path)
    assert len(index.keyframes) == 5  # frames 0, 8, 16, 24, 32
    positions = even_positions(index, 4)
    sought = decode_positions(index, positions)  # seeks to the keyframes of frames 8, 24 and 32
    decoded = decode_positions(replace(index, keyframes=np.empty(0)), positions)  # every frame up to the last
    assert sought.positions == decoded.positions == [0, 13, 26, 39]
    assert sought.times == decoded.times
    assert [np.asarray(image).tobytes() for image in sought.frames] == [
        np.asarray(image).tobytes() for image in decoded.frames
    ]


def test_variable_frame_rate_is_sampled_evenly_in_time(tmp_path):
    times = [0.0, 0.05, 0.1, 0.15, 0.2, 1.0, 2.0, 3.0, 4.0, 5.0]  # a burst, then one frame a second
    path = write_video(tmp_path / "vfr.mp4", moving_crops(astronaut(), 10, FRAME_SIZE), times=times)
    assert sample_frames(path, 4).times == pytest.approx([0.0, 2.0, 3.0, 5.0])  # nearest to 0, 5/3, 10/3, 5


@pytest.mark.parametrize("rotation", [90, -90])
def test_rotation_metadata_is_applied(tmp_path, rotation):
    portrait = astronaut().crop((100, 0, 340, 320)).resize((96, 128))
    path = write_video(tmp_path / "phone.mp4", [portrait] * 3, rotation=rotation)
    frame = sample_frames(path, 1).frames[0]
    assert frame.size == portrait.size
    assert np.abs(np.asarray(frame, float) - np.asarray(portrait, float)).mean() < 8  # codec noise only


@pytest.mark.parametrize(
    "name, reason",
    [
        ("empty", "empty file"),
        ("text", "not a recognised image or video file"),
        ("truncated", "not a recognised image or video file"),
        ("faststart_truncated", r"truncated \(only \d+ of its 12 frames are in the file\)"),
        ("corrupt", "not a recognised image or video file|cannot be decoded"),
        ("audio", r"no video stream \(streams: audio\)"),
    ],
)
def test_unusable_videos_raise_a_readable_reason(videos, name, reason):
    with pytest.raises(VideoLoadError, match=reason):
        sample_frames(videos[name])


def test_frames_above_the_pixel_limit_are_refused(videos):
    with pytest.raises(VideoLoadError, match="above the limit"):
        sample_frames(videos["face"], max_pixels=100 * 100)


def _overlap(box: FaceBox, truth: tuple) -> float:
    x0, y0, x1, y1 = max(box.x0, truth[0]), max(box.y0, truth[1]), min(box.x1, truth[2]), min(box.y1, truth[3])
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    return inter / (box.area + (truth[2] - truth[0]) * (truth[3] - truth[1]) - inter)


@pytest.mark.parametrize("photo, truth", [(astronaut, ASTRONAUT_FACE), (grace_hopper, HOPPER_FACE)])
def test_faces_are_found_on_the_packaged_face_photos(photo, truth):
    faces = shared_detector().detect(photo())
    assert len(faces) == 1 and faces[0].score > 0.9
    assert _overlap(faces[0], truth) > 0.4


def test_no_face_on_face_free_photos():
    for photo in (skimage_data.coffee(), skimage_data.chelsea(), skimage_data.rocket()):
        assert shared_detector().detect(Image.fromarray(photo)) == []


def test_face_crop_is_a_square_of_1_3_times_the_box_inside_the_image():
    image = astronaut()
    box = FaceBox(200, 60, 260, 140, 0.99)  # 60 x 80: the crop side is 1.3 x 80 = 104
    assert box.crop_box(image.size) == (178, 48, 282, 152)
    assert crop_face(image, box).size == (104, 104)
    assert crop_face(image, box, size=224).size == (224, 224)
    corner = FaceBox(0, 0, 40, 40, 0.99)  # enlarged past the image edge: moved inside, not padded
    assert corner.crop_box(image.size) == (0, 0, 52, 52)
    huge = FaceBox(-50, -50, 600, 600, 0.99)  # larger than the image: shrunk to it
    assert huge.crop_box(image.size) == (0, 0, 512, 512)


def test_largest_face_crops_and_fallbacks():
    faceless = Image.fromarray(skimage_data.coffee())
    whole, skipped = crop_largest_faces([astronaut(), faceless], "whole", size=64)
    assert whole.image.size == (64, 64) and whole.box is not None
    assert skipped.image is faceless and skipped.box is None
    assert crop_largest_faces([faceless], "skip")[0].image is None
    with pytest.raises(ValueError, match="fallback"):
        crop_largest_faces([faceless], "blur")


def test_video_scores_match_a_hand_computation():
    probabilities = [0.9, 0.7, 0.1, 0.5, 0.0, 0.6, 0.8, 0.1]
    labels = [1, 1, 0, 0, 0, 1, 1, 1]
    videos = ["b", "b", "a", "a", "a", "c", "c", "d"]
    names, means, truth = aggregate_videos(probabilities, labels, videos)
    assert names == ["b", "a", "c", "d"]
    assert means == pytest.approx([0.8, 0.2, 0.7, 0.1]) and truth.tolist() == [1, 0, 1, 1]
    _, medians, _ = aggregate_videos(probabilities, labels, videos, "median")
    assert medians == pytest.approx([0.8, 0.1, 0.7, 0.1])
    report = video_report(probabilities, labels, videos)
    assert report == {
        f"video_{key}": value for key, value in collapse_report([0.8, 0.2, 0.7, 0.1], [1, 0, 1, 1]).items()
    }
    assert report["video_n"] == 4 and report["video_auc"] == pytest.approx(2 / 3)  # d (0.1) ranks below a (0.2)
    assert report["video_accuracy"] == 0.75
    with pytest.raises(ValueError, match="different labels"):
        aggregate_videos([0.1, 0.2], [0, 1], ["x", "x"])


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from corit_hf import CoritConfig, CoritForImageClassification

    folder = tmp_path_factory.mktemp("tiny")
    CoritForImageClassification(CoritConfig.from_preset("tiny")).save_pretrained(folder)
    return folder


def _read_csv(path):
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def test_predict_scores_videos_and_images_and_skips_bad_files(tiny_model, videos, tmp_path, capsys):
    photo = tmp_path / "photo.png"
    astronaut().save(photo)
    output = tmp_path / "predictions.csv"
    paths = [str(videos[name]) for name in ("face", "text", "audio", "forged")] + [str(photo)]
    args = ["predict", str(tiny_model), *paths, "--frames", "4", "--per-frame", "--output", str(output)]
    assert main(args) == 1
    rows = _read_csv(output)
    videos_rows = [row for row in rows if row["frame_time"] == ""]
    assert [row["path"] for row in videos_rows] == [str(videos["face"]), str(videos["forged"]), str(photo)]
    face_rows = [row for row in rows if row["path"] == str(videos["face"])]
    assert len(face_rows) == 5 and face_rows[0]["frames"] == "4" and face_rows[0]["faces"] == ""
    frame_probabilities = [float(row["fake_probability"]) for row in face_rows[1:]]
    assert float(face_rows[0]["fake_probability"]) == pytest.approx(np.mean(frame_probabilities), abs=1e-6)
    assert [row["frame_time"] for row in face_rows[1:]] == ["0.0", "0.4", "0.7", "1.1"]
    stderr = capsys.readouterr().err
    assert f"skipped {videos['text']}: not a recognised image or video file" in stderr
    assert f"skipped {videos['audio']}: no video stream" in stderr


def test_predict_with_faces_counts_faces_and_skips_faceless_videos(tiny_model, videos, tmp_path, capsys):
    output = tmp_path / "faces.jsonl"
    paths = [str(videos["face"]), str(videos["no_face"])]
    args = ["predict", str(tiny_model), *paths, "--frames", "3", "--faces", "--face-fallback", "skip"]
    assert main([*args, "--output", str(output)]) == 1
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["frames"] == 3 and rows[0]["faces"] == 3
    assert "no face found (in any of its 3 sampled frames)" in capsys.readouterr().err
    assert main([*args[:-2], "--output", str(output)]) == 0  # fallback "whole": both scored
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [(row["frames"], row["faces"]) for row in rows] == [(3, 3), (3, 0)]


def test_predict_median_aggregate(tiny_model, videos, tmp_path):
    output = tmp_path / "median.csv"
    args = ["predict", str(tiny_model), str(videos["forged"]), "--frames", "5", "--per-frame", "--aggregate", "median"]
    assert main([*args, "--output", str(output)]) == 0
    video, *frames = _read_csv(output)
    median = np.median([float(row["fake_probability"]) for row in frames])
    assert len(frames) == 5 and float(video["fake_probability"]) == pytest.approx(median, abs=1e-6)
