"""One heartbeat thread per process, for every run the process executes.

Every ``interval_s`` the monitor sends one batched ``store.heartbeat_many`` for
all tracked runs. When the store says an attempt no longer owns its run, the
run is *marked* (``ctx.check_cancelled()`` raises at once) and, if its thread
is inside the generator, interrupted there with an asynchronous exception:
:class:`~podflow.errors.RunCancelled` when the run was revoked,
:class:`~podflow.errors.LeaseLost` otherwise (re-claimed, failed by the sweep).
With ``soft_time_limit_s`` (thread mode) it also raises
:class:`~podflow.errors.SoftTimeLimitExceeded` at each run's deadline;
Dramatiq's TimeLimit middleware does that in workers. Interrupts are raised
with CPython's ``PyThreadState_SetAsyncExc``, as Dramatiq's are, but without
depending on Dramatiq: thread mode has no broker.

An asynchronous exception lands wherever the thread happens to be, so it is
only ever raised inside :meth:`Tracked.interruptible` — the generator call —
and never during the runner's bookkeeping (promoting files, ``finish``). The
window's exit makes sure an interrupt raised just before it closed surfaces
from the window itself, not later.

A store error during a heartbeat is logged and retried at the next tick: a
blip must not kill runs. A run whose heartbeat stays stale past
PODFLOW_HEARTBEAT_TIMEOUT is handled by the sweep -- so with ``lease_timeout_s``
(that timeout) an attempt that has not heard "you still own it" from the store
for ``lease_timeout_s - interval_s`` gives the run up itself (``LeaseLost``):
a host cut off from the store stops executing before the sweep can hand the
run to another attempt, instead of running on beside it, fenced but wasteful.

Progress is coalesced the same way: ``ctx.progress()`` only keeps the latest
report of its run (:meth:`Tracked.report`); the monitor writes what is waiting
for every run with its heartbeats, and between them at most once every
``progress_interval_s`` (one ``heartbeat_many`` carrying each run's progress,
fenced by each run's attempt). So the store sees a bounded number of statements
per process and interval, however many runs the process holds and however
often they report. Before an attempt's outcome is written, :meth:`HeartbeatMonitor.settle`
writes its last report if it is still waiting: a run's final progress is never lost.

The same tick adds what the process counted since the last one (its
:class:`~podflow.store.counters.CounterBuffer`, ``counts``: checkpoints reused
or computed, provider calls) to the store's counters with one write, so
``/metrics`` sees the whole cluster at most an interval late; ``stop()`` adds
the rest.
"""

from __future__ import annotations

import ctypes
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from .errors import LeaseLost, RunCancelled, SoftTimeLimitExceeded, WorkerShutdown
from .logs import run_fields
from .models import Lease, Progress
from .store.base import Store
from .store.counters import CounterBuffer
from .timeutil import utcnow

__all__ = ["PROGRESS_INTERVAL_S", "HeartbeatMonitor", "Tracked"]

log = logging.getLogger(__name__)

#: between two heartbeats, progress waiting is written at most this often (per process)
PROGRESS_INTERVAL_S = 1.0


def _raise_async_exception(thread_id: int, interrupt: type[BaseException]) -> None:
    """Raise ``interrupt`` in the thread ``thread_id`` the next time it runs Python code."""
    count = ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(interrupt))
    if count == 0:  # the thread is gone: nothing to interrupt
        log.warning("cannot interrupt thread %d with %s: no such thread", thread_id, interrupt.__name__)
    elif count > 1:  # pragma: no cover - thread ids are unique; undo, as CPython's docs ask
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), None)


def _clear_async_exception(thread_id: int) -> None:
    """Drop an asynchronous exception set on ``thread_id`` but not yet raised."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), None)


class Tracked:
    """One attempt of one run, as the monitor knows it. Made by :meth:`HeartbeatMonitor.track`."""

    def __init__(
        self,
        run_id: str,
        attempt: int,
        *,
        thread_id: int,
        deadline: float | None,
        on_report: Callable[[], None] = lambda: None,
    ) -> None:
        self.run_id = run_id
        self.attempt = attempt
        self.thread_id = thread_id
        #: monotonic time of the soft time limit, or None
        self.deadline = deadline
        #: monotonic time the store last confirmed this attempt owns the run
        self.confirmed = 0.0
        self._lock = threading.Lock()
        self._armed = False
        self._raised = False
        self._interrupt: type[BaseException] | None = None
        self._reason = ""
        #: the latest progress reported and not yet written
        self._progress: Progress | None = None
        self._on_report = on_report

    @property
    def interrupted(self) -> type[BaseException] | None:
        """The interrupt this attempt got (RunCancelled, LeaseLost, SoftTimeLimitExceeded, ...), if any."""
        return self._interrupt

    def mark(self, interrupt: type[BaseException], reason: str) -> None:
        """Stop this attempt: raise ``interrupt`` in its thread now if it is inside
        the generator, else at its next :meth:`check` or window. The first mark wins."""
        with self._lock:
            if self._interrupt is not None:
                return
            self._interrupt, self._reason = interrupt, reason
            if self._armed:
                # a stopping process says once how many it interrupts, and the runner once per run
                level = logging.DEBUG if issubclass(interrupt, WorkerShutdown) else logging.INFO
                log.log(
                    level,
                    "run %s attempt %d: interrupting: %s",
                    self.run_id,
                    self.attempt,
                    reason,
                    extra=run_fields(self.run_id, attempt=self.attempt),
                )
                self._raised = True
                _raise_async_exception(self.thread_id, interrupt)

    def report(self, progress: Progress) -> None:
        """Keep ``progress`` for the monitor to write (a later report replaces it)."""
        with self._lock:
            waiting, self._progress = self._progress is not None, progress
        if not waiting:
            self._on_report()

    @property
    def reported(self) -> bool:
        """Progress is waiting to be written."""
        return self._progress is not None

    def take_progress(self) -> Progress | None:
        """The progress waiting, now the caller's to write (or :meth:`put_back`)."""
        with self._lock:
            progress, self._progress = self._progress, None
        return progress

    def put_back(self, progress: Progress) -> None:
        """A write of ``progress`` failed: keep it, unless a newer report came meanwhile."""
        with self._lock:
            if self._progress is None:
                self._progress = progress

    def note(self, lease: Lease) -> None:
        """Act on what a heartbeat or progress write learnt about the lease."""
        if not lease.owned:
            if lease.cancelled:
                self.mark(RunCancelled, "the run was cancelled")
            else:
                self.mark(LeaseLost, f"attempt {self.attempt} lost the run (now {lease.status or 'absent'})")

    def check(self) -> None:
        """Raises the interrupt this attempt was marked with, if any."""
        if self._interrupt is not None:
            raise self._interrupt(self._reason)

    @contextmanager
    def interruptible(self) -> Iterator[None]:
        """The window in which the monitor may interrupt this thread asynchronously.

        Raises:
          the interrupt this attempt was marked with, at entry or at exit.
        """
        if threading.get_ident() != self.thread_id:
            raise RuntimeError("interruptible() must run in the tracked thread")
        with self._lock:
            self.check()
            self._armed = True
        try:
            yield
        finally:
            with self._lock:
                self._armed = False
                raised = self._raised
            if raised:
                # The interrupt was set on this thread. Either it already
                # landed (and is propagating now) or it is still pending and
                # would land later, in the caller's bookkeeping: cancel the
                # pending one and raise it here instead.
                _clear_async_exception(self.thread_id)
                assert self._interrupt is not None
                if not isinstance(sys.exc_info()[1], self._interrupt):
                    raise self._interrupt(self._reason)


class HeartbeatMonitor:
    """The per-process heartbeat thread. ``start()`` it once, ``track()`` each attempt.

    Parameters:
      store: where heartbeats go.
      interval_s: seconds between two heartbeats (PODFLOW_HEARTBEAT_INTERVAL).
      soft_time_limit_s: when set (thread mode), raise ``SoftTimeLimitExceeded`` in
        runs that have been tracked this long.
      lease_timeout_s: when set (PODFLOW_HEARTBEAT_TIMEOUT), raise ``LeaseLost``
        in runs whose ownership the store has not confirmed for this long, less
        one interval (see the module docstring).
      counts: the process's counters waiting for the store (a new buffer by default).
      progress_interval_s: between heartbeats, write the progress waiting at most
        this often (see the module docstring).
      clock: wall-clock time for the store; monotonic: for deadlines.
    """

    def __init__(
        self,
        *,
        store: Store,
        interval_s: float,
        soft_time_limit_s: float | None = None,
        lease_timeout_s: float | None = None,
        counts: CounterBuffer | None = None,
        progress_interval_s: float = PROGRESS_INTERVAL_S,
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.counts = counts or CounterBuffer()
        self.interval_s = interval_s
        self.soft_time_limit_s = soft_time_limit_s
        self.lease_timeout_s = lease_timeout_s
        self.progress_interval_s = progress_interval_s
        self._clock = clock
        self._monotonic = monotonic
        self._runs: dict[str, Tracked] = {}
        self._lock = threading.Lock()
        #: one write of leases and progress at a time, so a run's last report is
        #: never overtaken by an older one still being written
        self._write_lock = threading.Lock()
        self._next_beat = monotonic() + interval_s
        self._last_progress = -float("inf")
        self._stop = threading.Event()
        #: set by stop() and by a first report waiting
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._wake.clear()
            self._thread = threading.Thread(target=self._loop, name="podflow-heartbeat", daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        self.flush_counts()

    def flush_counts(self) -> None:
        """Add what this process counted to the store's counters. Never raises: a
        failed write keeps the counts for the next try."""
        pending = self.counts.take()
        if not pending:
            return
        try:
            self.store.add_counts(pending)
        except Exception as exc:  # a blip: counted again at the next tick
            self.counts.put_back(pending)
            log.warning("counters not recorded, retrying: %s", exc)

    # -- tracking ---------------------------------------------------------------
    def track(self, run_id: str, attempt: int) -> Tracked:
        """Start heart-beating ``attempt`` of ``run_id`` for the calling thread.

        An older attempt of the same run tracked here is marked lost: the store
        already fences it off.
        """
        deadline = None if self.soft_time_limit_s is None else self._monotonic() + self.soft_time_limit_s
        tracked = Tracked(
            run_id, attempt, thread_id=threading.get_ident(), deadline=deadline, on_report=self._wake.set
        )
        tracked.confirmed = self._monotonic()  # the claim just succeeded
        with self._lock:
            previous = self._runs.get(run_id)
            self._runs[run_id] = tracked
        if previous is not None and previous.attempt < attempt:
            previous.note(Lease(owned=False))
        return tracked

    def untrack(self, tracked: Tracked) -> None:
        with self._lock:
            if self._runs.get(tracked.run_id) is tracked:
                del self._runs[tracked.run_id]

    def tracked(self) -> list[Tracked]:
        with self._lock:
            return list(self._runs.values())

    def interrupt_all(self, interrupt: type[BaseException], reason: str) -> int:
        """Mark every tracked run (e.g. with ``WorkerShutdown``). Returns how many."""
        runs = self.tracked()
        for tracked in runs:
            tracked.mark(interrupt, reason)
        return len(runs)

    # -- one tick ---------------------------------------------------------------
    def beat(self) -> None:
        """Heartbeat every tracked run once (with the progress waiting) and enforce
        soft deadlines. Never raises."""
        runs = self.tracked()
        self._next_beat = self._monotonic() + self.interval_s
        if runs:
            self._write(runs)
        self._enforce(runs)
        self.flush_counts()  # after the marks: a slow write must not delay an interrupt

    def flush_progress(self) -> None:
        """Write the progress waiting, for the runs that have some, in one batch. Never raises."""
        runs = [t for t in self.tracked() if t.reported]
        if runs:
            self._write(runs)
        self._enforce(self.tracked())

    def settle(self, tracked: Tracked) -> Lease:
        """``tracked``'s lease as the store has it now, with its last progress written
        first if it is still waiting: what the runner asks before it writes the outcome.

        Raises:
          StoreError: the store could not be read (the progress stays waiting).
        """
        with self._write_lock:
            progress = tracked.take_progress()
            if progress is None:
                return self.store.lease(tracked.run_id, tracked.attempt)
            try:
                return self.store.set_progress(tracked.run_id, tracked.attempt, progress, now=self._clock())
            except BaseException:
                tracked.put_back(progress)
                raise

    def _write(self, runs: list[Tracked]) -> None:
        """One ``heartbeat_many`` for ``runs``, with their progress; act on the leases."""
        with self._write_lock:
            progress = {t.run_id: p for t in runs if (p := t.take_progress()) is not None}
            if progress:
                self._last_progress = self._monotonic()
            try:
                leases = self.store.heartbeat_many(
                    {t.run_id: t.attempt for t in runs}, now=self._clock(), progress=progress
                )
            except Exception as exc:  # a blip: the next tick tries again
                log.warning("heartbeat of %d run(s) failed, retrying: %s", len(runs), exc)
                for tracked in runs:
                    if tracked.run_id in progress:
                        tracked.put_back(progress[tracked.run_id])
                leases = {}
        confirmed_at = self._monotonic()
        for tracked in runs:
            lease = leases.get(tracked.run_id)
            if lease is not None:
                tracked.note(lease)
                if lease.owned:
                    tracked.confirmed = confirmed_at

    def _enforce(self, runs: list[Tracked]) -> None:
        """Mark the runs whose lease went unconfirmed too long, or whose soft deadline passed."""
        now = self._monotonic()
        for tracked in runs:
            if self.lease_timeout_s is not None and now - tracked.confirmed >= self.lease_timeout_s - self.interval_s:
                tracked.mark(LeaseLost, f"the store has not confirmed the lease for {now - tracked.confirmed:.1f} s")
            if tracked.deadline is not None and now >= tracked.deadline:
                tracked.mark(SoftTimeLimitExceeded, f"soft time limit of {self.soft_time_limit_s:g} s exceeded")

    def _next_wait(self) -> float:
        """Seconds until the next heartbeat, soft deadline, or progress write due."""
        runs = self.tracked()
        now = self._monotonic()
        due = [self._next_beat]
        due += [t.deadline for t in runs if t.deadline is not None and t.interrupted is None]
        if any(t.reported for t in runs):
            due.append(self._last_progress + self.progress_interval_s)
        return max(0.0, min(due) - now)

    def _loop(self) -> None:
        while True:
            self._wake.wait(self._next_wait())
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                now = self._monotonic()
                if now >= self._next_beat:
                    self.beat()
                elif now >= self._last_progress + self.progress_interval_s:
                    self.flush_progress()
                else:  # a soft deadline, or a report that waits for its turn
                    self._enforce(self.tracked())
            except Exception:  # pragma: no cover - beat() catches what it expects
                log.exception("heartbeat tick failed")
