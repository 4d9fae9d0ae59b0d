"""Group commit of SQLite's write-ahead log (podflow.store.sqlite.walsync), with a flush the test holds."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from podflow.errors import StoreUnavailable
from podflow.store.sqlite import SqliteStore
from podflow.store.sqlite.walsync import WalSync
from tests.conftest import make_run


class HeldFlush:
    """A flush that blocks until released, counting calls; fails while ``error`` is set."""

    def __init__(self) -> None:
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()
        self.calls = 0
        self.error: OSError | None = None

    def __call__(self) -> None:
        self.calls += 1
        self.entered.release()
        assert self.release.wait(10), "the test never released the flush"
        if self.error is not None:
            raise self.error


def _until(predicate: object, what: str) -> None:
    deadline = time.monotonic() + 10
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.001)


def test_writers_waiting_behind_a_flush_share_the_next_one(tmp_path: Path) -> None:
    flush = HeldFlush()
    sync = WalSync(tmp_path / "db-wal", flush=flush)
    first = threading.Thread(target=sync.wait, args=(sync.ticket(),))
    first.start()
    assert flush.entered.acquire(timeout=10)  # the first flush is under way, covering ticket 1 only
    waiters = [threading.Thread(target=sync.wait, args=(sync.ticket(),)) for _ in range(7)]
    for waiter in waiters:
        waiter.start()
    _until(lambda: sync._taken == 8, "every writer took its ticket")
    time.sleep(0.05)  # and waits (none may return: their commits came after the flush began)
    assert all(w.is_alive() for w in waiters)
    flush.release.set()
    for thread in (first, *waiters):
        thread.join(10)
        assert not thread.is_alive()
    assert flush.calls == 2  # one for the first writer, one for the seven after it


def test_a_started_flush_runs_while_the_caller_goes_on(tmp_path: Path) -> None:
    flush = HeldFlush()
    sync = WalSync(tmp_path / "db-wal", flush=flush)
    ticket = sync.ticket()
    sync.start(ticket)  # returns at once
    assert flush.entered.acquire(timeout=10)  # on the background thread
    done = threading.Event()
    waiter = threading.Thread(target=lambda: (sync.wait(ticket), done.set()))
    waiter.start()
    assert not done.wait(0.05)  # not durable yet: wait holds
    flush.release.set()
    assert done.wait(10)
    sync.wait(ticket)  # already covered: no other flush
    assert flush.calls == 1


def test_a_failed_flush_fails_the_writes_it_covered_and_the_next_flush_is_tried(tmp_path: Path) -> None:
    flush = HeldFlush()
    flush.release.set()
    flush.error = OSError(5, "Input/output error")
    sync = WalSync(tmp_path / "db-wal", flush=flush)
    ticket = sync.ticket()
    with pytest.raises(StoreUnavailable, match="Input/output error"):
        sync.wait(ticket)
    flush.error = None
    sync.wait(sync.ticket())
    assert flush.calls == 2


def test_durable_writes_in_a_deferred_block_return_before_the_flush_and_the_block_waits_for_it(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "podflow.db")
    flush = HeldFlush()
    store._wal_sync._flush = flush
    left = threading.Event()
    inserted = threading.Event()

    def submit() -> None:
        with store.deferred_sync():
            store.create_run(make_run())
            inserted.set()  # committed, flush begun: the caller goes on (sends the message)
        left.set()

    thread = threading.Thread(target=submit)
    thread.start()
    assert inserted.wait(10) and flush.entered.acquire(timeout=10)
    assert not left.wait(0.05)  # leaving the block waits for the disk
    flush.release.set()
    assert left.wait(10)
    thread.join(10)
    # outside a deferred block a durable write flushes before it returns
    flush.release.clear()
    writer = threading.Thread(target=store.create_run, args=(make_run(),))
    writer.start()
    assert flush.entered.acquire(timeout=10)
    assert writer.is_alive()
    flush.release.set()
    writer.join(10)
    assert not writer.is_alive() and flush.calls == 2
    store.close()


def test_the_real_log_is_flushed(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "podflow.db")
    with store.deferred_sync():
        store.create_run(make_run())
    store.create_run(make_run())
    assert store._wal_sync.flushes >= 2
    store.close()
