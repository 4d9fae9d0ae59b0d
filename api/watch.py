"""One store poller per API process for every run followed over Server-Sent Events.

Each stream subscribes to its run (:meth:`RunWatcher.watch`); one task polls the
store every ``interval_s`` with ONE read of every run watched
(``Store.get_runs``), in a worker thread (store calls block), and hands each
subscriber its run's new snapshot. So the store sees one read per interval per
process whether one browser or five hundred follow runs, and a change reaches
every stream within one interval. The task runs while anyone watches and
stops with the last subscriber; a subscription ends with its stream (the
client leaving cancels it), and :meth:`RunWatcher.close` stops the task when
the app shuts down. A store error is logged once (and its end once) and the
next tick tries again: the streams stay open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence

from starlette.concurrency import run_in_threadpool

from podflow.errors import StoreError
from podflow.models import Run

__all__ = ["RunWatcher", "Subscription"]

log = logging.getLogger(__name__)


class Subscription:
    """One stream's view of its run: the latest snapshot (None once the run is
    gone) and a wake-up when the poller brings a new one."""

    def __init__(self, run: Run) -> None:
        self.run_id = run.run_id
        self.latest: Run | None = run
        self._fresh = asyncio.Event()

    def offer(self, run: Run | None) -> None:
        self.latest = run
        self._fresh.set()

    async def wait(self, timeout_s: float) -> bool:
        """Until a new snapshot arrives (True) or ``timeout_s`` passes (False)."""
        try:
            await asyncio.wait_for(self._fresh.wait(), timeout_s)
        except TimeoutError:
            return False
        self._fresh.clear()
        return True


class RunWatcher:
    """The process's poller. ``fetch`` reads many runs at once (``Store.get_runs``; blocking)."""

    def __init__(self, fetch: Callable[[Sequence[str]], Mapping[str, Run]], *, interval_s: float) -> None:
        self._fetch = fetch
        self.interval_s = interval_s
        self._watching: dict[str, set[Subscription]] = {}
        self._task: asyncio.Task[None] | None = None
        #: store reads made so far (one per tick with anyone watching)
        self.polls = 0
        #: whether the ticks have met a store error since the last read that worked
        self._down = False

    @property
    def subscribers(self) -> int:
        return sum(len(subs) for subs in self._watching.values())

    @contextlib.asynccontextmanager
    async def watch(self, run: Run) -> AsyncIterator[Subscription]:
        """Follow ``run`` (as just read) until the block ends."""
        sub = Subscription(run)
        self._watching.setdefault(run.run_id, set()).add(sub)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._poll(), name="podflow-run-watcher")
        try:
            yield sub
        finally:
            subs = self._watching.get(run.run_id, set())
            subs.discard(sub)
            if not subs:
                self._watching.pop(run.run_id, None)

    async def _poll(self) -> None:
        try:
            while self._watching:
                await asyncio.sleep(self.interval_s)
                run_ids = list(self._watching)
                if not run_ids:
                    break
                try:
                    runs = await run_in_threadpool(self._fetch, run_ids)
                except StoreError as exc:  # a blip: keep the streams, try again next tick
                    if not self._down:  # once per outage, not once per tick
                        log.warning("events: store unavailable (retrying every %g s): %s", self.interval_s, exc)
                    self._down = True
                    continue
                finally:
                    self.polls += 1
                if self._down:
                    log.info("events: the store answers again")
                    self._down = False
                for run_id in run_ids:
                    for sub in list(self._watching.get(run_id, ())):
                        sub.offer(runs.get(run_id))
        finally:
            self._task = None

    async def close(self) -> None:
        """Stop polling (the app is shutting down)."""
        task = self._task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
