"""PODFLOW_MODE=thread: execute runs inside the API process, without a broker.

:class:`ThreadExecutor` is both the dispatcher (``submit`` hands it runs) and a
bounded pool of PODFLOW_CONCURRENCY threads running the same
:class:`~podflow.runner.Runner` as the Dramatiq actor: claim, heartbeat,
cancellation, attempts. What Dramatiq's middleware does in a worker it does
itself: the heartbeat monitor enforces the soft time limit, and a transient
failure is retried after an exponential backoff (a timer) while attempts
remain; a run released without failing (the soft time limit after new
checkpoints) is sent again at once.

Its queue lives in memory and is served in priority order (high, normal, low;
first in, first out within a band); a scheduled run waits on a timer until its
``start_at``. It never marks a run enqueued: a run stays in
the outbox until a claim clears it. At ``start()`` and every
PODFLOW_SWEEP_INTERVAL it runs the sweep with itself as dispatcher, which
picks up what a restart left behind: PENDING runs in the outbox, and STARTED
runs whose heartbeat went stale (released for the next attempt) or that were
released with no retry of this process's in sight (:meth:`ThreadExecutor.missing`
knows exactly which runs it holds: queued, running, or waiting for a retry).

``stop()`` interrupts running generations (they are released and resume after
the next start, once their heartbeat is stale) and leaves queued runs in the
outbox.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from ..errors import BrokerUnavailable, WorkerShutdown
from ..generation.base import Generator
from ..generation.loader import load_generator
from ..heartbeat import HeartbeatMonitor
from ..logs import run_fields
from ..models import PRIORITIES, Mode, Priority, RunRef
from ..retry import MAX_MESSAGE_RETRIES, RESUME_DELAY_MS, backoff_ms, is_retryable, resumes_at_once
from ..runner import Runner, build_runner
from ..store.base import Store
from ..sweep import SweepPolicy, SweepReport, sweep
from ..timeutil import utcnow

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = ["ThreadExecutor", "build_thread_executor"]

log = logging.getLogger(__name__)


class ThreadExecutor:
    """A pool of threads executing runs; also the thread-mode :class:`~podflow.dispatch.Dispatcher`.

    Parameters:
      store, runner: the runner's monitor is started and stopped with the pool.
      concurrency: pool threads (PODFLOW_CONCURRENCY).
      policy, sweep_interval_s: the sweep run at start and periodically.
      retry_backoff_s, retry_backoff_max_s: the retry delays of transient failures.
    """

    mode: Mode = "thread"
    durable = False

    def __init__(
        self,
        *,
        store: Store,
        runner: Runner,
        concurrency: int,
        policy: SweepPolicy,
        sweep_interval_s: float,
        retry_backoff_s: float = 15.0,
        retry_backoff_max_s: float = 600.0,
        max_retries: int = MAX_MESSAGE_RETRIES,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.runner = runner
        self.concurrency = concurrency
        self.policy = policy
        self.sweep_interval_s = sweep_interval_s
        self.retry_backoff_s = retry_backoff_s
        self.retry_backoff_max_s = retry_backoff_max_s
        self.max_retries = max_retries
        self._clock = clock
        #: (band rank, arrival, run_id): the highest band first, then first in
        self._queue: queue.PriorityQueue[tuple[int, int, str]] = queue.PriorityQueue()
        self._arrivals = itertools.count()
        self._priorities: dict[str, Priority] = {}  # of the runs queued, running or scheduled
        self._lock = threading.Lock()
        self._pending: set[str] = set()  # queued or running: a second send is a no-op
        self._retries: dict[str, int] = {}
        self._timers: set[threading.Timer] = set()
        self._scheduled: set[str] = set()  # a retry timer will send them
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    # -- Dispatcher ---------------------------------------------------------------
    def new_message_id(self) -> None:
        return None

    def missing(self, refs: Sequence[RunRef]) -> set[str]:
        """The runs this process neither queued, runs, nor will retry: lost with
        a previous process (or never sent here)."""
        with self._lock:
            return {r.run_id for r in refs if r.run_id not in self._pending and r.run_id not in self._scheduled}

    def requeue_orphans(self) -> None:
        return None

    def send(
        self,
        run_id: str,
        message_id: str | None = None,
        *,
        store_id: str | None = None,
        priority: Priority = "normal",
        start_at: datetime | None = None,
        now: datetime | None = None,
    ) -> None:
        """Queue ``run_id`` in its band (once: a run already queued, running or
        waiting for its start is not queued again); a scheduled one when its
        ``start_at`` comes.

        Raises:
          BrokerUnavailable: the executor is stopping (the run stays in the outbox).
        """
        if self._stopping.is_set():
            raise BrokerUnavailable("the thread-mode executor is stopping")
        delay_s = (start_at - now).total_seconds() if start_at is not None and now is not None else 0.0
        with self._lock:
            if run_id in self._pending or (delay_s > 0 and run_id in self._scheduled):
                return
            self._priorities[run_id] = priority
            if delay_s > 0:
                self._schedule(run_id, delay_s)
                return
            self._pending.add(run_id)
        self._queue.put((PRIORITIES.index(priority), next(self._arrivals), run_id))

    # -- lifecycle --------------------------------------------------------------
    def start(self) -> None:
        """Start the heartbeat, the pool and the sweeper (which sweeps at once)."""
        if self._threads:
            return
        self.runner.monitor.start()
        for n in range(self.concurrency):
            self._spawn(self._work, f"podflow-run-{n}")
        self._spawn(self._sweep_loop, "podflow-sweep")

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop: interrupt running generations (released for a later attempt) and wait
        up to ``timeout_s`` for the threads; queued runs stay in the outbox."""
        self._stopping.set()
        with self._lock:
            timers, self._timers = self._timers, set()
            self._scheduled.clear()  # their runs stay released, for the sweep after the next start
        for timer in timers:
            timer.cancel()
        count = self.runner.monitor.interrupt_all(WorkerShutdown, "the API process is stopping")
        if count:
            log.info("thread mode: interrupting %d running generation(s)", count)
        for thread in self._threads:
            thread.join(timeout_s)
        self._threads.clear()
        self.runner.monitor.stop()

    def sweep_now(self) -> SweepReport:
        """Run the whole sweep once, dispatching to this pool."""
        return sweep(self.store, now=self._clock(), policy=self.policy, dispatcher=self)

    # -- threads ----------------------------------------------------------------
    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _work(self) -> None:
        while not self._stopping.is_set():
            try:
                _, _, run_id = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            self._execute(run_id)

    def _execute(self, run_id: str) -> None:
        try:
            try:
                self.runner.execute(run_id)
            finally:  # before a retry is scheduled: one sent at once must not find it still queued
                with self._lock:
                    self._pending.discard(run_id)
        except BaseException as exc:
            if self._stopping.is_set():
                log.info("run %s: stopped with the pool (%s)", run_id, type(exc).__name__, extra=run_fields(run_id))
            elif is_retryable(exc) or resumes_at_once(exc):
                self._retry_later(run_id, exc)
            else:
                log.error("run %s: execution failed", run_id, exc_info=exc, extra=run_fields(run_id))
        else:
            with self._lock:
                self._retries.pop(run_id, None)
                self._priorities.pop(run_id, None)

    def _retry_later(self, run_id: str, exc: BaseException) -> None:
        resumed = resumes_at_once(exc)  # no failure: none of the run's retries (as in a worker)
        with self._lock:
            retries = self._retries.get(run_id, 0)
            if retries >= self.max_retries and not resumed:
                self._retries.pop(run_id, None)
                log.error("run %s: giving up after %d retries: %s", run_id, retries, exc, extra=run_fields(run_id))
                return
            if not resumed:
                self._retries[run_id] = retries + 1
            delay_ms = RESUME_DELAY_MS if resumed else backoff_ms(
                retries,
                min_ms=max(1, int(self.retry_backoff_s * 1000)),
                max_ms=max(1, int(self.retry_backoff_max_s * 1000)),
            )  # fmt: skip
            self._schedule(run_id, delay_ms / 1000)
        after = type(exc).__name__
        log.info("run %s: retrying in %.1f s after %s", run_id, delay_ms / 1000, after, extra=run_fields(run_id))

    def _schedule(self, run_id: str, delay_s: float) -> None:
        """Send ``run_id`` again in ``delay_s`` (a retry's backoff, a scheduled start);
        called with the lock held."""
        timer = threading.Timer(delay_s, self._resend, args=(run_id,))
        timer.daemon = True
        self._timers.add(timer)
        self._scheduled.add(run_id)
        timer.start()

    def _resend(self, run_id: str) -> None:
        with self._lock:
            self._timers = {t for t in self._timers if t.is_alive() and t is not threading.current_thread()}
            priority = self._priorities.get(run_id, "normal")
        try:
            self.send(run_id, priority=priority)
        except BrokerUnavailable:  # stopping: the sweep after the next start picks it up
            pass
        finally:
            with self._lock:
                self._scheduled.discard(run_id)

    def _sweep_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                report = self.sweep_now()
                if report.total or report.send_errors:
                    log.info("thread mode: sweep: %s", report.as_dict())
            except Exception as exc:  # the store is down: try again next interval
                log.warning("thread mode: sweep failed: %s", exc)
            if self._stopping.wait(self.sweep_interval_s):
                return


def build_thread_executor(
    settings: Settings, *, store: Store, generator: Generator | None = None, policy: SweepPolicy | None = None
) -> ThreadExecutor:
    """The thread-mode executor the settings describe (for the API's lifespan).

    Raises:
      ConfigError: PODFLOW_GENERATOR cannot be loaded.
    """
    monitor = HeartbeatMonitor(
        store=store,
        interval_s=settings.heartbeat_interval_s,
        soft_time_limit_s=settings.soft_time_limit_s,
        lease_timeout_s=settings.heartbeat_timeout_s,
    )
    runner = build_runner(
        settings, store=store, monitor=monitor, generator=generator or load_generator(settings.generator)
    )
    return ThreadExecutor(
        store=store,
        runner=runner,
        concurrency=settings.concurrency,
        policy=policy or SweepPolicy.from_settings(settings),
        sweep_interval_s=settings.sweep_interval_s,
        retry_backoff_s=settings.retry_backoff_s,
        retry_backoff_max_s=settings.retry_backoff_max_s,
    )
