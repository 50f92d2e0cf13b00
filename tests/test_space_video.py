"""Videos in the demo app: score, frame strip with face boxes, per-frame probability plot, bad videos."""

import pytest
from _app_inputs import photo_png, save_tiny_model
from _videos import astronaut, moving_crops, write_audio_only, write_video
from gradio_client import Client, handle_file
from PIL import Image
from test_space import served

from corit_hf.app.space import analyse_uploads, load_detector
from corit_hf.app.video import SPACE_FRAMES, STRIP_COLUMNS, STRIP_HEIGHT


@pytest.fixture(scope="module")
def uploads(tmp_path_factory):
    folder = tmp_path_factory.mktemp("space_video")
    return {
        "model": save_tiny_model(folder / "model"),
        "clip": write_video(folder / "clip.mp4", moving_crops(astronaut(), 20, (160, 120))),
        "audio": write_audio_only(folder / "voice.mp4"),
        "photo": photo_png(folder / "photo.png"),
        "folder": folder,
    }


def test_a_video_gets_its_score_a_frame_strip_and_a_probability_plot(uploads):
    detector = load_detector(str(uploads["model"]))
    paths = [str(uploads[name]) for name in ("photo", "clip", "audio")]
    status, results, gallery, contributions = analyse_uploads(detector, paths, uploads["folder"] / "out")

    assert status.startswith("Analysed 1 image and 1 video.")
    assert "- voice.mp4: no video stream (streams: audio)" in status
    assert results["image"].tolist() == ["photo.png", "clip.mp4"]
    assert 0.0 <= results["fake probability"].iloc[1] <= 1.0
    assert set(contributions["image"]) == {"photo.png"}  # layer contributions are for images
    heatmap, (strip_path, strip_caption), (plot_path, plot_caption) = gallery
    assert strip_caption.startswith("clip.mp4: ") and f"mean of {SPACE_FRAMES} frames, 16 with a face" in strip_caption
    with Image.open(strip_path) as strip:
        assert strip.size == (STRIP_COLUMNS * 160, 2 * STRIP_HEIGHT)  # 16 frames of 160x120, 8 a row
    assert plot_caption == "clip.mp4: P(fake) per frame"
    with Image.open(plot_path) as plot:
        assert plot.size == (640, 240)


def test_videos_upload_through_the_api(uploads):
    with served(str(uploads["model"])) as url:
        status, results, gallery, _ = Client(url, verbose=False).predict(
            [handle_file(str(uploads["clip"]))], api_name="/analyse"
        )
    assert status == "Analysed 1 video."
    assert [row[0] for row in results["data"]] == ["clip.mp4"]
    assert len(gallery) == 2
