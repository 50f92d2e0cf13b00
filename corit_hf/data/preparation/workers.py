"""The worker processes of `corit prepare`: batches of files prepared in parallel, and a file whose decoding kills
its worker (a crash in a native decoder, or the memory it takes) retried alone, then recorded as `crashed`.

Decoding runs in worker processes even with one of them, so no input can take the main process, which holds the
journals, down with it.
"""

import ctypes
import multiprocessing
import signal
import sys
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from ...video.faces import FaceDetector
from .prepared_format import PrepareOptions
from .records import FileResult, SourceFile, crashed_result, prepare_file


PR_SET_PDEATHSIG = 1
"""Linux prctl option: the signal a process gets when its parent dies."""


def prepared_results(
    batches: Iterator[list[SourceFile]], roots: list[str], options: PrepareOptions, num_proc: int
) -> Iterator[FileResult]:
    """The result of every file in `batches`, as they finish, from `num_proc` worker processes. When a worker
    dies, the files that were in flight are prepared again one at a time, each in a fresh process; a file that
    kills that one too gives a `crashed` record, and the other files go on in a new pool."""
    while True:
        suspects = yield from _pool_results(batches, roots, options, num_proc)
        if suspects is None:
            return
        for task in suspects:
            yield _result_alone(task, roots, options)


def _pool_results(
    batches: Iterator[list[SourceFile]], roots: list[str], options: PrepareOptions, num_proc: int
) -> Iterator[FileResult]:
    """Results from a pool of `num_proc` workers, with at most two batches per worker in flight so memory stays
    bounded. Returns None once `batches` is exhausted, or the files in flight when a worker died."""
    in_flight: dict = {}
    with _pool(num_proc, roots, options) as pool:
        try:
            while True:
                while len(in_flight) < 2 * num_proc and (batch := next(batches, None)) is not None:
                    in_flight[pool.submit(_work, batch)] = batch
                if not in_flight:
                    return None
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    results = future.result()
                    del in_flight[future]
                    yield from results
        except BrokenProcessPool:
            return [task for batch in in_flight.values() for task in batch]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _result_alone(task: SourceFile, roots: list[str], options: PrepareOptions) -> FileResult:
    """One file prepared in a process of its own: its result, or a `crashed` record if that process dies."""
    with _pool(1, roots, options) as pool:
        try:
            return pool.submit(_work, [task]).result()[0]
        except BrokenProcessPool:
            return crashed_result(task)


def _pool(num_proc: int, roots: list[str], options: PrepareOptions) -> ProcessPoolExecutor:
    """Worker processes, forked where that is safe (Linux), else spawned."""
    context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    return ProcessPoolExecutor(num_proc, mp_context=context, initializer=_start_worker, initargs=(roots, options))


class _Worker:
    """One process's file preparation, with its own face detector (one onnxruntime thread), opened on first use."""

    def __init__(self, roots: list[str], options: PrepareOptions):
        self.roots, self.options, self._detector = roots, options, None

    def __call__(self, batch: list[SourceFile]) -> list[FileResult]:
        if self.options.faces and self._detector is None:
            self._detector = FaceDetector(threads=1)
        return [prepare_file(task, self.roots[task.source], self.options, self._detector) for task in batch]


_worker: _Worker | None = None


def _start_worker(roots: list[str], options: PrepareOptions) -> None:
    """Worker process set-up: Ctrl-C is the main process's to handle (it stops the pool), and on Linux a worker
    ends with the main process even when that is killed outright."""
    global _worker
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    _worker = _Worker(roots, options)


def _work(batch: list[SourceFile]) -> list[FileResult]:
    return _worker(batch)
