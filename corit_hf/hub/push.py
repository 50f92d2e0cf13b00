"""Publishing to the Hugging Face Hub: the model card, `corit push` (a model folder) and `corit push-space`.

Only an allow-list of files is uploaded: safetensors weights, configs, remote code, the training and
evaluation records and the rendered card. Pickle-based files (`*.bin`, `*.pt`, ...) are never uploaded.
"""

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import (
    CommitOperationAdd,
    EvalResult,
    HfApi,
    ModelCard,
    ModelCardData,
    SpaceCard,
)
from huggingface_hub.utils import validate_repo_id

from ..evaluation.collapse import SCORE_NAMES
from ..evaluation.scoring import EVAL_RESULTS_FILE
from ..models.configuration_corit import CoritConfig
from ..models.loading import model_folder
from ..resources import PACKAGE_DIR, card_template, shared_folder
from ..training.run import GSNR_FILE, METRICS_FILE


MODEL_CARD = "model_card.md"
SPACE_FOLDER = "spaces/corit-demo"
SPACE_FILES = ("README.md", "app.py", "requirements.txt")
METRIC_FILES = ("README.md", "app.py", "requirements.txt", "optimization_collapse.py")

MODEL_FILES = ("config.json", "preprocessor_config.json", "configuration_corit.py", "modeling_corit.py")
WEIGHT_FILES = ("*.safetensors", "model.safetensors.index.json")
RECORD_FILES = (EVAL_RESULTS_FILE, METRICS_FILE, GSNR_FILE)
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".npy", ".npz")
PACKAGE_SUFFIXES = (".py", ".md", ".txt", ".j2", ".json")

CARD_LICENSE = "apache-2.0"
CARD_TAGS = ["corit", "image-forensics", "deepfake-detection", "ai-generated-image-detection", "custom_code"]
MODEL_INDEX_TYPES = {"auc": "roc_auc", "ap": "average_precision"}
"""Scores whose model-index metric type is a standard name other than the eval_results.json key."""
CARD_METRICS = {key: (MODEL_INDEX_TYPES.get(key, key), name) for key, name in SCORE_NAMES.items()}
"""eval_results.json key -> (model-index metric type, display name), for every field score of `collapse`."""
TASK = ("image-classification", "Forged image detection")

logger = logging.getLogger(__name__)


@dataclass
class UploadPlan:
    """What `corit push` uploads from a model folder, and the pickle files it leaves behind."""

    files: list[Path]
    skipped_pickles: list[Path]


def plan_model_upload(model_dir: str | Path) -> UploadPlan:
    """The allow-listed files of a saved model folder; refuses folders without config or safetensors weights."""
    model_dir = model_folder(str(model_dir))
    weights = sorted(path for pattern in WEIGHT_FILES for path in model_dir.glob(pattern))
    if not any(path.suffix == ".safetensors" for path in weights):
        raise ValueError(
            f"{model_dir} has no *.safetensors weights; re-save it with `save_pretrained` (pickle weights are "
            "never uploaded)."
        )
    named = [model_dir / name for name in MODEL_FILES + RECORD_FILES if (model_dir / name).is_file()]
    pickles = sorted(path for path in model_dir.iterdir() if path.suffix.lower() in PICKLE_SUFFIXES)
    return UploadPlan(files=named + weights, skipped_pickles=pickles)


def read_json(path: Path) -> dict | None:
    """A JSON object from `path`, or None when the file does not exist."""
    return json.loads(path.read_text()) if path.is_file() else None


def card_eval_results(evaluation: dict) -> list[EvalResult]:
    """`model-index` entries (one per split and metric) from an `eval_results.json` document."""
    dataset = evaluation["dataset"]
    return [
        EvalResult(
            task_type=TASK[0],
            task_name=TASK[1],
            dataset_type=dataset["type"],
            dataset_name=dataset["name"],
            dataset_config=dataset.get("config"),
            dataset_split=split,
            metric_type=metric_type,
            metric_name=metric_name,
            metric_value=float(scores[key]),
        )
        for split, scores in evaluation["splits"].items()
        for key, (metric_type, metric_name) in CARD_METRICS.items()
        if key in scores
    ]


def hub_base_model(config: CoritConfig) -> str | None:
    """The backbone checkpoint `from_backbone` started from, when it is a Hub repo id (not a local folder)."""
    source = getattr(config, "base_model_name_or_path", None)
    if not source or Path(source).exists():
        return None
    try:
        validate_repo_id(source)
    except ValueError:
        return None
    return source


def training_record(document: dict | None) -> dict[str, str]:
    """The rows of the card's training table from `metrics.json`: top-level scalars, and the scalars of each
    nested section as `section.key`; floats to 4 significant digits."""
    rows = {}
    for key, value in (document or {}).items():
        for sub_key, item in value.items() if isinstance(value, dict) else [(None, value)]:
            if isinstance(item, (str, int, float)):
                rows[f"{key}.{sub_key}" if sub_key else key] = f"{item:.4g}" if isinstance(item, float) else str(item)
    return rows


def render_model_card(model_dir: str | Path, repo_id: str) -> ModelCard:
    """The model card from `hub_cards/model_card.md`: metadata, model-index eval results and the description."""
    model_dir = Path(model_dir)
    config = CoritConfig.from_pretrained(model_dir)
    evaluation = read_json(model_dir / EVAL_RESULTS_FILE)
    model_name = repo_id.split("/")[-1]
    base_model = hub_base_model(config)
    card_data = ModelCardData(
        model_name=model_name,
        library_name="transformers",
        pipeline_tag="image-classification",
        license=CARD_LICENSE,
        tags=CARD_TAGS,
        base_model=base_model,
        eval_results=card_eval_results(evaluation) if evaluation else None,
    )
    return ModelCard.from_template(
        card_data,
        template_path=str(card_template(MODEL_CARD)),
        model_name=model_name,
        repo_id=repo_id,
        config=config,
        base_model=base_model,
        evaluation=evaluation,
        score_names=SCORE_NAMES,
        training=training_record(read_json(model_dir / METRICS_FILE)),
    )


def push_model(
    model_dir: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    create_pr: bool = False,
    revision: str | None = None,
    token: str | None = None,
    endpoint: str | None = None,
) -> str:
    """Create the model repo if needed and commit the allow-listed files plus the card; returns the URL.

    `revision` is a branch, created from main when missing; `create_pr` opens a pull request instead.
    """
    plan = plan_model_upload(model_dir)
    for path in plan.skipped_pickles:
        logger.warning("Skipping %s: pickle-based files are never uploaded.", path.name)
    card = render_model_card(model_dir, repo_id)
    api = HfApi(endpoint=endpoint, token=token)
    api.create_repo(repo_id, private=private or None, exist_ok=True)
    if revision:
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    operations = [CommitOperationAdd(path.name, str(path)) for path in plan.files]
    operations.append(CommitOperationAdd("README.md", str(card).encode()))
    info = api.create_commit(
        repo_id,
        operations,
        commit_message="Upload CoRIT detector with corit push",
        revision=revision,
        create_pr=create_pr,
    )
    return info.pr_url or info.commit_url


def space_readme(space_dir: Path, model_id: str) -> str:
    """The Space README with its `models:` list pointing at `model_id` (links the Space to the model)."""
    card = SpaceCard.load(space_dir / "README.md")
    card.data.models = [model_id]
    return str(card)


def package_files() -> list[Path]:
    """The corit_hf package sources (code and package data) that the Space's thin app.py imports."""
    return sorted(
        path
        for path in PACKAGE_DIR.rglob("*")
        if path.is_file() and path.suffix in PACKAGE_SUFFIXES and "__pycache__" not in path.parts
    )


def space_operations(space_dir: Path, model_id: str) -> list[CommitOperationAdd]:
    """Space files from `space_dir` (README rewritten for `model_id`) plus the package under `corit_hf/`."""
    missing = [name for name in SPACE_FILES if not (space_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"No Space folder at {space_dir} (missing {', '.join(missing)}); pass --space-dir with a checkout's "
            "spaces/corit-demo."
        )
    operations = [CommitOperationAdd("README.md", space_readme(space_dir, model_id).encode())]
    operations += [CommitOperationAdd(name, str(space_dir / name)) for name in SPACE_FILES if name != "README.md"]
    return operations + package_operations()


def package_operations() -> list[CommitOperationAdd]:
    """The corit_hf package sources under `corit_hf/`, so a Space's app imports the very code that was pushed."""
    return [
        CommitOperationAdd(f"corit_hf/{path.relative_to(PACKAGE_DIR).as_posix()}", str(path))
        for path in package_files()
    ]


def push_space(
    repo_id: str,
    model_id: str,
    *,
    space_dir: str | Path | None = None,
    private: bool = False,
    token: str | None = None,
    endpoint: str | None = None,
) -> str:
    """Create or update the Gradio Space `repo_id` serving the model repo `model_id`; returns the commit URL.

    The model is set twice: in the README's `models:` list and as the Space variable CORIT_MODEL the app reads.
    """
    from ..app.space import MODEL_ENV

    validate_repo_id(model_id)
    operations = space_operations(Path(space_dir) if space_dir else shared_folder(SPACE_FOLDER), model_id)
    api = HfApi(endpoint=endpoint, token=token)
    api.create_repo(repo_id, repo_type="space", space_sdk="gradio", private=private or None, exist_ok=True)
    api.add_space_variable(repo_id, MODEL_ENV, model_id)
    info = api.create_commit(
        repo_id, operations, repo_type="space", commit_message=f"Deploy the CoRIT demo for {model_id}"
    )
    return info.commit_url


def push_metric(repo_id: str, *, private: bool = False, token: str | None = None, endpoint: str | None = None) -> str:
    """Create or update the `optimization_collapse` metric Space `repo_id` (the evaluate module folder, its card
    and widget, next to the corit_hf package it imports); returns the commit URL."""
    from ..metrics import OPTIMIZATION_COLLAPSE

    folder = Path(OPTIMIZATION_COLLAPSE)
    operations = [CommitOperationAdd(name, str(folder / name)) for name in METRIC_FILES]
    api = HfApi(endpoint=endpoint, token=token)
    api.create_repo(repo_id, repo_type="space", space_sdk="gradio", private=private or None, exist_ok=True)
    info = api.create_commit(
        repo_id,
        operations + package_operations(),
        repo_type="space",
        commit_message="Deploy the optimization_collapse metric",
    )
    return info.commit_url


__all__ = ["UploadPlan", "plan_model_upload", "push_metric", "push_model", "push_space", "render_model_card"]
