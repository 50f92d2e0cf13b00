"""`corit prepare`: every layout prepared and read back, resume after a real SIGKILL, the cache of raw folders,
`--frames K`, the records of broken files, and the same scores on prepared data as on the raw folder."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from _layouts import BLUE, LAYOUT_CASES, RED, make_layout
from _videos import (
    astronaut,
    moving_crops,
    place_clips,
    real_and_forged_clips,
    write_audio_only,
    write_video,
)
from datasets import Image as ImageFeature
from datasets import load_from_disk
from PIL import Image
from skimage import data as skimage_data

from corit_hf.cli import main
from corit_hf.data import load_forensic_folder
from corit_hf.data.preparation import workers
from corit_hf.data.preparation.prepare import prepare_dataset
from corit_hf.data.preparation.prepared import open_prepared
from corit_hf.data.preparation.prepared_format import PrepareOptions
from corit_hf.evaluation.video_scores import aggregate_videos
from corit_hf.video.inputs import FrameOptions


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """A real and a forged six-frame clip."""
    return real_and_forged_clips(tmp_path_factory.mktemp("clips"), 6)


def _records(folder: Path) -> dict[str, dict]:
    return {record["file"]: record for record in map(json.loads, (folder / "records.jsonl").read_text().splitlines())}


def _tree(folder: Path) -> dict[str, bytes]:
    """Every file of a folder (but the lock file) by relative path, with its bytes."""
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != ".corit-prepare.lock"
    }


@pytest.mark.parametrize("layout", LAYOUT_CASES, ids=list(LAYOUT_CASES))
def test_every_image_layout_prepares_and_reads_back(tmp_path, layout):
    folders, expected_splits = LAYOUT_CASES[layout]
    make_layout(tmp_path / "source", folders)
    summary = prepare_dataset([tmp_path / "source"], tmp_path / "prepared", num_proc=1, progress=False)
    assert summary.rows == expected_splits and summary.statuses == {"ok": sum(expected_splits.values())}
    prepared = open_prepared(tmp_path / "prepared")
    loaded, _ = load_forensic_folder(tmp_path / "source")
    assert {name: len(split) for name, split in prepared.items()} == expected_splits
    for name, split in prepared.items():
        assert sorted(split["family"]) == sorted(loaded[name]["family"])
        for row in split:
            assert row["image"].getpixel((0, 0)) == (RED if row["label"] == 0 else BLUE)
            assert (row["split"], row["width"], row["format"]) == (name, 8, "PNG")
    plain = load_from_disk(str(tmp_path / "prepared"))  # plain datasets opens it, memory-mapped, no copy
    assert all(split.cache_files for split in plain.values())


def test_video_layouts_prepare_like_the_folder_loader(clips, tmp_path):
    faceforensics = place_clips(
        clips,
        tmp_path / "ff",
        {
            "original_sequences/youtube/c23/videos/000.mp4": 0,
            "manipulated_sequences/Deepfakes/c23/videos/000_001.mp4": 1,
            "manipulated_sequences/Face2Face/c23/videos/001_000.mp4": 1,
        },
    )
    celeb = place_clips(clips, tmp_path / "celeb", {"Celeb-real/a.mp4": 0, "Celeb-synthesis/b.mp4": 1})
    (celeb / "List_of_testing_videos.txt").write_text("0 Celeb-synthesis/b.mp4\n")
    folders = place_clips(clips, tmp_path / "rf", {"real/a.mp4": 0, "fake/b.mp4": 1})
    options = PrepareOptions(frames=2)
    sources = [faceforensics, celeb, folders]
    summary = prepare_dataset(sources, tmp_path / "out", options, num_proc=2, progress=False)
    # FF++'s real video is decoded once for both method splits; the real/fake folders' `test` is taken by Celeb-DF
    assert summary.rows == {"train": 2, "test": 2, "test_Deepfakes": 4, "test_Face2Face": 4, "test_rf": 4}
    assert summary.statuses == {"ok": 7}
    prepared = open_prepared(tmp_path / "out")
    loaded, _ = load_forensic_folder(faceforensics, frame_options=FrameOptions(frames=2), frame_size=256)
    for name in ("test_Deepfakes", "test_Face2Face"):
        assert list(prepared[name]["video"]) == list(loaded[name]["video"])
        assert [np.asarray(row["image"]).tobytes() for row in prepared[name]] == [
            np.asarray(row["image"]).tobytes() for row in loaded[name]
        ]
    first = prepared["test_Deepfakes"][0]
    assert (first["frame_index"], first["time"], first["format"], first["width"]) == (0, 0.0, "h264", 64)
    assert set(prepared["train"]["video"]) == {"Celeb-real/a.mp4"}


def _kill_mid_run(command: list[str], output: Path) -> None:
    """Start `command`, SIGKILL it once a chunk is written and a later one has begun, and wait for it."""
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    work = output / ".prepare"
    deadline = time.monotonic() + 120
    while not (any(work.glob("records-*.jsonl")) and any(work.glob("journal-*.arrow"))):
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (output / "prepare.json").exists()


def _prepare_command(source: Path, output: Path, num_proc: int) -> list[str]:
    """`corit prepare` in a fresh interpreter, with chunks of 40 rows so a small folder spans several."""
    code = (
        "import sys, corit_hf.data.preparation.plan as plan; plan.CHUNK_ROWS = 40; from corit_hf.cli import main; "
        "sys.exit(main(sys.argv[1:]))"
    )
    return [sys.executable, "-c", code, "prepare", str(source), "--output", str(output), "--num-proc", str(num_proc)]


@pytest.fixture(scope="module")
def many_images(tmp_path_factory):
    """300 small images (half with alpha, so they are stored as PNG bytes) and a broken one."""
    root = tmp_path_factory.mktemp("many")
    rng = np.random.default_rng(0)
    for index in range(300):
        label = "real" if index % 2 else "fake"
        (root / label).mkdir(exist_ok=True)
        mode = "RGBA" if index % 4 < 2 else "RGB"
        pixels = rng.integers(0, 256, (24, 24, len(mode)), dtype=np.uint8)
        Image.fromarray(pixels, mode).save(root / label / f"{index:03d}.png")
    (root / "fake" / "broken.png").write_bytes(b"not an image")
    return root


def test_a_run_killed_with_sigkill_resumes_and_equals_an_uninterrupted_run(many_images, tmp_path):
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    subprocess.run(_prepare_command(many_images, whole, 1), cwd=REPO, check=True, capture_output=True)
    _kill_mid_run(_prepare_command(many_images, resumed, 2), resumed)
    finished = subprocess.run(_prepare_command(many_images, resumed, 2), cwd=REPO, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    assert "finished by an earlier run" in finished.stdout  # the files done before the kill were not redone
    assert _tree(resumed) == _tree(whole)  # same rows, same order, same bytes, whatever the processes


def test_ctrl_c_keeps_the_finished_work_and_the_same_command_resumes(many_images, tmp_path):
    output = tmp_path / "out"
    process = subprocess.Popen(_prepare_command(many_images, output, 2), cwd=REPO, stderr=subprocess.PIPE, text=True)
    while not any((output / ".prepare").glob("records-*.jsonl")):
        assert process.poll() is None
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130
    assert "run the same command again to resume" in process.stderr.read()
    again = subprocess.run(_prepare_command(many_images, output, 1), cwd=REPO, capture_output=True, text=True)
    assert again.returncode == 0 and "finished by an earlier run" in again.stdout
    assert _records(output)["fake/broken.png"]["status"] == "not_media"


def test_a_second_train_on_a_raw_folder_reuses_the_prepared_cache(tmp_path, monkeypatch, capsys):
    make_layout(tmp_path / "data", {"train/0_real": RED, "train/1_fake": BLUE, "val/0_real": RED, "val/1_fake": BLUE})
    cache = tmp_path / "cache"
    args = ["train", "--data", str(tmp_path / "data"), "--cache-dir", str(cache), "--max-steps", "1"]
    args += ["--batch-size", "2", "--gsnr-every", "0", "--output-dir", str(tmp_path / "model")]
    assert main(args) == 0
    assert len(list(cache.iterdir())) == 1

    def no_decoding(*args, **kwargs):
        raise AssertionError("a file was decoded again")

    monkeypatch.setattr("corit_hf.data.preparation.workers.prepare_file", no_decoding)
    capsys.readouterr()
    assert main(args) == 0
    assert f"Reusing the prepared dataset {next(cache.iterdir())}" in capsys.readouterr().err


def test_frames_k_uses_k_of_the_prepared_frames_evenly(clips, tmp_path):
    place_clips(clips, tmp_path / "source", {"real/a.mp4": 0, "fake/b.mp4": 1})
    prepare_dataset([tmp_path / "source"], tmp_path / "out", PrepareOptions(frames=5), num_proc=1, progress=False)
    five = open_prepared(tmp_path / "out")["test"]
    assert list(five["frame_index"]) == [0, 1, 2, 4, 5] * 2  # 5 of 6 frames, nearest to even times
    two = open_prepared(tmp_path / "out", frames=2)["test"]
    assert list(two["frame_index"]) == [0, 5, 0, 5] and list(two["video"]) == ["fake/b.mp4"] * 2 + ["real/a.mp4"] * 2
    with pytest.raises(ValueError, match="holds 5 frames per video, fewer than --frames 8"):
        open_prepared(tmp_path / "out", frames=8)
    with pytest.raises(ValueError, match="prepared without --faces"):
        open_prepared(tmp_path / "out", faces=True)


def _broken_files(clips, root: Path) -> None:
    """A real/fake folder with one file for every status."""
    place_clips(clips, root, {"real/ok.mp4": 0})
    (root / "fake").mkdir()
    write_video(root / "fake" / "short.mp4", moving_crops(astronaut(), 2, (64, 48)))
    write_audio_only(root / "fake" / "audio.mp4")
    whole = clips[0].read_bytes()
    (root / "fake" / "cut.mp4").write_bytes(whole[: len(whole) // 2])
    (root / "fake" / "empty.mp4").write_bytes(b"")
    (root / "fake" / "notes.txt").write_text("not media")
    astronaut().save(root / "real" / "photo.jpg", quality=90)
    small = root / "real" / "truncated.jpg"
    astronaut().resize((200, 200)).save(small, quality=90)
    small.write_bytes(small.read_bytes()[:3000])
    Image.new("RGB", (600, 600)).save(root / "real" / "huge.png")
    portrait = astronaut().crop((100, 0, 340, 320)).resize((48, 64))
    write_video(root / "real" / "phone.mp4", [portrait] * 4, rotation=90)
    times = [0.0, 0.05, 0.1, 1.0, 2.0, 3.0]  # a burst, then one frame a second
    write_video(root / "fake" / "vfr.mp4", moving_crops(astronaut(), 6, (64, 48)), times=times)


def test_every_status_of_broken_files_is_recorded(clips, tmp_path):
    _broken_files(clips, tmp_path / "source")
    options = PrepareOptions(frames=4, max_pixels=300 * 300)
    summary = prepare_dataset([tmp_path / "source"], tmp_path / "out", options, num_proc=2, progress=False)
    records = _records(tmp_path / "out")
    assert {name: record["status"] for name, record in records.items()} == {
        "fake/audio.mp4": "no_video",
        "fake/cut.mp4": "not_media",
        "fake/empty.mp4": "empty",
        "fake/notes.txt": "not_media",
        "fake/vfr.mp4": "ok",
        "real/phone.mp4": "ok",
        "fake/short.mp4": "partial",
        "real/huge.png": "too_large",
        "real/ok.mp4": "ok",
        "real/photo.jpg": "too_large",
        "real/truncated.jpg": "truncated",
    }
    assert (
        records["fake/short.mp4"]["reason"] == "the video has only 2 frames" and records["fake/short.mp4"]["rows"] == 2
    )
    assert "no video stream" in records["fake/audio.mp4"]["reason"]
    assert summary.rows == {"test": 4 + 2 + 4 + 4} and "fake/cut.mp4: not a recognised image or video file" in str(
        summary
    )
    rows = open_prepared(tmp_path / "out")["test"]
    phone = [row for row in rows if row["file"] == "real/phone.mp4"]
    assert {(row["width"], row["height"], row["image"].size) for row in phone} == {(48, 64, (48, 64))}  # upright
    assert [row["time"] for row in rows if row["file"] == "fake/vfr.mp4"] == pytest.approx([0.0, 1.0, 2.0, 3.0])


@pytest.mark.parametrize("num_proc", [1, 2])
def test_a_file_that_crashes_its_decoder_is_recorded_and_the_others_prepared(tmp_path, monkeypatch, num_proc):
    make_layout(tmp_path / "source", {"0_real": RED, "1_fake": BLUE})
    prepare_file = workers.prepare_file

    def crashing_on_one_file(task, *args):
        if task.path.endswith("1_fake/1.png"):
            os.kill(os.getpid(), signal.SIGKILL)  # as a crash in a native decoder, or the OOM killer, ends it
        return prepare_file(task, *args)

    monkeypatch.setattr(workers, "prepare_file", crashing_on_one_file)
    summary = prepare_dataset([tmp_path / "source"], tmp_path / "out", num_proc=num_proc, progress=False)
    records = _records(tmp_path / "out")
    crashed = {name: record for name, record in records.items() if record["status"] != "ok"}
    assert list(crashed) == ["1_fake/1.png"] and crashed["1_fake/1.png"]["status"] == "crashed"
    assert len(records) == 4 and summary.rows == {"test": 3} and "1_fake/1.png: its decoding killed" in str(summary)
    assert sorted(open_prepared(tmp_path / "out")["test"]["file"]) == ["0_real/0.png", "0_real/1.png", "1_fake/0.png"]


def test_faces_replace_frames_without_a_face_and_record_videos_without_any(tmp_path):
    frames = moving_crops(astronaut(), 9, (160, 120))
    coffee = Image.fromarray(skimage_data.coffee()).resize((160, 120))
    frames[4] = coffee  # the middle sampled frame has no face: a nearby frame takes its place
    write_video(tmp_path / "source" / "real" / "face.mp4", frames)
    write_video(tmp_path / "source" / "fake" / "none.mp4", [coffee] * 4)
    options = PrepareOptions(frames=3, faces=True, face_fallback="skip", size=48)
    prepare_dataset([tmp_path / "source"], tmp_path / "out", options, num_proc=1, progress=False)
    records = _records(tmp_path / "out")
    assert records["real/face.mp4"]["status"] == "ok" and records["real/face.mp4"]["replaced"] == 1
    assert records["fake/none.mp4"]["status"] == "no_face"
    rows = open_prepared(tmp_path / "out", faces=True, face_fallback="skip")["test"]
    assert list(rows["frame_index"]) == [0, 3, 8] and all(box is not None for box in rows["box"])
    assert all(row["image"].size == (48, 48) for row in rows)
    with pytest.raises(ValueError, match="prepared with --faces"):
        open_prepared(tmp_path / "out", faces=False)


def test_an_output_with_other_options_or_foreign_files_is_refused(tmp_path, capsys):
    make_layout(tmp_path / "source", {"real": RED, "fake": BLUE})
    output = tmp_path / "out"
    assert main(["prepare", str(tmp_path / "source"), "--output", str(output), "--num-proc", "1"]) == 0
    assert main(["prepare", str(tmp_path / "source"), "--output", str(output), "--frames", "8"]) == 2
    assert "other options or sources (frames 32 -> 8); pass --overwrite" in capsys.readouterr().err
    assert main(["prepare", str(tmp_path / "source"), "--output", str(output), "--frames", "8", "--overwrite"]) == 0
    assert json.loads((output / "prepare.json").read_text())["options"]["frames"] == 8
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "thesis.tex").write_text("keep me")
    assert main(["prepare", str(tmp_path / "source"), "--output", str(tmp_path / "other"), "--overwrite"]) == 2
    assert "holds no corit preparation" in capsys.readouterr().err
    assert (tmp_path / "other" / "thesis.tex").is_file()


def test_a_full_disk_is_one_clear_error_and_the_same_command_resumes(many_images, tmp_path):
    output = tmp_path / "out"
    command = _prepare_command(many_images, output, 1)
    limit = "import resource, signal; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
    limit += "resource.setrlimit(resource.RLIMIT_FSIZE, (6000, 6000)); "
    command[2] = limit + command[2]  # files above 6 kB cannot be written, as on a full disk
    failed = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert failed.returncode == 2, failed.stderr
    assert "corit prepare: error: cannot write the prepared dataset to" in failed.stderr
    assert "run the same command again to resume" in failed.stderr
    finished = subprocess.run(_prepare_command(many_images, output, 2), cwd=REPO, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    assert len(open_prepared(output)["test"]) == 300


def test_an_unwritable_output_is_one_clear_error(tmp_path, capsys):
    make_layout(tmp_path / "source", {"real": RED, "fake": BLUE})
    (tmp_path / "file").write_text("in the way")
    assert main(["prepare", str(tmp_path / "source"), "--output", str(tmp_path / "file" / "out")]) == 2
    assert "corit prepare: error: cannot write the prepared dataset to" in capsys.readouterr().err


def test_commands_on_prepared_data_score_as_on_the_raw_folder(clips, tmp_path):
    source = place_clips(clips, tmp_path / "source", {"real/r.mp4": 0, "fake/f.mp4": 1})
    astronaut().resize((64, 64)).save(source / "real" / "photo.png")
    Image.new("RGBA", (40, 40), (0, 0, 255, 90)).save(source / "fake" / "alpha.png")
    model = tmp_path / "model"
    train = ["train", "--max-steps", "1", "--batch-size", "4", "--n-train", "8", "--n-test", "8", "--rho", "0"]
    assert main([*train, "--gsnr-every", "0", "--output-dir", str(model)]) == 0
    prepared = tmp_path / "prepared"
    assert main(["prepare", str(source), "--output", str(prepared), "--frames", "3", "--num-proc", "1"]) == 0
    scores = {}
    for name, data in (("raw", source), ("prepared", prepared)):
        output = tmp_path / f"{name}.json"
        command = ["evaluate", str(model), "--data", str(data), "--frames", "2", "--output", str(output)]
        assert main([*command, "--cache-dir", str(tmp_path / "cache")]) == 0
        scores[name] = json.loads(output.read_text())["splits"]
    assert scores["raw"] == scores["prepared"] and scores["raw"]["test"]["video_n"] == 4
    for name, data in (("raw", source), ("prepared", prepared)):
        command = ["predict", str(model), str(data), "--frames", "3", "--per-frame"]
        assert main([*command, "--output", str(tmp_path / f"{name}.csv")]) == 0
    raw, ready = (list(csv.DictReader(open(tmp_path / f"{name}.csv"))) for name in ("raw", "prepared"))
    probability = "fake_probability"
    assert [{**row, probability: ""} for row in ready] == [{**row, probability: ""} for row in raw]
    assert [float(row[probability]) for row in ready] == pytest.approx([float(row[probability]) for row in raw])
    assert len(raw) == 2 + 2 * (1 + 3)  # two images, two videos with a row per frame


def test_aggregate_videos_matches_a_reference_and_scales_with_frames():
    rng = np.random.default_rng(0)
    videos = rng.integers(0, 100_000, 300_000).astype(str)  # about 95,000 videos: quadratic would not finish
    probabilities = rng.random(len(videos))
    labels = (np.char.str_len(videos) % 2).astype(int)  # one label per video
    names, scores, truth = aggregate_videos(probabilities, labels, videos, "median")
    assert names == list(dict.fromkeys(videos))
    for name in names[:50]:
        members = videos == name
        assert scores[names.index(name)] == np.median(probabilities[members])
        assert truth[names.index(name)] == labels[members][0]
    with pytest.raises(ValueError, match="different labels"):
        aggregate_videos([0.1, 0.2], [0, 1], ["a", "a"])
    assert aggregate_videos([], [], []) == ([], pytest.approx([]), pytest.approx([]))


def test_prepare_cli_prints_a_summary_and_records_embedded_images(tmp_path, capsys):
    make_layout(tmp_path / "source", {"real": RED, "fake": BLUE})
    output = tmp_path / "out"
    assert main(["prepare", str(tmp_path / "source"), "--output", str(output), "--embed", "--num-proc", "2"]) == 0
    out = capsys.readouterr().out
    assert "4 source files" in out and "rows: test 4" in out and "files: ok 4" in out
    plain = load_from_disk(str(output))["test"]  # embedded: plain datasets decodes it anywhere
    assert {plain[i]["image"].getpixel((0, 0)) for i in range(4)} == {RED, BLUE}
    assert (
        os.path.relpath(tmp_path / "source", output)
        == json.loads((output / "prepare.json").read_text())["sources"][0]["relative_root"]
    )


def _mixed_source(root: Path) -> Path:
    """A real/fake folder of unchanged RGB images (stored by reference) and RGBA ones (stored converted)."""
    make_layout(root, {"real": RED, "fake": BLUE})
    Image.new("RGBA", (8, 8), (*RED, 255)).save(root / "real" / "alpha.png")
    return root


def _every_colour(split) -> list[tuple]:
    """Every row's first pixel, each image decoded."""
    return sorted(split[index]["image"].convert("RGB").getpixel((0, 0)) for index in range(len(split)))


def test_load_from_disk_reads_every_row_of_a_reference_preparation_from_any_folder(tmp_path, monkeypatch):
    source = _mixed_source(tmp_path / "source")
    assert main(["prepare", str(source), "--output", str(tmp_path / "out"), "--num-proc", "1"]) == 0
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    plain = load_from_disk(str(tmp_path / "out"))["test"]
    assert _every_colour(plain) == [BLUE, BLUE, RED, RED, RED]
    stored = plain.cast_column("image", ImageFeature(decode=False))["image"]
    assert sum(image["bytes"] is None for image in stored) == 4  # referenced, not embedded


def test_a_moved_or_copied_preparation_still_opens_and_a_moved_source_is_found(tmp_path):
    source = _mixed_source(tmp_path / "pair" / "source")
    prepare_dataset([source], tmp_path / "pair" / "out", num_proc=1, progress=False)
    shutil.copytree(tmp_path / "pair" / "out", tmp_path / "copy")  # the source stays where it was prepared
    assert _every_colour(open_prepared(tmp_path / "copy")["test"]) == [BLUE, BLUE, RED, RED, RED]
    (tmp_path / "pair").rename(tmp_path / "moved")  # the prepared folder and its source move together
    assert _every_colour(open_prepared(tmp_path / "moved" / "out")["test"]) == [BLUE, BLUE, RED, RED, RED]
    with pytest.raises(FileNotFoundError):  # the stored absolute paths are gone: plain datasets cannot follow
        _every_colour(load_from_disk(str(tmp_path / "moved" / "out"))["test"])
    again = prepare_dataset([tmp_path / "moved" / "source"], tmp_path / "moved" / "out", num_proc=1, progress=False)
    assert not again.reused  # prepared again for the source's new path
    assert _every_colour(load_from_disk(str(tmp_path / "moved" / "out"))["test"]) == [BLUE, BLUE, RED, RED, RED]
