"""Resident memory and CPU time of process trees (a root process and all its descendants)."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType

import psutil

__all__ = ["RssSampler", "paused", "tree_cpu_s", "tree_pids", "tree_rss"]


def _tree(pids: Sequence[int]) -> list[psutil.Process]:
    procs = []
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            root = psutil.Process(pid)
            procs += [root, *root.children(recursive=True)]
    return procs


def tree_pids(pids: Sequence[int]) -> list[int]:
    """The processes ``pids`` and their live descendants."""
    return [proc.pid for proc in _tree(pids)]


def tree_rss(pids: Sequence[int]) -> int:
    """Bytes resident in the processes ``pids`` and their descendants, summed.

    Forked children share their parent's untouched pages, which a sum of RSS
    counts once per process: an upper bound of what the tree really holds.
    """
    total = 0
    for proc in _tree(pids):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += proc.memory_info().rss
    return total


def tree_cpu_s(pids: Sequence[int]) -> float:
    """CPU seconds (user + system) the processes ``pids`` and their live descendants have used."""
    total = 0.0
    for proc in _tree(pids):
        with contextlib.suppress(psutil.NoSuchProcess):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


@contextlib.contextmanager
def paused(pids: Sequence[int]) -> Iterator[None]:
    """The process trees of ``pids`` stopped (SIGSTOP) for the block, continued after:
    idle workers of the systems not being measured take no CPU from the one that is."""
    me = os.getpid()  # never this process (a test's stand-in system names it)
    procs = [proc for proc in _tree(pids) if proc.pid != me]
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.suspend()
    try:
        yield
    finally:
        for proc in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.resume()


class RssSampler:
    """Samples :func:`tree_rss` of ``pids()`` in a background thread; ``peak`` is the largest."""

    def __init__(self, pids: Callable[[], Sequence[int]], *, interval_s: float = 0.1) -> None:
        self._pids = pids
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)
        self.peak = 0
        self.samples = 0

    def _loop(self) -> None:
        while True:
            self.peak = max(self.peak, tree_rss(self._pids()))
            self.samples += 1
            if self._stop.wait(self._interval_s):
                return

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()
