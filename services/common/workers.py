"""Worker processes for a consumer's CPU-bound, I/O-free work on a batch of records (signature checks).

A batch's raw values (bytes cross a process boundary far cheaper than parsed objects) are split evenly
across the workers, each runs the same pure function over its share, and the results come back in input
order. The ledger verifies rewards' evidence this way, the rewards worker the readings' signatures.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import multiprocessing
import os
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from services.common.lifetime import die_with_parent

log = logging.getLogger(__name__)

Result = TypeVar("Result")


def _start_worker(owner_pid: int, modules: Sequence[str]) -> None:
    # Ctrl-C reaches the whole process group; the owning process stops its workers in its own time. If
    # the owner is killed outright (SIGKILL), its workers go with it instead of waiting forever.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(signal.SIGKILL, owner_pid)
    # Imported now, at start-up: a spawned worker otherwise imports its function's module when the first batch
    # unpickles it (seconds of CPU on a loaded machine), and that batch waits.
    for module in modules:
        importlib.import_module(module)


class WorkerPool:
    """`workers` processes running a pure ``function(raw_values, *args) -> results`` over a batch's shares.

    Spawned, not forked: the owning process runs librdkafka and asyncio threads a fork would copy
    mid-flight. A pool broken by a worker that died is replaced; that batch fails (`BrokenProcessPool`) and
    the caller retries it (the ledger's consumer) or does the work itself (the rewards worker).
    """

    def __init__(self, workers: int, runs: Sequence[Callable[..., Any]] = ()) -> None:
        """`workers` processes, each importing the modules of the functions it `runs` as it starts."""
        if workers < 1:
            raise ValueError("a worker pool needs at least one worker")
        self.workers = workers
        self._modules = sorted({function.__module__ for function in runs})
        self._pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(os.getpid(), self._modules),
        )
        # Start every worker now (a spawned worker takes seconds to import what it runs), not when the
        # first batch is waiting for them.
        for _ in range(self.workers):
            pool.submit(os.getpid)
        return pool

    @property
    def pids(self) -> list[int]:
        """The worker processes' ids."""
        return list(self._pool._processes or {})

    async def map(
        self, function: Callable[..., list[Result]], raw_values: Sequence[Any], *args: Any
    ) -> list[Result]:
        """``function(share, *args)`` on each worker's share of `raw_values`, concatenated in input order.

        `function` must be a module-level function (it is pickled by name). Raises `BrokenProcessPool`
        (after replacing the pool) if a worker died.
        """
        if not raw_values:
            return []
        loop = asyncio.get_running_loop()
        size = -(-len(raw_values) // self.workers)
        shares = [list(raw_values[i : i + size]) for i in range(0, len(raw_values), size)]
        pool = self._pool
        try:
            results = await asyncio.gather(
                *(loop.run_in_executor(pool, function, share, *args) for share in shares)
            )
        except BrokenProcessPool:
            if self._pool is pool:
                log.warning("a worker process died; starting a new pool")
                pool.shutdown(wait=False, cancel_futures=True)
                self._pool = self._start()
            raise
        return [item for share in results for item in share]

    def shutdown(self) -> None:
        self._pool.shutdown(cancel_futures=True)
