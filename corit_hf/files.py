"""Atomic file writing shared by training, evaluation, distillation and the study: a reader never sees half a file."""

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_target(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path to write to, renamed onto `path` on success, so a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    yield temporary
    temporary.replace(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically (see `atomic_target`)."""
    with atomic_target(path) as temporary:
        temporary.write_text(text)


def write_json(path: str | os.PathLike, document: object) -> None:
    """Write a JSON document atomically."""
    write_text_atomic(path, json.dumps(document, indent=2) + "\n")
