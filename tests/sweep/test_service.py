"""The sweeping process's part: the store opened on demand, one log line per sweep, outages survived."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from podflow.dispatch.queue import QueueDispatcher
from podflow.errors import StoreUnavailable
from podflow.models import Run
from podflow.settings import load_settings
from podflow.states import RunStatus
from podflow.store.sqlite import SqliteStore
from podflow.sweep import SweepPolicy
from podflow.sweep.service import Sweeper, build_sweeper
from podflow.worker.broker import build_broker
from tests.conftest import T0, at
from tests.execution import request
from tests.servers import free_port

POLICY = SweepPolicy(time_limit_s=3600, pending_timeout_s=86400)


def sqlite(tmp_path: Path) -> SqliteStore:
    return SqliteStore(tmp_path / "podflow.sqlite3", heartbeat_timeout_s=60)


def test_a_scheduled_sweep_logs_its_counts_on_one_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = sqlite(tmp_path)
    run = Run.new(request(), now=T0)
    store.create_run(run)
    store.claim(run.run_id, now=T0)
    sweeper = Sweeper(open_store=lambda: store, policy=POLICY, dispatcher=None, holder="h", clock=lambda: at(3601))
    with caplog.at_level(logging.INFO, logger="podflow"):
        sweeper.scheduled_sweep()
    [line] = [r.getMessage() for r in caplog.records if r.name == "podflow.sweep.service"]
    assert line.startswith(
        "sweep: time_limit=1 worker_lost=0 redispatched=0 enqueued=0 requeued=0 expired=0"
        " checkpoints=0 deleted=0 send_errors=0 ("
    )
    assert store.get_run(run.run_id).status is RunStatus.FAILURE
    sweeper.close()


def test_a_store_that_cannot_be_opened_is_logged_and_opened_again_next_time(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    attempts: list[int] = []

    def open_store() -> SqliteStore:
        attempts.append(1)
        if len(attempts) == 1:
            raise StoreUnavailable("MongoDB unreachable: connection refused")
        return sqlite(tmp_path)

    sweeper = Sweeper(open_store=open_store, policy=POLICY, dispatcher=None, holder="h", clock=lambda: T0)
    with caplog.at_level(logging.INFO, logger="podflow"):
        sweeper.scheduled_sweep()  # does not raise: the scheduler keeps its schedule
        sweeper.scheduled_sweep()
    messages = [r.getMessage() for r in caplog.records if r.name == "podflow.sweep.service"]
    assert messages[0] == "sweep failed, trying again next interval: MongoDB unreachable: connection refused"
    assert messages[1].startswith("sweep: time_limit=0")
    assert len(attempts) == 2
    sweeper.close()


def test_a_bug_in_a_sweep_is_logged_with_its_traceback_and_the_schedule_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> SqliteStore:
        raise RuntimeError("a bug")

    sweeper = Sweeper(open_store=broken, policy=POLICY, dispatcher=None, holder="h")
    with caplog.at_level(logging.INFO, logger="podflow"):
        sweeper.scheduled_sweep()
    [record] = caplog.records
    assert record.levelno == logging.ERROR and record.exc_info is not None


def test_a_sweep_while_another_process_holds_the_lease_is_skipped(tmp_path: Path) -> None:
    store = sqlite(tmp_path)
    assert store.acquire_lease("sweep", holder="other", now=T0, ttl_s=120)
    sweeper = Sweeper(open_store=lambda: store, policy=POLICY, dispatcher=None, holder="me", clock=lambda: at(1))
    assert sweeper.sweep_once() is None
    sweeper.close()


def test_queue_mode_sweeps_with_a_queue_dispatcher_and_thread_mode_without(tmp_path: Path, redis_url: str) -> None:
    queue = build_sweeper(load_settings(env_file=None, data_dir=tmp_path, broker_url=redis_url))
    assert isinstance(queue.dispatcher, QueueDispatcher)
    assert queue.dispatcher.broker.broker_id.startswith("scheduler@")
    thread = build_sweeper(load_settings(env_file=None, data_dir=tmp_path, mode="thread"))
    assert thread.dispatcher is None
    assert queue.holder != thread.holder
    queue.check()
    queue.close()
    thread.close()


def test_a_sweep_that_could_not_send_logs_a_warning_and_keeps_the_run_for_the_next(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = sqlite(tmp_path)
    run = Run.new(request(), now=T0).model_copy(update={"outbox_at": T0, "message_id": "msg-1"})
    store.create_run(run)
    down = build_broker(load_settings(env_file=None, broker_url=f"redis://127.0.0.1:{free_port()}/0"))
    sweeper = Sweeper(open_store=lambda: store, policy=POLICY, dispatcher=QueueDispatcher(broker=down), holder="h",
                      clock=lambda: at(60))  # fmt: skip
    with caplog.at_level(logging.INFO, logger="podflow"):
        sweeper.scheduled_sweep()
    [record] = [r for r in caplog.records if r.name == "podflow.sweep.service"]
    assert record.levelno == logging.WARNING and "send_errors=1" in record.getMessage()
    assert store.get_run(run.run_id).outbox_at == T0 and store.get_run(run.run_id).enqueue_error
    sweeper.close()
