"""Arrow files of a preparation: the journal of finished files, the shards of finished chunks, and the
`DatasetDict` folder `datasets.load_from_disk` opens.

Each finished file is appended to its chunk's journal at once (one Arrow IPC message: its rows, with its record
in the message's metadata), so a run killed at any moment keeps every file it had finished; a message cut off
by the kill is ignored when the journal is read back. When every file of a chunk is in, the chunk's rows are
written in plan order as one shard per split (written aside, then renamed into place) and its records file,
written last, marks the chunk done. Shards are written directly: nothing is copied through `save_to_disk`.
"""

import json
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from datasets import DatasetInfo, Features

from ...files import atomic_target, write_json


WRITER_BATCH_SIZE = 1000
"""Rows per Arrow record batch in a shard (as `datasets` writes them)."""


class ChunkJournal:
    """The finished files of one chunk, appended to a fresh journal segment as they arrive."""

    def __init__(self, work: Path, chunk: int, schema: pa.Schema):
        segment = len(list(work.glob(f"journal-{chunk:05d}-*.arrow")))
        self.schema = schema
        self._file = open(work / f"journal-{chunk:05d}-{segment:03d}.arrow", "wb")
        self._writer = pa.ipc.new_stream(self._file, schema)

    def add(self, index: int, rows: list[dict], record: dict) -> None:
        """Append one file's rows and record, and hand them to the operating system at once."""
        batch = pa.RecordBatch.from_pylist(rows, schema=self.schema)
        self._writer.write_batch(batch, custom_metadata={"index": str(index), "record": json.dumps(record)})
        self._file.flush()

    def close(self) -> None:
        self._writer.close()
        self._file.close()


def read_journal(work: Path, chunk: int) -> dict[int, tuple[pa.RecordBatch, dict]]:
    """Every complete file in a chunk's journal segments: index -> (rows, record); a message cut off by a kill
    ends its segment."""
    finished = {}
    for path in sorted(work.glob(f"journal-{chunk:05d}-*.arrow")):
        try:
            reader = pa.ipc.open_stream(pa.memory_map(str(path)))
            while True:
                batch, metadata = reader.read_next_batch_with_custom_metadata()
                finished[int(metadata[b"index"])] = (batch, json.loads(metadata[b"record"]))
        except (StopIteration, pa.ArrowInvalid, OSError):
            continue
    return finished


def remove_journal(work: Path, chunk: int) -> None:
    for path in work.glob(f"journal-{chunk:05d}-*.arrow"):
        path.unlink()


def write_chunk(
    output: Path, work: Path, chunk: int, finished: list[tuple[pa.RecordBatch, dict]], schema: pa.Schema
) -> None:
    """Write a chunk's rows (`finished`, in plan order) as one shard per split, then its records file, which marks
    the chunk done; the journal goes last."""
    table = pa.Table.from_batches([batch for batch, _ in finished], schema=schema).combine_chunks()
    for split in dict.fromkeys(table.column("split").to_pylist()):
        shard = output / split / shard_name(chunk)
        shard.parent.mkdir(exist_ok=True)
        with atomic_target(shard) as temporary, pa.OSFile(str(temporary), "wb") as sink:
            with pa.ipc.new_stream(sink, schema) as writer:
                writer.write_table(table.filter(pc.equal(table["split"], split)), max_chunksize=WRITER_BATCH_SIZE)
    with atomic_target(records_path(work, chunk)) as temporary:
        temporary.write_text("".join(json.dumps(record) + "\n" for _, record in finished))
    remove_journal(work, chunk)


def shard_name(chunk: int) -> str:
    return f"data-{chunk:05d}.arrow"


def records_path(work: Path, chunk: int) -> Path:
    return work / f"records-{chunk:05d}.jsonl"


def write_dataset_dict(output: Path, splits: Iterable[str], features: Features, fingerprint: str) -> dict[str, int]:
    """The `load_from_disk` files of every split that has shards (state.json, dataset_info.json) and
    dataset_dict.json; returns the rows of each split."""
    rows = {}
    for split in splits:
        shards = sorted((output / split).glob("data-*.arrow"))
        if not shards:
            continue
        rows[split] = sum(_count_rows(shard) for shard in shards)
        state = {
            "_data_files": [{"filename": shard.name} for shard in shards],
            "_fingerprint": f"{fingerprint[:16]}-{split}",
            "_format_columns": None,
            "_format_kwargs": {},
            "_format_type": None,
            "_output_all_columns": False,
            "_split": split,
        }
        write_json(output / split / "state.json", state)
        DatasetInfo(description="Prepared by `corit prepare`.", features=features).write_to_directory(
            str(output / split)
        )
    write_json(output / "dataset_dict.json", {"splits": list(rows)})
    return rows


def _count_rows(shard: Path) -> int:
    with pa.memory_map(str(shard)) as source:
        return sum(batch.num_rows for batch in pa.ipc.open_stream(source))


def concatenate_records(work: Path, chunks: int, target: Path) -> None:
    """The chunks' records, in plan order, as one JSON Lines file (streamed, never held whole in memory)."""
    with atomic_target(target) as temporary, open(temporary, "w") as stream:
        for chunk in range(chunks):
            with open(records_path(work, chunk)) as part:
                for line in part:
                    stream.write(line)
