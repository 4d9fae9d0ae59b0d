"""Scheduled runs with real processes: held until start_at across a restart of the
worker and of redis-server (empty), re-sent by the sweep, cancellable meanwhile."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from podflow.dispatch.queue import QueueDispatcher
from podflow.lifecycle import cancel, submit
from podflow.models import RunRequest
from podflow.settings import load_settings
from podflow.states import RunStatus
from podflow.store.sqlite import SqliteStore
from podflow.sweep import RESENT_REASON, SweepPolicy, sweep
from podflow.timeutil import utcnow
from podflow.worker.broker import build_broker, close_broker
from tests.execution import WorkerProcess, finished, request, seed, wait_for, worker_env
from tests.generators import read_events
from tests.servers import RedisServer

pytestmark = pytest.mark.slow

HEARTBEAT_TIMEOUT_S = 1.5  # as worker_env
POLICY = SweepPolicy(time_limit_s=60, pending_timeout_s=3600, outbox_grace_s=0.5)


def scheduled(name: str, seconds: float) -> RunRequest:
    return request(name).model_copy(update={"start_at": utcnow() + timedelta(seconds=seconds)})


@contextmanager
def sweeping(
    store: SqliteStore, dispatcher: QueueDispatcher, interval_s: float = 0.5, policy: SweepPolicy = POLICY
) -> Iterator[None]:
    """The scheduler's sweep in a thread, every ``interval_s`` (a broker down for a
    moment only fails that sweep)."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval_s):
            with contextlib.suppress(Exception):  # the broker restarting: the next sweep
                sweep(store, now=utcnow(), policy=policy, dispatcher=dispatcher)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


def test_a_scheduled_run_starts_after_its_time_across_a_worker_and_redis_restart(tmp_path: Path) -> None:
    redis_server = RedisServer(tmp_path / "redis").start()
    url = redis_server.url
    env = worker_env(data_dir=tmp_path, broker_url=url)
    settings = load_settings(
        env_file=None, broker_url=url, data_dir=tmp_path, heartbeat_interval_s=0.2, heartbeat_timeout_s=1.5
    )
    store = seed(SqliteStore(tmp_path / "podflow.sqlite3", heartbeat_timeout_s=HEARTBEAT_TIMEOUT_S))
    broker = build_broker(settings, role="test")
    dispatcher = QueueDispatcher(broker=broker)
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        with sweeping(store, dispatcher):
            run = submit(store, dispatcher, scheduled("noop", 5), now=utcnow()).run
            assert run.start_at is not None and run.status is RunStatus.PENDING
            # both restart while it waits: the broker's copy of its message is gone
            worker.stop()
            redis_server.stop()
            redis_server.start()
            worker = WorkerProcess(env, tmp_path / "worker.log").start()
            assert store.get_run(run.run_id).status is RunStatus.PENDING  # type: ignore[union-attr]
            done = finished(store, run.run_id, timeout=30)
        assert done.status is RunStatus.SUCCESS, worker.log()
        assert done.started_at is not None and done.started_at >= run.start_at
        started = [e for e in read_events(tmp_path / "events.jsonl") if e["event"] == "start"]
        assert len(started) == 1  # once, after its time
        assert RESENT_REASON in [h.reason for h in done.history]  # the sweep sent it again, still delayed
    finally:
        worker.stop()
        close_broker(broker)
        store.close()
        redis_server.stop()


def test_a_scheduled_run_cancelled_before_its_time_never_starts(redis_url: str, tmp_path: Path) -> None:
    env = worker_env(data_dir=tmp_path, broker_url=redis_url)
    settings = load_settings(env_file=None, broker_url=redis_url, data_dir=tmp_path)
    store = seed(SqliteStore(tmp_path / "podflow.sqlite3"))
    broker = build_broker(settings, role="test")
    dispatcher = QueueDispatcher(broker=broker)
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        run = submit(store, dispatcher, scheduled("noop", 1.5), now=utcnow()).run
        cancel(store, run.run_id, now=utcnow())
        marker = submit(store, dispatcher, scheduled("noop", 2.0), now=utcnow()).run  # due after the first
        finished(store, marker.run_id)
        wait_for(lambda: f"run {run.run_id}: skipped" in worker.log(), timeout=10, what="the delivery skipped")
        revoked = store.get_run(run.run_id)
        assert revoked is not None and revoked.status is RunStatus.REVOKED and revoked.started_at is None
    finally:
        worker.stop()
        close_broker(broker)
        store.close()


def test_runs_scheduled_beyond_the_horizon_never_hold_up_a_sooner_one(redis_url: str, tmp_path: Path) -> None:
    # the worker holds two delayed messages at most: had the far runs been sent, they would fill it for an hour
    env = worker_env(data_dir=tmp_path, broker_url=redis_url, dramatiq_delay_queue_prefetch="2")
    settings = load_settings(env_file=None, broker_url=redis_url, data_dir=tmp_path)
    store = seed(SqliteStore(tmp_path / "podflow.sqlite3"))
    broker = build_broker(settings, role="test")
    dispatcher = QueueDispatcher(broker=broker)
    horizon_s = 2.0
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        with sweeping(store, dispatcher, policy=replace(POLICY, schedule_horizon_s=horizon_s)):
            far = [submit(store, dispatcher, scheduled("noop", 3600), now=utcnow(), schedule_horizon_s=horizon_s)
                   for _ in range(4)]  # fmt: skip
            soon = submit(store, dispatcher, scheduled("noop", 3), now=utcnow(), schedule_horizon_s=horizon_s)
            assert all(s.held for s in far) and soon.held  # all in the store; the sweep sends the soon one
            done = finished(store, soon.run.run_id, timeout=20)
        assert done.status is RunStatus.SUCCESS, worker.log()
        assert soon.run.start_at is not None and done.started_at is not None
        assert soon.run.start_at <= done.started_at < soon.run.start_at + timedelta(seconds=2)  # on time
        assert broker.client.hlen(f"{broker.namespace}:podcast.DQ.msgs") == 0  # the far ones were never sent
        assert all(store.get_run(s.run.run_id).status is RunStatus.PENDING for s in far)
    finally:
        worker.stop()
        close_broker(broker)
        store.close()
