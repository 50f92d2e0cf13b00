"""What a preparation will do, fixed before any file is decoded: the source files, their splits, the chunks they
are written in, and a digest of every source folder's listing.

The plan depends only on the sources (their layout and listing: paths, sizes, modification times) and the
options, never on the number of processes, so an interrupted and an uninterrupted run write the same chunks.
Its `key` names a preparation in the cache: a second run on an unchanged folder finds it again.
"""

import bisect
import functools
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ...video.frames import is_video_path
from ..folders import find_candidates, sanitise, split_sort_key
from .prepared_format import FORMAT_VERSION, PrepareOptions
from .records import SourceFile


CHUNK_ROWS = 2048
"""A chunk (the unit written to disk and resumed) closes at about this many rows..."""
CHUNK_BYTES = 256 * 2**20
"""...or about this many stored bytes, estimated from the plan (a frame: 1.5 bytes per pixel of PNG)."""


@dataclass
class Plan:
    """The source folders, the files to prepare in order, the output splits (and the source each came from), the
    chunks as [start, end) ranges of files, and each source's listing digest."""

    sources: list[Path]
    files: list[SourceFile] = field(default_factory=list)
    split_sources: dict[str, int] = field(default_factory=dict)
    chunks: list[tuple[int, int]] = field(default_factory=list)
    listings: list[str] = field(default_factory=list)

    @property
    def splits(self) -> list[str]:
        return sorted(self.split_sources, key=split_sort_key)

    @functools.cached_property
    def videos(self) -> bool:
        return any(task.video for task in self.files)

    def chunk_of(self, index: int) -> int:
        """The chunk holding file `index` (chunks are consecutive ranges)."""
        return bisect.bisect_right(self._chunk_starts, index) - 1

    @functools.cached_property
    def _chunk_starts(self) -> list[int]:
        return [start for start, _ in self.chunks]

    def key(self, options: PrepareOptions) -> str:
        """A digest of what the output depends on: the format, the options and every source's listing."""
        document = {"format": FORMAT_VERSION, "options": options.recorded(), "listings": self.listings}
        return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def plan_preparation(sources: list[str | os.PathLike], options: PrepareOptions) -> Plan:
    """The plan of preparing `sources` (folders that `load_forensic_folder` reads) with `options`.

    Several sources merge; a split name already taken by an earlier source gets the later source's folder name
    appended (`test_<folder>`). Raises FileNotFoundError for a missing source and ValueError for a folder without
    a known layout.
    """
    roots = [Path(source).resolve() for source in sources]
    for root in roots:
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: no such folder.")
    plan = Plan(sources=roots, listings=[listing_digest(root) for root in roots])
    for number, root in enumerate(roots):
        renamed: dict[str, str] = {}
        memberships: dict[Path, list[tuple[str, int, str]]] = {}
        for candidate in find_candidates(root):
            if candidate.split not in renamed:
                renamed[candidate.split] = _unique_split(candidate.split, root, plan.split_sources)
                plan.split_sources[renamed[candidate.split]] = number
            memberships.setdefault(candidate.path, []).append(
                (renamed[candidate.split], candidate.label, candidate.family)
            )
        for path, belongs in memberships.items():
            relative = path.relative_to(root).as_posix()
            plan.files.append(SourceFile(len(plan.files), number, relative, is_video_path(path), tuple(belongs)))
    plan.chunks = _chunks(plan, options)
    return plan


def listing_digest(root: Path) -> str:
    """A digest of every non-hidden file under `root`: relative path, size and modification time (no content is
    read), so any added, removed, replaced or touched file changes it."""
    digest = hashlib.sha256()
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = sorted(name for name in subdirectories if not name.startswith("."))
        for name in sorted(name for name in files if not name.startswith(".")):
            path = Path(directory, name)
            stat = path.stat()
            digest.update(f"{path.relative_to(root).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _unique_split(split: str, root: Path, taken: dict[str, int]) -> str:
    """`split`, or `split_<source folder name>` (then numbered) when an earlier source has that split."""
    if split not in taken:
        return split
    name, number = f"{split}_{sanitise(root.name)}", 2
    while name in taken:
        name, number = f"{split}_{sanitise(root.name)}_{number}", number + 1
    return name


def _chunks(plan: Plan, options: PrepareOptions) -> list[tuple[int, int]]:
    """Consecutive ranges of files of about `CHUNK_ROWS` rows or `CHUNK_BYTES` stored bytes each."""
    chunks, start, rows, stored = [], 0, 0, 0
    frame_bytes = int(1.5 * options.size**2)
    for task in plan.files:
        copies = len(task.memberships)
        if task.video:
            rows, stored = rows + options.frames * copies, stored + options.frames * frame_bytes * copies
        else:
            size = _file_size(plan.sources[task.source] / task.path) if options.embed else 0
            rows, stored = rows + copies, stored + size * copies
        if rows >= CHUNK_ROWS or stored >= CHUNK_BYTES:
            chunks.append((start, task.index + 1))
            start, rows, stored = task.index + 1, 0, 0
    if start < len(plan.files):
        chunks.append((start, len(plan.files)))
    return chunks


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
