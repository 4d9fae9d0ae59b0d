"""The background event loop: provider calls and subprocesses, interruptible from the generator.

podflow stops a generation by raising an exception in the generator's thread
(cancellation, lost lease, soft time limit, shutdown). Such an exception
cannot break into a blocking socket read: a thread waiting 60 s for an LLM
reply would only notice after it. So generators never block on the network
themselves. :func:`run` hands a coroutine to one event loop per process
(a daemon thread that nothing interrupts) and waits for it in steps of
``POLL_S``, passing on its progress reports. When the wait is interrupted it
cancels the coroutine, which closes its HTTP connections (the provider sees
the request aborted), kills its subprocesses and releases its concurrency
slots in ``finally`` blocks, waits until that clean-up is done, and re-raises.

Work on the loop reports progress through a :class:`Reporter`; the reports
are written by the generator's thread (``ctx.progress`` also checks for
cancellation there).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import queue
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from .base import GenerationContext

__all__ = ["POLL_S", "Reporter", "loop", "run"]

T = TypeVar("T")

#: the longest the generator's thread waits at a time
POLL_S = 0.05
#: how long an interrupted generator waits for the cancelled work to clean up
CANCEL_GRACE_S = 10.0


class Reporter:
    """Progress reports from the loop to the generator's thread. Thread-safe.

    ``progress`` sets the stage and percent; ``note`` reports a message at the
    last ones (a wait, a retry), so a call deep inside a stage need not know them.
    """

    def __init__(self, stage: str, percent: float) -> None:
        self.stage, self.percent = stage, percent
        self._queue: queue.SimpleQueue[tuple[str, float, str]] = queue.SimpleQueue()

    def progress(self, stage: str, percent: float, message: str) -> None:
        self.stage, self.percent = stage, percent
        self._queue.put((stage, percent, message))

    def note(self, message: str) -> None:
        self._queue.put((self.stage, self.percent, message))

    def drain(self, ctx: GenerationContext) -> None:
        """Write the pending reports (in the generator's thread). Raises an interrupt like ``ctx.progress``."""
        while True:
            try:
                stage, percent, message = self._queue.get_nowait()
            except queue.Empty:
                return
            ctx.progress(stage, percent, message)


class _Loop:
    """One event loop in a daemon thread, started on first use in each process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0

    def get(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid():  # a forked child starts its own
                ready = threading.Event()
                self._loop = asyncio.new_event_loop()
                self._pid = os.getpid()
                args = (self._loop, ready)
                threading.Thread(target=self._serve, args=args, name="podflow-loop", daemon=True).start()
                ready.wait()
            return self._loop

    @staticmethod
    def _serve(event_loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(event_loop)
        event_loop.call_soon(ready.set)
        event_loop.run_forever()


_LOOP = _Loop()


def loop() -> asyncio.AbstractEventLoop:
    """This process's background event loop."""
    return _LOOP.get()


def run(ctx: GenerationContext, work: Callable[[Reporter], Awaitable[T]], *, stage: str, percent: float) -> T:
    """Run ``work(reporter)`` on the background loop and return its result, in the generator's thread.

    ``stage`` and ``percent`` start the reporter. Whatever ``work`` raises is
    raised here. An interrupt of this thread (or one raised by a progress
    report) cancels ``work`` and is re-raised once ``work`` has finished
    cleaning up (at most :data:`CANCEL_GRACE_S`).
    """
    reporter = Reporter(stage, percent)
    finished = threading.Event()
    result: concurrent.futures.Future[T] = concurrent.futures.Future()
    tasks: list[asyncio.Task[T]] = []
    started = False  # read and written on the loop's thread only

    async def guarded() -> T:
        nonlocal started
        started = True
        try:
            return await work(reporter)
        finally:
            finished.set()

    def start() -> None:  # on the loop's thread
        task = event_loop.create_task(guarded())
        task.add_done_callback(lambda done: _settle(done, result))
        tasks.append(task)

    def cancel() -> None:  # on the loop's thread, after start() if it was scheduled: `started` cannot change meanwhile
        if not tasks:  # interrupted before start() was scheduled: nothing runs
            finished.set()
            return
        tasks[0].cancel()
        if not started:  # a task cancelled before its first step never runs its body
            finished.set()

    event_loop = loop()
    try:
        # inside the try: an interrupt may land while this schedules start() and the
        # work has begun already; it must still be cancelled
        event_loop.call_soon_threadsafe(start)
        while True:
            done, _ = concurrent.futures.wait([result], timeout=POLL_S)
            reporter.drain(ctx)
            if done:
                return result.result()
            ctx.check_cancelled()
    except BaseException:
        event_loop.call_soon_threadsafe(cancel)
        _wait(finished)
        raise


def _settle(task: asyncio.Task[T], result: concurrent.futures.Future[T]) -> None:
    if task.cancelled():
        result.cancel()
    elif (exc := task.exception()) is not None:
        result.set_exception(exc)
    else:
        result.set_result(task.result())


def _wait(finished: threading.Event) -> None:
    """Wait for cancelled work to clean up, in short steps (a second interrupt never
    comes: the first one wins), but never longer than CANCEL_GRACE_S."""
    for _ in range(int(CANCEL_GRACE_S / POLL_S)):
        if finished.wait(POLL_S):
            return
