"""Where a model argument points (a local folder or a Hub repo id), checked before anything loads, and quiet loads.

Shared by `predict`, `evaluate`, `push`, `serve`, `--backbone` and the Space's model field, so a mistyped path is
"no such folder" at once instead of a Hub look-up, and an unreachable Hub is one request and one clear line
instead of huggingface_hub's retries (ten over 52 s for a missing model).
"""

import contextlib
from collections.abc import Iterator
from pathlib import Path

import httpx2
from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url, try_to_load_from_cache
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    RepositoryNotFoundError,
)
from huggingface_hub.utils import validate_repo_id
from transformers.utils import logging as transformers_logging


CONFIG_FILE = "config.json"


def resolve_model(source: str, what: str = "model") -> str:
    """The folder or Hub repo id to load `source` from; FileNotFoundError with one line when there is none.

    An existing folder must hold config.json. A `source` that looks like a path (see `looks_like_path`) and does
    not exist is "no such folder". Anything else is a Hub repo id, asked for its config.json once, without
    retries; when the Hub cannot be reached, or `HF_HUB_OFFLINE` is set, a cached copy loads from its cache folder,
    else the error says why. `what` names the argument in messages ("model", "--backbone").
    """
    if looks_like_path(source):
        return str(model_folder(source, what))
    return checked_hub_repo(source, what)


def looks_like_path(source: str) -> bool:
    """Whether `source` is meant as a path: it starts with `.`, `/` or `~`, names a file, or names a folder whose
    parent folder exists (`runs/nomodel` when `runs/` exists)."""
    path = Path(source).expanduser()
    return source.startswith((".", "/", "~")) or path.exists() or path.parent.is_dir()


def model_folder(source: str, what: str = "model") -> Path:
    """The existing local folder `source`, which must hold config.json; FileNotFoundError saying what is wrong."""
    path = Path(source).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{what} {source}: no such folder.")
    if not path.is_dir():
        raise FileNotFoundError(f"{what} {source}: is a file; give the model folder (the one with {CONFIG_FILE}).")
    if not (path / CONFIG_FILE).is_file():
        raise FileNotFoundError(
            f"{what} {source}: the folder has no {CONFIG_FILE}, so it is not a saved model (`corit train` and "
            "save_pretrained write one)."
        )
    return path


def checked_hub_repo(repo_id: str, what: str = "model") -> str:
    """`repo_id` once its config.json is known to be on the Hub, else the cache folder of a copy when offline or
    when the Hub cannot be reached; FileNotFoundError with the reason otherwise."""
    prefix = f"{what} {repo_id}: no such folder, and"
    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise FileNotFoundError(f"{prefix} not a Hub repo id (ORG/NAME).") from None
    cached = try_to_load_from_cache(repo_id, CONFIG_FILE)
    copy = str(Path(cached).parent) if isinstance(cached, str) else None
    if constants.HF_HUB_OFFLINE:
        if copy is None:
            raise FileNotFoundError(f"{prefix} HF_HUB_OFFLINE is set while the Hub repo is not in the local cache.")
        return copy
    try:  # one HEAD request: no retries (huggingface_hub's default for this call), a bounded wait
        get_hf_file_metadata(hf_hub_url(repo_id, CONFIG_FILE), timeout=constants.HF_HUB_ETAG_TIMEOUT)
    except GatedRepoError:
        raise FileNotFoundError(f"{prefix} the Hub repo is gated: accept its terms on the Hub and log in.") from None
    except RepositoryNotFoundError:
        raise FileNotFoundError(
            f"{prefix} no such model repo on the Hub ({constants.ENDPOINT}), or it is private and you are not "
            "logged in."
        ) from None
    except EntryNotFoundError:
        raise FileNotFoundError(f"{what} {repo_id}: the Hub repo has no {CONFIG_FILE}; it is not a model.") from None
    except (HfHubHTTPError, httpx2.TransportError) as error:  # refused, unreachable, timed out, failing
        status = getattr(getattr(error, "response", None), "status_code", None)
        if status is not None and status < 500:
            raise FileNotFoundError(f"{prefix} the Hub refused the request: {first_line(error)}") from None
        if copy is None:
            raise FileNotFoundError(
                f"{prefix} the Hub ({constants.ENDPOINT}) cannot be reached ({first_line(error)}); the repo is not "
                "in the local cache either."
            ) from None
        return copy
    return repo_id


def first_line(error: Exception) -> str:
    """The first line of an error's message, or its type's name when it has none."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@contextlib.contextmanager
def quiet_weight_loading() -> Iterator[None]:
    """Hide transformers' "Loading weights" bar (it flashes by on every load); Hub download bars stay."""
    previous = transformers_logging.set_tqdm_hook(
        lambda factory, args, kwargs: transformers_logging.EmptyTqdm(*args, **kwargs)
    )
    try:
        yield
    finally:
        transformers_logging.set_tqdm_hook(previous)
