"""The demo app, launched in-process and driven through `gradio_client` as an API user would."""

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from _app_inputs import bad_inputs, odd_but_valid_inputs, photo_png, save_tiny_model
from gradio_client import Client, handle_file
from PIL import Image

from corit_hf.app.space import (
    KEY_WIDTH,
    MODEL_ENV,
    TILE_SIZE,
    build_demo,
    launch,
    layer_contributions,
    load_detector,
)


CLIENTS, REQUESTS_PER_CLIENT = 16, 5


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("space")


@pytest.fixture(scope="module")
def model_dir(workdir: Path) -> Path:
    return save_tiny_model(workdir / "model")


@contextmanager
def served(source: str | None) -> Iterator[str]:
    """The app for `source` launched without blocking; yields its URL, then closes it and restores the torch
    thread count that `launch` sets for serving."""
    threads = torch.get_num_threads()
    demo = build_demo(source)
    _, url, _ = launch(demo, prevent_thread_lock=True, quiet=True, server_name="127.0.0.1")
    try:
        yield url
    finally:
        demo.close()
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def app_url(model_dir: Path) -> Iterator[str]:
    with served(str(model_dir)) as url:
        yield url


@pytest.fixture(scope="module")
def bad_files(workdir: Path) -> dict[str, tuple[Path, str]]:
    return bad_inputs(workdir)


@pytest.fixture(scope="module")
def client(app_url: str) -> Client:
    return Client(app_url, verbose=False)


def analyse(client: Client, *paths: Path) -> tuple:
    """One call of the app's `/analyse` endpoint with file uploads."""
    return client.predict([handle_file(str(path)) for path in paths], api_name="/analyse")


def test_png_gets_a_probability_and_a_heatmap_per_layer(client, model_dir, workdir):
    status, results, gallery, contributions = analyse(client, photo_png(workdir / "photo.png"))

    assert status == "Analysed 1 image."
    [[name, probability, label]] = results["data"]
    assert name == "photo.png" and 0.0 <= probability <= 1.0 and label in {"real", "fake"}
    [item] = gallery
    hri_layers = load_detector(str(model_dir)).model.config.hri_layers
    with Image.open(item["image"]) as strip:
        assert strip.size == (TILE_SIZE * (1 + len(hri_layers)) + KEY_WIDTH, TILE_SIZE)
        key = np.asarray(strip.convert("RGB"), dtype=int)[:, -KEY_WIDTH:]
    assert_is_a_fake_to_real_key(key)
    assert [row[1] for row in contributions["data"]] == hri_layers


def assert_is_a_fake_to_real_key(key: np.ndarray) -> None:
    """The colour key: red (fake) at the top, blue (real) at the bottom, in a bar of strong colours (kept patches)
    beside a bar of faint ones (dropped patches)."""
    redness = key[..., 0] - key[..., 2]  # > 0 red, < 0 blue, 0 on the white ground and black text
    strong = np.abs(redness).max(axis=0) > 100
    faint = (np.abs(redness).max(axis=0) > 10) & ~strong
    assert strong.any() and faint.any() and np.flatnonzero(strong).max() < np.flatnonzero(faint).min()
    rows = np.abs(redness[:, strong]).max(axis=1) > 100
    top, bottom = np.flatnonzero(rows)[[0, -1]]
    assert (redness[top, strong] > 100).all() and (redness[bottom, strong] < -100).all()


def test_one_file_sent_without_a_list_gets_its_result(client, workdir):
    status, results, gallery, _ = client.predict(
        handle_file(str(photo_png(workdir / "single.png"))), api_name="/analyse"
    )

    assert status == "Analysed 1 image."
    assert [row[0] for row in results["data"]] == ["single.png"] and len(gallery) == 1


def test_several_images_at_once(client, workdir):
    paths = [photo_png(workdir / f"batch{i}.png", size=(40 + 20 * i, 64)) for i in range(3)]

    status, results, gallery, contributions = analyse(client, *paths)

    assert status == "Analysed 3 images."
    assert [row[0] for row in results["data"]] == [path.name for path in paths]
    assert len(gallery) == 3


@pytest.mark.parametrize("case", ["text renamed .png", "truncated JPEG", "20000x20000"])
def test_bad_input_gives_a_readable_message_and_the_app_keeps_serving(client, workdir, bad_files, case):
    path, expected = bad_files[case]

    status, results, gallery, _ = analyse(client, path)

    assert f"- {path.name}: " in status and expected in status
    assert "Traceback" not in status and f"/{path.name}" not in status  # no server-side upload path
    assert results["data"] == [] and gallery == []
    assert analyse(client, photo_png(workdir / "after.png"))[0] == "Analysed 1 image."


@pytest.mark.parametrize("case", ["1x1", "RGBA"])
def test_tiny_and_transparent_images_are_classified(client, workdir, case):
    path = odd_but_valid_inputs(workdir)[case]

    status, results, _, _ = analyse(client, path)

    assert status == "Analysed 1 image."
    assert results["data"][0][0] == path.name


def test_good_files_are_analysed_beside_bad_ones(client, workdir, bad_files):
    bad, _ = bad_files["text renamed .png"]

    status, results, _, _ = analyse(client, photo_png(workdir / "good.png"), bad)

    assert status.startswith("Analysed 1 image.") and "notes.png: not a recognised image or video file" in status
    assert [row[0] for row in results["data"]] == ["good.png"]


def test_uploads_above_the_size_limit_are_refused(client, app_url, workdir):
    big = workdir / "big.png"
    big.write_bytes(b"\0" * (21 * 1024 * 1024))

    with pytest.raises(ValueError, match="exceeds the maximum file size"):
        analyse(client, big)
    assert httpx.get(f"{app_url}config").json()["max_file_size"] == 20 * 1024 * 1024


def test_sixteen_concurrent_clients(app_url, workdir):
    image = photo_png(workdir / "load.png")

    def session(_: int) -> list[str]:
        client = Client(app_url, verbose=False)
        return [analyse(client, image)[0] for _ in range(REQUESTS_PER_CLIENT)]

    with ThreadPoolExecutor(CLIENTS) as pool:
        statuses = [status for statuses in pool.map(session, range(CLIENTS)) for status in statuses]

    assert statuses == ["Analysed 1 image."] * (CLIENTS * REQUESTS_PER_CLIENT)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("unset", "No model loaded"),
        ("missing", "Could not load the model `/no/such/model-folder`"),
        ("not CoRIT", "holds a 'vit' model, not a CoRIT ('corit') model"),
    ],
)
def test_missing_or_wrong_model_still_serves_a_message(monkeypatch, tmp_path, case, expected):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "vit"}))
    source = {"unset": None, "missing": "/no/such/model-folder", "not CoRIT": str(tmp_path)}[case]
    monkeypatch.delenv(MODEL_ENV, raising=False)
    with served(source) as url:
        page_config = httpx.get(f"{url}config").text
        status, results, _, _ = analyse(Client(url, verbose=False), photo_png(tmp_path / "any.png"))

    assert expected in page_config and MODEL_ENV in page_config
    assert expected in status and results["data"] == []


def test_layer_contributions_add_up_to_the_logit_margin(tmp_path):
    labels = {0: "real", 1: "gan", 2: "diffusion"}
    detector = load_detector(str(save_tiny_model(tmp_path / "model", id2label=labels)))
    model = detector.model
    pixel_values = torch.randn(3, 3, 64, 64)

    with torch.no_grad():
        outputs = model(pixel_values, output_region_scores=True)
    contributions = layer_contributions(model, outputs.layer_features, outputs.logits)

    fake = outputs.logits[:, 1:].argmax(dim=-1) + 1
    margin = outputs.logits[torch.arange(3), fake] - outputs.logits[:, 0]
    bias = model.classifier.bias[fake] - model.classifier.bias[0]
    torch.testing.assert_close(contributions.sum(dim=1) + bias, margin, rtol=1e-4, atol=1e-5)
