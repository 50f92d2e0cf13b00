"""Every kind of bad file reads the same in `corit predict` (on files and on a prepared folder), `corit prepare`
and the Space: one wording per kind, from `bad_files.PROBLEMS`."""

import io
import re
import struct
from pathlib import Path

import pytest
from _app_inputs import photo_png, save_tiny_model
from _videos import astronaut, moving_crops, remux, write_audio_only, write_video
from PIL import Image

from corit_hf.app.space import analyse_videos, load_detector, open_uploads
from corit_hf.cli import main


WORDING = {
    "empty.png": "empty file",
    "empty.mp4": "empty file",
    "notes.png": "not a recognised image or video file",
    "notes.mp4": "not a recognised image or video file",
    "truncated.jpg": "truncated",
    "truncated.mp4": "truncated (only N of its 8 frames are in the file)",  # N depends on the encoder
    "huge.png": "too large (400 megapixels, above the limit of 64 megapixels)",
    "corrupt.png": "cannot be decoded (broken data stream when reading image file)",
    "audio.mp4": "no video stream (streams: audio)",
}
"""One broken file of each kind, and what every command says about it."""


@pytest.fixture(scope="module")
def broken_folder(tmp_path_factory) -> Path:
    """A real/fake folder: a good photo in each class, and the broken files of WORDING under fake/."""
    root = tmp_path_factory.mktemp("broken")
    real, fake = root / "real", root / "fake"
    for folder in (real, fake):
        folder.mkdir()
        photo_png(folder / "photo.png")
    (fake / "empty.png").write_bytes(b"")
    (fake / "empty.mp4").write_bytes(b"")
    (fake / "notes.png").write_text("meeting notes, not a picture\n")
    (fake / "notes.mp4").write_text("meeting notes, not a video\n")
    jpeg = io.BytesIO()
    astronaut().resize((200, 200)).save(jpeg, "JPEG", quality=90)
    (fake / "truncated.jpg").write_bytes(jpeg.getvalue()[:3000])
    clip = remux(
        write_video(root / "clip.mp4", moving_crops(astronaut(), 8, (64, 48))),
        root / "index_first.mp4",
        movflags="faststart",
    )
    whole = clip.read_bytes()
    (fake / "truncated.mp4").write_bytes(whole[: len(whole) * 3 // 4])  # the index says 8 frames; fewer are left
    Image.new("1", (20000, 20000)).save(fake / "huge.png")  # 400 megapixels in a few kB
    (fake / "corrupt.png").write_bytes(_zeroed_pixel_data((real / "photo.png").read_bytes()))
    write_audio_only(fake / "audio.mp4")
    return root


def _zeroed_pixel_data(png: bytes) -> bytes:
    """A PNG whose header is intact and whose compressed pixel data (IDAT) is all zeros: it opens, then fails."""
    start = png.index(b"IDAT")
    length = struct.unpack(">I", png[start - 4 : start])[0]
    return png[: start + 4] + bytes(length) + png[start + 4 + length :]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("model"))


def test_predict_prepare_and_the_space_word_each_bad_file_the_same(broken_folder, model, tmp_path, capsys):
    fake = broken_folder / "fake"
    assert main(["predict", str(model), str(fake), "--frames", "2"]) == 1
    assert _skipped(capsys.readouterr().err, "corit predict: skipped ") == {
        str(fake / name): wording for name, wording in WORDING.items()
    }

    prepared = tmp_path / "prepared"
    assert main(["prepare", str(broken_folder), "--output", str(prepared), "--frames", "2", "--num-proc", "1"]) == 0
    listed = _skipped(capsys.readouterr().out, "  fake/")
    assert listed == WORDING

    assert main(["predict", str(model), str(prepared)]) == 1
    assert _skipped(capsys.readouterr().err, "corit predict: skipped ") == {
        str(fake / name): wording for name, wording in WORDING.items()
    }

    images, problems = open_uploads([str(path) for path in sorted(fake.iterdir()) if path.suffix != ".mp4"])
    videos = [str(path) for path in sorted(fake.iterdir()) if path.suffix == ".mp4"]
    problems += analyse_videos(load_detector(str(model)), videos, tmp_path)[2]
    assert len(images) == 1 and _skipped("\n".join(problems), "") == WORDING


def _skipped(output: str, prefix: str) -> dict[str, str]:
    """{file: reason} from `PREFIX file: reason` lines (the file names hold no ': '), frame counts left out."""
    lines = [line.removeprefix(prefix) for line in output.splitlines() if line.startswith(prefix)]
    return dict(re.sub(r"only \d+ of", "only N of", line).split(": ", 1) for line in lines if ": " in line)
