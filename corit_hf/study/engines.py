"""Engines that train the collapse study's runs: a local process pool (the default) or one Ray task per run.

An engine gets the pending runs and yields each result as it finishes; the driver (`run_study`) alone writes the
cell files, so the machines that train need no storage shared with it. A run that raises comes back as a
`RunFailure` while the other runs go on. Ray is imported only when its engine is made (the `ray` extra).
"""

import multiprocessing
import os
import socket
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Protocol

import torch
from transformers.utils import logging as transformers_logging

from ..extras import import_extra


RunKey = tuple[str, float, int]
"""One run of the study: (configuration, rho, seed)."""
TrainRun = Callable[..., dict]
"""`train(splits, config, rho, seed)` -> the run's cell; picklable, as it travels to the workers."""
MAX_DEFAULT_WORKERS = 4
RAY_MAX_RETRIES = 3
"""Attempts after the first when a run's worker process or node dies (Python exceptions are not retried)."""
RAY_CONNECT_TIMEOUT = 10.0
"""Seconds to wait for the head node of a HOST:PORT `--ray-address` to accept a connection."""


@dataclass
class RunFailure:
    """A run that raised, or whose worker died more often than retried: recorded in study.json, not as a cell."""

    error: str
    traceback: str

    @classmethod
    def from_exception(cls, error: BaseException) -> "RunFailure":
        lines = str(error).strip().splitlines()
        return cls(f"{type(error).__name__}: {lines[0] if lines else ''}", "".join(traceback.format_exception(error)))


class Engine(Protocol):
    """Trains runs of the study somewhere and hands their results back to the driver one by one."""

    def run(self, train: TrainRun, splits: dict, keys: list[RunKey]) -> Iterator[tuple[RunKey, dict | RunFailure]]:
        """Train every run in `keys` on `splits`; yield (key, cell or failure) as each finishes."""


def default_workers() -> int:
    """Runs trained at once on this machine by default: one per CPU, at most MAX_DEFAULT_WORKERS (each holds the
    study's in-memory splits)."""
    return max(1, min(MAX_DEFAULT_WORKERS, os.cpu_count() or 1))


def train_or_fail(train: TrainRun, splits: dict, key: RunKey) -> dict | RunFailure:
    """One run's cell, or its failure if it raised: one failing run must not stop the others."""
    try:
        return train(splits, *key)
    except Exception as error:
        return RunFailure.from_exception(error)


def prepare_worker(threads: int) -> None:
    """Set up a process that trains runs: its torch threads (a run's numbers depend on them), quiet transformers."""
    torch.set_num_threads(threads)
    transformers_logging.set_verbosity_error()


@dataclass
class LocalEngine:
    """This machine: in this process (`workers` = 1, torch's default threads) or in a pool of `workers` spawned
    processes with CPUs // workers torch threads each (default: one worker per CPU, at most 4). A pool worker that
    dies stops the study; the finished runs are kept and a rerun trains the rest.

    Small models use one core far better than two threads do. The workers are spawned, so scripts that use the pool
    need the usual `if __name__ == "__main__":` guard.
    """

    workers: int | None = None

    def __post_init__(self):
        self.workers = self.workers or default_workers()
        if self.workers < 1:
            raise ValueError(f"workers must be positive, got {self.workers}.")

    def run(self, train: TrainRun, splits: dict, keys: list[RunKey]) -> Iterator[tuple[RunKey, dict | RunFailure]]:
        if self.workers == 1:
            for key in keys:
                yield key, train_or_fail(train, splits, key)
            return
        threads = max(1, (os.cpu_count() or 1) // self.workers)
        context = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(
            self.workers, mp_context=context, initializer=_start_pool_worker, initargs=(splits, threads)
        )
        with pool:
            futures = {pool.submit(_train_in_pool_worker, train, key): key for key in keys}
            try:
                for future in as_completed(futures):
                    yield futures[future], future.result()
            finally:  # after a failure or an early stop, do not wait for the runs not yet started
                pool.shutdown(cancel_futures=True)


_pool_splits: dict = {}
"""Inside a pool worker: the study's splits, received once by `_start_pool_worker`."""


def _start_pool_worker(splits: dict, threads: int) -> None:
    prepare_worker(threads)
    _pool_splits.update(splits)


def _train_in_pool_worker(train: TrainRun, key: RunKey) -> dict | RunFailure:
    return train_or_fail(train, _pool_splits, key)


@dataclass
class RayEngine:
    """One Ray task per run, on the Ray cluster at `address` ("auto" or HOST:PORT) or, without one, on a local Ray
    started for the study and stopped after it; a Ray already initialised in this process is used as it is.

    Each run asks for `cpus_per_run` CPUs (and as many torch threads) and `gpus_per_run` GPUs (default: 1 where
    the cluster has GPUs, else 0: a GPU request on a CPU-only cluster would wait forever). A run whose worker
    process or node dies is retried `max_retries` times. The splits go to the workers through Ray's object store;
    whatever they refer to on disk (lazily read data, the backbone) must be at the same path on every node.
    """

    address: str | None = None
    gpus_per_run: float | None = None
    cpus_per_run: float = 1
    max_retries: int = RAY_MAX_RETRIES

    def __post_init__(self):
        if self.cpus_per_run <= 0:
            raise ValueError(f"cpus_per_run must be positive, got {self.cpus_per_run:g}.")
        if self.gpus_per_run is not None and self.gpus_per_run < 0:
            raise ValueError(f"gpus_per_run must be at least 0, got {self.gpus_per_run:g}.")
        import_ray()  # a missing extra fails here, before any work
        check_reachable(self.address)

    def run(self, train: TrainRun, splits: dict, keys: list[RunKey]) -> Iterator[tuple[RunKey, dict | RunFailure]]:
        ray = import_ray()
        started_here = not ray.is_initialized()
        if started_here:
            try:
                ray.init(address=self.address)
            except ConnectionError as error:
                raise ValueError(f"no Ray cluster at --ray-address {self.address}: {error}") from None
        try:
            yield from self._run_tasks(ray, train, splits, keys)
        finally:
            if started_here:
                ray.shutdown()

    def _run_tasks(self, ray, train: TrainRun, splits: dict, keys: list[RunKey]):
        resources = {"num_cpus": self.cpus_per_run, "num_gpus": self._gpus(ray)}
        check_schedulable(ray, resources)
        # Resources go to ray.remote, not .options(): there Ray makes a GPU task's worker exit after it (max_calls=1),
        # which frees the GPU memory the run's process cached.
        task = ray.remote(max_retries=self.max_retries, **resources)(_train_in_ray_task)
        splits_ref = ray.put(splits)
        threads = max(1, int(self.cpus_per_run))
        pending = {task.remote(train, splits_ref, key, threads): key for key in keys}
        try:
            while pending:
                [done], _ = ray.wait(list(pending), num_returns=1)
                yield pending.pop(done), _ray_result(ray, done)
        finally:  # after an early stop, the runs not yet finished are not wanted any more
            for ref in pending:
                ray.cancel(ref)

    def _gpus(self, ray) -> float:
        if self.gpus_per_run is not None:
            return self.gpus_per_run
        return 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0


def import_ray():
    """The `ray` module, or a clear error naming the extra that installs it."""
    return import_extra("ray", "ray", "--engine ray needs Ray")


def check_reachable(address: str | None, timeout: float = RAY_CONNECT_TIMEOUT) -> None:
    """Fail at once where nothing listens at a HOST:PORT `--ray-address` (ray.init would retry for minutes)."""
    if address is None or address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--ray-address must be auto or HOST:PORT, got {address!r}.")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as error:
        raise ValueError(f"no Ray cluster at --ray-address {address}: {error}") from None


def check_schedulable(ray, resources: dict[str, float]) -> None:
    """Fail at once where no node of the cluster could ever run a run (Ray would keep it waiting forever)."""
    nodes = [node["Resources"] for node in ray.nodes() if node["Alive"]]
    for option, name in (("num_cpus", "CPU"), ("num_gpus", "GPU")):
        wanted = resources[option]
        most = max((node.get(name, 0) for node in nodes), default=0)
        if wanted > most:
            flag = f"--{name.lower()}s-per-run"
            raise ValueError(f"{flag} {wanted:g} asks for more {name}s than any Ray node has (at most {most:g}).")


def _train_in_ray_task(train: TrainRun, splits: dict, key: RunKey, threads: int) -> dict | RunFailure:
    prepare_worker(threads)
    return train_or_fail(train, splits, key)


def _ray_result(ray, ref) -> dict | RunFailure:
    """A finished task's cell or failure; a worker or node that died once more than retried is a failure too."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as error:
        return RunFailure.from_exception(error)
