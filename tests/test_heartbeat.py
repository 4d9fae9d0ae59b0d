"""The per-process heartbeat: batching, interrupts only inside the generator, blips, soft limits."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

from podflow.errors import LeaseLost, RunCancelled, SoftTimeLimitExceeded, StoreUnavailable, WorkerShutdown
from podflow.heartbeat import HeartbeatMonitor, Tracked, _raise_async_exception
from podflow.models import Progress
from podflow.store.base import Store
from tests.conftest import T0, at, make_run
from tests.execution import wait_for


def started(store: Store) -> tuple[str, int]:
    run, _ = store.create_run(make_run())
    attempt = store.claim(run.run_id, now=T0)
    assert attempt is not None
    return run.run_id, attempt


class CountingStore:
    """Counts heartbeat_many calls; can fail the next ``failures`` of them."""

    def __init__(self, store: Store, failures: int = 0) -> None:
        self._store = store
        self.calls = 0
        self.failures = failures

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def heartbeat_many(self, leases: Any, *, now: Any, progress: Any = None) -> Any:
        self.calls += 1
        if self.failures:
            self.failures -= 1
            raise StoreUnavailable("store blip")
        return self._store.heartbeat_many(leases, now=now, progress=progress)


class RunThread(threading.Thread):
    """Tracks an attempt and spins inside the interruptible window until told to stop."""

    def __init__(self, monitor: HeartbeatMonitor, run_id: str, attempt: int) -> None:
        super().__init__(daemon=True)
        self.monitor, self.run_id, self.attempt = monitor, run_id, attempt
        self.inside = threading.Event()
        self.done = threading.Event()
        self.raised: BaseException | None = None
        self.landed_at: float | None = None

    def run(self) -> None:
        tracked = self.monitor.track(self.run_id, self.attempt)
        try:
            with tracked.interruptible():
                self.inside.set()
                while not self.done.is_set():
                    time.sleep(0.005)
        except BaseException as exc:
            self.raised, self.landed_at = exc, time.monotonic()
        finally:
            self.monitor.untrack(tracked)


def test_one_beat_refreshes_every_tracked_run_in_one_store_call(store: Store) -> None:
    counting = CountingStore(store)
    monitor = HeartbeatMonitor(store=counting, interval_s=10, clock=lambda: at(30))  # type: ignore[arg-type]
    runs = [started(store) for _ in range(3)]
    handles = [monitor.track(run_id, attempt) for run_id, attempt in runs]
    monitor.beat()
    assert counting.calls == 1
    assert all(store.get_run(run_id).heartbeat_at == at(30) for run_id, _ in runs)
    assert all(h.interrupted is None for h in handles)
    monitor.untrack(handles[0])
    assert [t.run_id for t in monitor.tracked()] == [r for r, _ in runs[1:]]


@pytest.mark.parametrize(("taken_by", "interrupt"), [("cancel", RunCancelled), ("re-claim", LeaseLost)])
def test_a_run_the_store_took_away_is_interrupted_inside_the_generator(
    store: Store, taken_by: str, interrupt: type[BaseException]
) -> None:
    monitor = HeartbeatMonitor(store=store, interval_s=10, clock=lambda: at(101))
    run_id, attempt = started(store)
    thread = RunThread(monitor, run_id, attempt)
    thread.start()
    thread.inside.wait(5)
    if taken_by == "cancel":
        store.cancel(run_id, now=at(100))
    else:
        assert store.claim(run_id, now=at(100)) == 2  # stale: another worker took it
    marked_at = time.monotonic()
    monitor.beat()
    thread.join(5)
    assert type(thread.raised) is interrupt
    assert thread.landed_at - marked_at < 0.5


def test_no_interrupt_lands_outside_the_window_it_waits_for_the_next_one(store: Store) -> None:
    monitor = HeartbeatMonitor(store=store, interval_s=10, clock=lambda: at(1))
    run_id, attempt = started(store)
    tracked = monitor.track(run_id, attempt)  # this thread, outside any window
    store.cancel(run_id, now=at(1))
    monitor.beat()  # must not raise asynchronously here
    for _ in range(1000):  # give a stray asynchronous exception every chance to land
        pass
    assert tracked.interrupted is RunCancelled
    with pytest.raises(RunCancelled):
        tracked.check()
    with pytest.raises(RunCancelled), tracked.interruptible():
        raise AssertionError("the window must not open for a marked run")


def test_an_interrupt_raised_as_the_window_closes_never_escapes_it() -> None:
    """The worst moment: the interrupt is set while the thread, done with the
    generator, waits to close the window. It must surface from the window,
    not later in the runner's bookkeeping."""
    tracked = Tracked("run_x", 1, thread_id=0, deadline=None)
    leave = threading.Event()
    where: list[str] = []

    def target() -> None:
        tracked.thread_id = threading.get_ident()
        try:
            try:
                with tracked.interruptible():
                    leave.wait(5)
            except RunCancelled:
                where.append("window")
            for _ in range(100_000):  # bookkeeping: a pending interrupt would land here
                pass
            time.sleep(0.01)
            sum(range(1000))
        except RunCancelled:
            where.append("bookkeeping")

    thread = threading.Thread(target=target)
    thread.start()
    wait_for(lambda: tracked._armed, timeout=5)
    with tracked._lock:  # hold the window open, as mark() does while raising
        leave.set()
        time.sleep(0.05)  # the thread now waits for the lock to close the window
        tracked._interrupt, tracked._reason, tracked._raised = RunCancelled, "race", True
        _raise_async_exception(tracked.thread_id, RunCancelled)
    thread.join(5)
    assert where == ["window"]


def test_store_errors_during_a_heartbeat_are_logged_and_retried_next_tick(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    flaky = CountingStore(store, failures=1)
    monitor = HeartbeatMonitor(store=flaky, interval_s=10, clock=lambda: at(5))  # type: ignore[arg-type]
    run_id, attempt = started(store)
    tracked = monitor.track(run_id, attempt)
    with caplog.at_level(logging.WARNING, logger="podflow.heartbeat"):
        monitor.beat()
    assert "store blip" in caplog.text and tracked.interrupted is None
    monitor.beat()
    assert flaky.calls == 2 and store.get_run(run_id).heartbeat_at == at(5)


def test_an_attempt_the_store_has_not_confirmed_for_a_lease_timeout_gives_the_run_up(store: Store) -> None:
    ticks = [100.0]
    unreachable = CountingStore(store, failures=100)
    monitor = HeartbeatMonitor(
        store=unreachable,  # type: ignore[arg-type]
        interval_s=10,
        lease_timeout_s=60,
        clock=lambda: at(1),
        monotonic=lambda: ticks[0],
    )
    run_id, attempt = started(store)
    tracked = monitor.track(run_id, attempt)
    ticks[0] = 149.0  # 49 s unconfirmed: a blip, not yet a lost lease
    monitor.beat()
    assert tracked.interrupted is None
    ticks[0] = 150.0  # one interval before the sweep may call it lost: stop executing
    monitor.beat()
    assert tracked.interrupted is LeaseLost
    assert store.get_run(run_id).heartbeat_at == T0  # it wrote nothing


def test_a_confirmed_heartbeat_restarts_the_lease_clock(store: Store) -> None:
    ticks = [100.0]
    monitor = HeartbeatMonitor(
        store=store, interval_s=10, lease_timeout_s=60, clock=lambda: at(1), monotonic=lambda: ticks[0]
    )
    run_id, attempt = started(store)
    tracked = monitor.track(run_id, attempt)
    for tick in (140.0, 180.0, 220.0):
        ticks[0] = tick
        monitor.beat()
    assert tracked.interrupted is None


def test_the_soft_time_limit_marks_a_run_at_its_deadline(store: Store) -> None:
    ticks = [100.0]
    monitor = HeartbeatMonitor(
        store=store, interval_s=10, soft_time_limit_s=30, clock=lambda: at(1), monotonic=lambda: ticks[0]
    )
    run_id, attempt = started(store)
    tracked = monitor.track(run_id, attempt)
    assert monitor._next_wait() == 10
    ticks[0] = 125.0
    monitor.beat()
    assert tracked.interrupted is None and monitor._next_wait() == pytest.approx(5)
    ticks[0] = 130.0
    monitor.beat()
    assert tracked.interrupted is SoftTimeLimitExceeded
    with pytest.raises(SoftTimeLimitExceeded):
        tracked.check()


def test_a_newer_attempt_tracked_in_the_same_process_fences_off_the_older(store: Store) -> None:
    monitor = HeartbeatMonitor(store=store, interval_s=10)
    run_id, attempt = started(store)
    old = monitor.track(run_id, attempt)
    new = monitor.track(run_id, attempt + 1)
    assert old.interrupted is LeaseLost and new.interrupted is None
    monitor.untrack(old)  # the old attempt's clean-up leaves the new one tracked
    assert monitor.tracked() == [new]


def test_interrupt_all_marks_every_run_for_a_shutdown(store: Store) -> None:
    monitor = HeartbeatMonitor(store=store, interval_s=10)
    handles = [monitor.track(*started(store)) for _ in range(2)]
    assert monitor.interrupt_all(WorkerShutdown, "stopping") == 2
    assert all(h.interrupted is WorkerShutdown for h in handles)


def test_the_monitor_thread_beats_every_interval(store: Store) -> None:
    monitor = HeartbeatMonitor(store=store, interval_s=0.05)
    run_id, attempt = started(store)
    monitor.track(run_id, attempt)
    monitor.start()
    try:
        wait_for(lambda: store.get_run(run_id).heartbeat_at > T0, timeout=5, what="a heartbeat")
    finally:
        monitor.stop()


class _UnwritableCounters:
    def __init__(self, store: Store) -> None:
        self._store, self.down = store, True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def add_counts(self, counts: Any) -> None:
        if self.down:
            raise StoreUnavailable("store blip")
        self._store.add_counts(counts)


def test_each_tick_adds_what_the_process_counted_and_keeps_it_through_a_blip(store: Store) -> None:
    flaky = _UnwritableCounters(store)
    monitor = HeartbeatMonitor(store=flaky, interval_s=10, clock=lambda: at(5))  # type: ignore[arg-type]
    monitor.counts.add("checkpoints:audio:reused", 3)
    monitor.beat()  # no run tracked: the counters are written all the same (and fail here)
    assert store.stats().checkpoints == {}
    monitor.counts.add("checkpoints:audio:reused", 2)
    flaky.down = False
    monitor.beat()
    assert store.stats().checkpoints == {("audio", "reused"): 5}
    monitor.counts.add("provider_calls:tts:ok")
    monitor.stop()  # the rest goes when the process stops
    assert store.stats().provider_calls == {("tts", "ok"): 1}


# -- coalesced progress ----------------------------------------------------------


def _progress(percent: float) -> Progress:
    return Progress(stage="script", percent=percent)


def test_progress_reports_are_coalesced_into_the_next_batch(store: Store) -> None:
    counting = CountingStore(store)
    monitor = HeartbeatMonitor(store=counting, interval_s=10, clock=lambda: at(30))  # type: ignore[arg-type]
    handles = [monitor.track(*started(store)) for _ in range(3)]
    for percent in (10.0, 20.0, 30.0):  # many reports of one run: only the latest is written
        handles[0].report(_progress(percent))
    handles[1].report(_progress(5.0))
    monitor.flush_progress()
    assert counting.calls == 1 and not any(h.reported for h in handles)
    assert store.get_run(handles[0].run_id).progress == _progress(30.0)
    assert store.get_run(handles[1].run_id).progress == _progress(5.0)
    assert store.get_run(handles[2].run_id).progress is None
    monitor.flush_progress()  # nothing waiting: no write
    assert counting.calls == 1


def test_progress_of_a_failed_batch_waits_for_the_next_unless_a_newer_report_came(store: Store) -> None:
    flaky = CountingStore(store, failures=1)
    monitor = HeartbeatMonitor(store=flaky, interval_s=10, clock=lambda: at(30))  # type: ignore[arg-type]
    tracked = monitor.track(*started(store))
    tracked.report(_progress(10.0))
    monitor.beat()
    assert tracked.reported
    monitor.beat()
    assert store.get_run(tracked.run_id).progress == _progress(10.0)


def test_settle_writes_the_last_progress_before_the_outcome(store: Store) -> None:
    monitor = HeartbeatMonitor(store=store, interval_s=10, clock=lambda: at(30))
    tracked = monitor.track(*started(store))
    assert monitor.settle(tracked).owned  # nothing waiting: the lease, read
    tracked.report(_progress(99.0))
    assert monitor.settle(tracked).owned
    assert store.get_run(tracked.run_id).progress == _progress(99.0) and not tracked.reported


def test_a_lost_lease_is_noticed_by_a_progress_batch(store: Store) -> None:
    monitor = HeartbeatMonitor(store=store, interval_s=10, clock=lambda: at(101))
    tracked = monitor.track(*started(store))
    store.cancel(tracked.run_id, now=at(100))
    tracked.report(_progress(50.0))
    monitor.flush_progress()
    assert tracked.interrupted is RunCancelled
    assert store.get_run(tracked.run_id).progress is None  # fenced: a cancelled run keeps its record


def test_a_report_wakes_the_monitor_thread_and_later_ones_wait_their_turn(store: Store) -> None:
    counting = CountingStore(store)
    monitor = HeartbeatMonitor(store=counting, interval_s=60, progress_interval_s=60)  # type: ignore[arg-type]
    tracked = monitor.track(*started(store))
    monitor.start()
    try:
        tracked.report(_progress(1.0))  # the first: written at once
        wait_for(lambda: store.get_run(tracked.run_id).progress == _progress(1.0), timeout=5)
        tracked.report(_progress(2.0))  # within the interval: waits for its turn
        assert monitor._next_wait() > 30 and tracked.reported
    finally:
        monitor.stop()
    assert counting.calls == 1
