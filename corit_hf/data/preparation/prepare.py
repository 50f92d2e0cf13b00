"""`corit prepare`: a field's folders prepared once, on disk, as a `DatasetDict` every command reads lazily.

The sources are planned first (`plan.py`: files, splits, chunks; nothing decoded), then worker processes
(`workers.py`) prepare the files (`records.py`: each opens its own decoder and face detector; a file that crashes
its worker is singled out and recorded as `crashed`) while this process appends each
finished file to its chunk's journal and writes the chunk's shards when the chunk is complete (`shards.py`).
Killed at any moment and run again, it reads the journals back and prepares only the files not yet finished;
the result is the same, byte for byte, as an uninterrupted run with any number of processes.
"""

import fcntl
import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from ...files import write_json
from ...video.frames import import_av
from .plan import Plan, plan_preparation
from .prepared_format import (
    FORMAT,
    FORMAT_VERSION,
    PREPARE_FILE,
    RECORDS_FILE,
    WORK_DIR,
    PrepareOptions,
    prepared_features,
)
from .records import FileResult, SourceFile
from .shards import (
    ChunkJournal,
    concatenate_records,
    read_journal,
    records_path,
    remove_journal,
    write_chunk,
    write_dataset_dict,
)
from .workers import prepared_results


LOCK_FILE = ".corit-prepare.lock"
IMAGES_PER_TASK = 32
"""Still images sent to a worker at a time (a video goes alone)."""
MAX_LISTED = 10


class PreparationInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a preparation; what it finished is kept and the same command resumes it."""


@dataclass
class PrepareSummary:
    """What a preparation gave: rows per split, files per status, the first problems, and whether it was reused
    whole (`reused`) or continued from an earlier run (`resumed` files were finished before)."""

    output: Path
    files: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    statuses: Counter = field(default_factory=Counter)
    problems: list[dict] = field(default_factory=list)
    reused: bool = False
    resumed: int = 0
    seconds: float = 0.0

    def __str__(self) -> str:
        done = "Reused" if self.reused else f"Prepared in {self.seconds:.1f} s"
        earlier = f" ({self.resumed} finished by an earlier run)" if self.resumed else ""
        lines = [f"{done}: {self.files} source files{earlier} -> {self.output}"]
        lines.append("  rows: " + (", ".join(f"{name} {count}" for name, count in self.rows.items()) or "none"))
        lines.append("  files: " + ", ".join(f"{status} {count}" for status, count in self.statuses.most_common()))
        lines += [f"  {record['file']}: {record['reason']}" for record in self.problems]
        problems = sum(count for status, count in self.statuses.items() if status != "ok")
        if problems > len(self.problems):
            lines.append(f"  ... {problems - len(self.problems)} more")
        if problems:
            lines.append(f"  every file's status and reason: {self.output / RECORDS_FILE}")
        return "\n".join(lines)


def prepare_dataset(
    sources: list[str | os.PathLike],
    output: str | os.PathLike,
    options: PrepareOptions | None = None,
    num_proc: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> PrepareSummary:
    """Prepare `sources` (folders `load_forensic_folder` reads; several merge) into the folder `output`.

    An `output` holding this very preparation is reused as it is, an interrupted one is resumed; one with other
    options or sources is an error unless `overwrite`. `num_proc` worker processes (default: the CPU count)
    prepare the files; the result does not depend on it. Raises ValueError for an output that cannot be used or
    written (finished chunks stay valid), and `PreparationInterrupted` on Ctrl-C.
    """
    options = options or PrepareOptions()
    return prepare_planned(plan_preparation(sources, options), output, options, num_proc, overwrite, progress)


def prepare_planned(
    plan: Plan,
    output: str | os.PathLike,
    options: PrepareOptions,
    num_proc: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> PrepareSummary:
    """`prepare_dataset` for a plan made already (the cache names its folder after the plan's key)."""
    num_proc = num_proc or os.cpu_count() or 1
    if num_proc < 1:
        raise ValueError(f"num_proc must be positive, got {num_proc}.")
    output = Path(output).resolve()
    for root in plan.sources:
        if output == root or root in output.parents:
            raise ValueError(f"the output {output} is inside the source {root}; choose a folder outside it.")
    if plan.videos and not (output / PREPARE_FILE).is_file():
        import_av()  # a missing video extra stops here, before any work
    start = time.perf_counter()
    with _storage_errors(output), _locked(output):
        if _reusable(output, plan, options, overwrite):
            return _summary(output, reused=True)
        resumed = _run(plan, options, output, num_proc, progress)
        _finish(plan, options, output)
    return _summary(output, resumed=resumed, seconds=time.perf_counter() - start)


@contextmanager
def _storage_errors(output: Path) -> Iterator[None]:
    """OSErrors writing the output (disk full, read-only, no permission) as one clear ValueError."""
    try:
        yield
    except OSError as error:
        reason = error.strerror or str(error)
        raise ValueError(
            f"cannot write the prepared dataset to {output}: {reason}. The chunks finished so far are kept; "
            "fix this and run the same command again to resume."
        ) from None


@contextmanager
def _locked(output: Path) -> Iterator[None]:
    """Hold the output's lock file: two preparations writing into one folder would corrupt it. A POSIX record
    lock belongs to this process alone (worker processes do not inherit it), so it goes when this process dies."""
    output.mkdir(parents=True, exist_ok=True)
    with open(output / LOCK_FILE, "w") as lock:
        try:
            fcntl.lockf(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ValueError(f"another `corit prepare` is writing to {output}.") from None
        yield


def _reusable(output: Path, plan: Plan, options: PrepareOptions, overwrite: bool) -> bool:
    """Whether `output` already holds this preparation, complete; clears it with `overwrite` when it holds
    another one, else raises; starts or keeps the work folder of this one. The same sources found at another
    path are prepared again (the rows name their files by absolute path)."""
    recorded = _read_json(output / PREPARE_FILE) or _read_json(output / WORK_DIR / "plan.json")
    same = recorded is not None and recorded.get("key") == plan.key(options)
    if same and [source["root"] for source in recorded["sources"]] == [str(root) for root in plan.sources]:
        return (output / PREPARE_FILE).is_file()
    contents = [path for path in output.iterdir() if path.name != LOCK_FILE]
    if recorded is not None and not same and not overwrite:
        raise ValueError(
            f"{output} holds a preparation with other options or sources "
            f"({_differences(recorded, plan, options)}); pass --overwrite to replace it."
        )
    if recorded is None and contents:
        raise ValueError(f"{output} is not empty and holds no corit preparation; choose an empty or new folder.")
    for path in contents:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    write_json(output / WORK_DIR / "plan.json", _description(plan, options, output))
    return False


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _differences(recorded: dict, plan: Plan, options: PrepareOptions) -> str:
    """What differs between a recorded preparation and the requested one, in words."""
    wanted = options.recorded()
    changed = [
        f"{name} {recorded['options'].get(name)!r} -> {value!r}"
        for name, value in wanted.items()
        if recorded["options"].get(name) != value
    ]
    if [source["listing"] for source in recorded["sources"]] != plan.listings:
        changed.append("the source files changed")
    return "; ".join(changed) or "another format version"


def _description(plan: Plan, options: PrepareOptions, output: Path) -> dict:
    """The recorded identity of a preparation: format, key, options and sources."""
    sources = [
        {
            "root": str(root),
            "relative_root": os.path.relpath(root, output),
            "listing": listing,
            "splits": [split for split, source in plan.split_sources.items() if source == number],
        }
        for number, (root, listing) in enumerate(zip(plan.sources, plan.listings))
    ]
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "key": plan.key(options),
        "options": options.recorded(),
        "sources": sources,
        "videos": plan.videos,
    }


def _run(plan: Plan, options: PrepareOptions, output: Path, num_proc: int, progress: bool) -> int:
    """Prepare every file not finished yet, writing each chunk once complete; returns the files an earlier run
    had finished."""
    work = output / WORK_DIR
    schema = prepared_features(plan.videos, options.faces).arrow_schema
    remaining, journaled = {}, {}
    for chunk, (start, end) in enumerate(plan.chunks):
        if records_path(work, chunk).is_file():
            remove_journal(work, chunk)  # a kill between the records file and the journal's removal
            continue
        journaled[chunk] = set(read_journal(work, chunk))
        remaining[chunk] = end - start - len(journaled[chunk])
        if remaining[chunk] == 0:
            write_chunk(output, work, chunk, _in_order(read_journal(work, chunk)), schema)
    resumed = len(plan.files) - sum(remaining.values())
    pending = (index for chunk in remaining for index in range(*plan.chunks[chunk]) if index not in journaled[chunk])
    journals: dict[int, ChunkJournal] = {}
    bar = tqdm(total=len(plan.files), initial=resumed, unit="file", desc="preparing", disable=not progress)
    try:
        roots = [str(root) for root in plan.sources]
        for result in prepared_results(_tasks(plan, pending), roots, options, num_proc):
            chunk = plan.chunk_of(result.index)
            if chunk not in journals:
                journals[chunk] = ChunkJournal(work, chunk, schema)
            rows = _split_rows(plan.files[result.index], result, plan.videos)
            journals[chunk].add(result.index, rows, result.record)
            remaining[chunk] -= 1
            if remaining[chunk] == 0:
                journals.pop(chunk).close()
                write_chunk(output, work, chunk, _in_order(read_journal(work, chunk)), schema)
            bar.update()
    except KeyboardInterrupt:
        raise PreparationInterrupted(
            f"interrupted after {bar.n} of {len(plan.files)} files; run the same command again to resume."
        ) from None
    finally:
        bar.close()
        for journal in journals.values():
            journal.close()
    return resumed


def _in_order(finished: dict) -> list:
    return [finished[index] for index in sorted(finished)]


def _split_rows(task: SourceFile, result: FileResult, videos: bool) -> list[dict]:
    """A file's rows once per (split, label, family) it belongs to, with its path; with `videos` also as the
    `video` that groups frames for video-level scores (an image is its own video)."""
    named = {"file": task.path, **({"video": task.path} if videos else {})}
    return [
        {**row, "split": split, "label": label, "family": family, **named}
        for split, label, family in task.memberships
        for row in result.rows
    ]


def _tasks(plan: Plan, pending: Iterator[int]) -> Iterator[list[SourceFile]]:
    """The pending files in batches: up to `IMAGES_PER_TASK` still images, or one video."""
    batch = []
    for index in pending:
        task = plan.files[index]
        if task.video:
            yield [task]
            continue
        batch.append(task)
        if len(batch) == IMAGES_PER_TASK:
            yield batch
            batch = []
    if batch:
        yield batch


def _finish(plan: Plan, options: PrepareOptions, output: Path) -> None:
    """Once every chunk is written: the `load_from_disk` files, records.jsonl and, last, prepare.json."""
    work = output / WORK_DIR
    features = prepared_features(plan.videos, options.faces)
    rows = write_dataset_dict(output, plan.splits, features, plan.key(options))
    concatenate_records(work, len(plan.chunks), output / RECORDS_FILE)
    statuses = Counter(json.loads(line)["status"] for line in open(output / RECORDS_FILE))
    description = _description(plan, options, output)
    write_json(output / PREPARE_FILE, {**description, "files": len(plan.files), "rows": rows, "statuses": statuses})
    shutil.rmtree(work)


def _summary(output: Path, reused: bool = False, resumed: int = 0, seconds: float = 0.0) -> PrepareSummary:
    """The summary of a complete preparation, from prepare.json and the records (streamed)."""
    recorded = json.loads((output / PREPARE_FILE).read_text())
    summary = PrepareSummary(output, recorded["files"], recorded["rows"], Counter(recorded["statuses"]))
    summary.reused, summary.resumed, summary.seconds = reused, resumed, seconds
    with open(output / RECORDS_FILE) as records:
        for line in records:
            record = json.loads(line)
            if record["status"] != "ok" and len(summary.problems) < MAX_LISTED:
                summary.problems.append(record)
    return summary
