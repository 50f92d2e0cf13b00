"""`corit push` / `push-space` / `push-metric` against a local stub of the Hub HTTP API, and the model card.

conftest.py sets HF_HUB_OFFLINE=1, which makes huggingface_hub refuse every request (its HTTP client raises
OfflineModeIsEnabled). The `hub` fixture turns that off for the test only, by patching the flag the library
reads on each request (`huggingface_hub.constants.HF_HUB_OFFLINE`); the requests still only reach 127.0.0.1.
"""

import importlib.metadata
import json
import re
import subprocess
import sys
from pathlib import Path

import gradio
import huggingface_hub.constants
import pytest
import yaml
from _app_inputs import free_port, save_tiny_model
from _hub_stub import HubStub
from huggingface_hub import ModelCard
from packaging.requirements import Requirement

from corit_hf.cli import main
from corit_hf.evaluation.collapse import SCORE_NAMES
from corit_hf.hub.push import render_model_card
from corit_hf.metrics import OPTIMIZATION_COLLAPSE


ROOT = Path(__file__).resolve().parents[1]
SPACE_DIR = ROOT / "spaces" / "corit-demo"
FRONT_MATTER = re.compile(r"^---\n(.*?)\n---\n", re.DOTALL)
EVAL_RESULTS = {
    "model": "corit-tiny",
    "dataset": {"name": "corit forensic benchmark", "type": "corit-benchmark", "config": "train-gan"},
    "splits": {
        "test_gan": {
            "auc": 0.9375,
            "ap": 0.9212,
            "accuracy": 0.875,
            "real_accuracy": 0.9,
            "fake_accuracy": 0.85,
            "best_accuracy": 0.89,
            "eer": 0.125,
            "tpr_at_fpr_1": 0.3,
            "tpr_at_fpr_5": 0.6,
            "collapsed": False,
            "n": 128,
        },
        # An eval_results.json written before the field's scores were added: only four of them.
        "test_diffusion": {"auc": 0.5125, "ap": 0.505, "accuracy": 0.5, "eer": 0.49, "collapsed": True, "n": 128},
    },
}
EXPECTED_MODEL_FILES = {
    "config.json",
    "preprocessor_config.json",
    "configuration_corit.py",
    "modeling_corit.py",
    "model.safetensors",
    "eval_results.json",
    "metrics.json",
    "README.md",
}


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A saved tiny model as `corit train` + `corit evaluate` leave it, plus pickles that must stay behind."""
    directory = save_tiny_model(tmp_path / "model")
    config = json.loads((directory / "config.json").read_text())
    config["base_model_name_or_path"] = "openai/clip-vit-base-patch16"  # what from_clip records
    (directory / "config.json").write_text(json.dumps(config))
    (directory / "eval_results.json").write_text(json.dumps(EVAL_RESULTS))
    training = {"train": {"train_loss": 0.4123456, "step": 5}, "skipped_ascents": 0, "validation": {"auc": 0.9}}
    (directory / "metrics.json").write_text(json.dumps(training))
    (directory / "pytorch_model.bin").write_bytes(b"pickled weights")
    (directory / "training_args.bin").write_bytes(b"pickled arguments")
    return directory


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch):
    """The Hub stub, with huggingface_hub's offline guard lifted for this test."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    with HubStub() as stub:
        yield stub


def push(model_dir: Path, endpoint: str, *extra: str) -> int:
    """`corit push` of `model_dir` to acme/corit-tiny at `endpoint`, as a user would type it."""
    return main(
        ["push", str(model_dir), "--repo-id", "acme/corit-tiny", "--token", "hf_test", "--endpoint", endpoint, *extra]
    )


def front_matter(readme: str) -> dict:
    return yaml.safe_load(FRONT_MATTER.match(readme)[1])


def test_push_uploads_the_allow_listed_files_and_a_card(model_dir, hub, capsys, caplog):
    assert push(model_dir, hub.url) == 0

    assert hub.state.created == [{"name": "corit-tiny", "organization": "acme"}]
    [commit] = hub.state.commits
    assert (commit.repo_type, commit.repo_id, commit.revision, commit.create_pr) == (
        "model",
        "acme/corit-tiny",
        "main",
        False,
    )
    assert set(commit.files) == EXPECTED_MODEL_FILES
    assert commit.files["model.safetensors"] == (model_dir / "model.safetensors").read_bytes()
    assert "Skipping pytorch_model.bin" in caplog.text and "Skipping training_args.bin" in caplog.text
    assert capsys.readouterr().out.strip() == f"{hub.url}/acme/corit-tiny/commit/{'0' * 40}"


def test_pushed_card_has_metadata_and_model_index(model_dir, hub):
    push(model_dir, hub.url)
    readme = hub.state.commits[0].files["README.md"].decode()

    metadata = front_matter(readme)
    assert metadata["library_name"] == "transformers"
    assert metadata["pipeline_tag"] == "image-classification"
    assert metadata["base_model"] == "openai/clip-vit-base-patch16"
    [entry] = metadata["model-index"]
    assert entry["name"] == "corit-tiny"
    reported = {
        (result["dataset"]["split"], metric["type"]): metric["value"]
        for result in entry["results"]
        for metric in result["metrics"]
    }
    for split, scores in EVAL_RESULTS["splits"].items():
        assert reported[(split, "roc_auc")] == scores["auc"]
        assert reported[(split, "average_precision")] == scores["ap"]
        for key in set(SCORE_NAMES) - {"auc", "ap"}:
            assert reported.get((split, key)) == scores.get(key)
    parsed = ModelCard(readme).data.eval_results  # huggingface_hub's own model-index parser accepts it
    assert {(result.dataset_split, result.metric_type) for result in parsed} == set(reported)
    assert "| test_gan | 128 | 0.938 | 0.921 | 0.875 | 0.900 | 0.850 | 0.890 | 0.125 | 0.300 | 0.600 | no |" in readme
    assert "| test_diffusion | 128 | 0.512 | 0.505 | 0.500 | n/a | n/a | n/a | 0.490 | n/a | n/a | yes |" in readme
    assert "| train.train_loss | 0.4123 |" in readme and "| skipped_ascents | 0 |" in readme


def test_push_private_branch_and_pull_request(model_dir, hub, capsys):
    assert push(model_dir, hub.url, "--private", "--revision", "dev", "--create-pr") == 0

    assert hub.state.created[0]["visibility"] == "private"
    assert hub.state.branches == [("acme/corit-tiny", "dev")]
    [commit] = hub.state.commits
    assert (commit.revision, commit.create_pr) == ("dev", True)
    assert capsys.readouterr().out.strip() == f"{hub.url}/acme/corit-tiny/discussions/1"


@pytest.mark.parametrize(
    ("route", "status", "expected"),
    [
        ("create", 401, "401 Unauthorized"),
        ("commit", 500, "500 Internal Server Error"),
    ],
)
def test_hub_errors_are_clear_cli_errors(model_dir, hub, capsys, route, status, expected):
    hub.fail(route, status, "stub says no")

    assert push(model_dir, hub.url) == 1

    error = capsys.readouterr().err
    assert error.startswith("corit push: error: the Hub refused the request:")
    assert expected in error and "stub says no" in error
    assert ("Check --token" in error) == (status == 401)
    assert "Traceback" not in error


@pytest.mark.parametrize(("offline", "expected"), [(True, "offline mode is enabled"), (False, "Connection refused")])
def test_unreachable_hub_is_a_clear_cli_error(model_dir, capsys, monkeypatch, offline, expected):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", offline)  # True: conftest's HF_HUB_OFFLINE=1

    assert push(model_dir, f"http://127.0.0.1:{free_port()}") == 1

    error = capsys.readouterr().err
    assert error.startswith("corit push: error: cannot reach the Hub:") and expected in error


def test_push_refuses_a_folder_without_safetensors(model_dir, hub, capsys):
    (model_dir / "model.safetensors").unlink()

    assert push(model_dir, hub.url) == 2

    assert "no *.safetensors weights" in capsys.readouterr().err
    assert hub.state.created == [] and hub.state.commits == []


def test_card_of_an_unevaluated_baseline(tmp_path):
    baseline = save_tiny_model(tmp_path / "model", use_cgp_mask=False, rsi_strength=0.0, hri_layers=[-1])

    card = render_model_card(baseline, "acme/corit-baseline")

    assert "model-index" not in card.data.to_dict() and "base_model" not in card.data.to_dict()
    assert "Not evaluated yet" in card.text and "No training record" in card.text
    assert "plain linear-probe baseline on the backbone" in card.text


def test_push_space_deploys_the_app_and_points_it_at_the_model(hub, capsys):
    argv = ["push-space", "--repo-id", "acme/corit-demo", "--model", "acme/corit-tiny"]

    assert main([*argv, "--token", "hf_test", "--endpoint", hub.url]) == 0

    assert hub.state.created == [{"name": "corit-demo", "organization": "acme", "type": "space", "sdk": "gradio"}]
    assert hub.state.variables == {"acme/corit-demo": {"CORIT_MODEL": "acme/corit-tiny"}}
    [commit] = hub.state.commits
    assert commit.repo_type == "space"
    assert {"README.md", "app.py", "requirements.txt", "corit_hf/__init__.py", "corit_hf/app/space.py"} <= set(
        commit.files
    )
    package = [path for path in commit.files if path.startswith("corit_hf/")]
    assert all(Path(path).suffix in {".py", ".md", ".txt", ".j2", ".json"} for path in package)
    assert not any("__pycache__" in path for path in package)
    assert commit.files["app.py"] == (SPACE_DIR / "app.py").read_bytes()
    metadata = front_matter(commit.files["README.md"].decode())
    assert (metadata["sdk"], metadata["app_file"], metadata["models"]) == ("gradio", "app.py", ["acme/corit-tiny"])


def test_push_space_needs_a_hub_model_id(hub, capsys):
    argv = ["push-space", "--repo-id", "acme/corit-demo", "--model", "/some/local/folder", "--endpoint", hub.url]

    assert main(argv) == 2

    assert "corit push-space: error:" in capsys.readouterr().err
    assert hub.state.created == []


def test_space_header_matches_the_installed_gradio():
    metadata = front_matter((SPACE_DIR / "README.md").read_text())
    assert metadata["sdk"] == "gradio" and metadata["app_file"] == "app.py" and metadata["models"]
    assert metadata["sdk_version"].split(".")[0] == gradio.__version__.split(".")[0]


def package_requirements(*extras: str) -> set[str]:
    """corit-hf's own dependencies (+ extras) as pyproject declares them, read from the installed metadata."""
    wanted = set()
    for text in importlib.metadata.requires("corit-hf"):
        requirement = Requirement(text)
        if requirement.name != "corit-hf" and (
            requirement.marker is None or any(requirement.marker.evaluate({"extra": extra}) for extra in extras)
        ):
            wanted.add(f"{requirement.name}{requirement.extras or ''}{requirement.specifier}")
    return wanted


def requirement_lines(path: Path) -> set[str]:
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return {f"{r.name}{r.extras or ''}{r.specifier}" for r in map(Requirement, lines)}


@pytest.mark.parametrize(
    "folder, extras", [(SPACE_DIR, ("video",)), (Path(OPTIMIZATION_COLLAPSE), ())], ids=["space", "metric"]
)
def test_requirements_install_what_the_package_needs(folder, extras):
    # Both run next to a copy of the package sources, so they install its dependencies, never `corit-hf` itself.
    assert requirement_lines(folder / "requirements.txt") == package_requirements(*extras)


def test_push_metric_deploys_the_metric_folder_with_the_package(hub, capsys):
    assert main(["push-metric", "--repo-id", "acme/optimization_collapse", "--endpoint", hub.url]) == 0

    assert hub.state.created == [
        {"name": "optimization_collapse", "organization": "acme", "type": "space", "sdk": "gradio"}
    ]
    [commit] = hub.state.commits
    root_files = {path for path in commit.files if "/" not in path}
    assert root_files == {"README.md", "app.py", "requirements.txt", "optimization_collapse.py"}
    assert {"corit_hf/evaluation/collapse.py", "corit_hf/__init__.py"} <= set(commit.files)
    metadata = front_matter(commit.files["README.md"].decode())
    assert metadata["app_file"] == "app.py" and "metric" in metadata["tags"]
    assert "acme/optimization_collapse" in capsys.readouterr().out


def test_metric_app_loads_the_script_from_any_folder_name(tmp_path):
    # A Space runs the app from a folder named like the Space, not like the script.
    space = tmp_path / "app"
    space.mkdir()
    for name in ("app.py", "optimization_collapse.py"):
        (space / name).write_bytes((Path(OPTIMIZATION_COLLAPSE) / name).read_bytes())
    script = "import evaluate.utils; evaluate.utils.launch_gradio_widget = lambda module: print(module.name)"
    result = subprocess.run(
        [sys.executable, "-c", f"{script}; import runpy; runpy.run_path('app.py')"],
        cwd=space,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("optimization_collapse")
