"""Crash recovery with real processes: a SIGKILLed or stopped worker, and a broker down at submit."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from podflow.dispatch.queue import QueueDispatcher
from podflow.lifecycle import submit
from podflow.models import Run
from podflow.settings import load_settings
from podflow.states import RunStatus
from podflow.store.sqlite import SqliteStore
from podflow.sweep import SweepPolicy, sweep
from podflow.timeutil import utcnow
from podflow.worker.broker import build_broker, close_broker
from tests.execution import WorkerProcess, finished, request, seed, wait_for, worker_env
from tests.generators import read_events
from tests.servers import RedisServer, free_port

pytestmark = pytest.mark.slow

# as worker_env: heartbeat every 0.2 s, lost after 1.5 s
POLICY = SweepPolicy(time_limit_s=60, pending_timeout_s=3600, outbox_grace_s=0.5)


@dataclass
class TwoWorkers:
    """A running worker, a second one ready to start, and a store they share."""

    data_dir: Path
    store: SqliteStore
    dispatcher: QueueDispatcher
    first: WorkerProcess
    second: WorkerProcess

    def run_in_first(self) -> Run:
        """A run that takes 10 s on its first attempt (0.2 s after), caught mid-generation."""
        run = submit(self.store, self.dispatcher, request("slow:10,0.2"), now=utcnow()).run
        wait_for(lambda: (r := self.store.get_run(run.run_id)).progress and r.progress.percent > 0, what="progress")
        return run

    def events(self, event: str) -> list[dict]:
        return [e for e in read_events(self.data_dir / "events.jsonl") if e["event"] == event]


@pytest.fixture
def workers(redis_url: str, tmp_path: Path) -> Iterator[TwoWorkers]:
    env = worker_env(data_dir=tmp_path, broker_url=redis_url)
    store = seed(SqliteStore(tmp_path / "podflow.sqlite3", heartbeat_timeout_s=1.5))
    dispatcher = QueueDispatcher(broker=build_broker(load_settings(env_file=None, broker_url=redis_url)))
    first = WorkerProcess(env, tmp_path / "first.log")
    second = WorkerProcess(env, tmp_path / "second.log")
    try:
        first.start()
        yield TwoWorkers(tmp_path, store, dispatcher, first, second)
    finally:
        first.stop()
        second.stop()
        close_broker(dispatcher.broker)
        store.close()


def test_a_worker_killed_mid_run_loses_nothing_the_sweep_re_dispatches_it(workers: TwoWorkers) -> None:
    run = workers.run_in_first()
    workers.first.kill()  # SIGKILL: no clean-up, no release, its message stays unacked
    workers.second.start()

    def redispatched() -> bool:
        return sweep(workers.store, now=utcnow(), policy=POLICY, dispatcher=workers.dispatcher).redispatched > 0

    wait_for(redispatched, timeout=10, interval=0.2, what="the sweep to find the lost run")
    done = finished(workers.store, run.run_id)
    assert done.status is RunStatus.SUCCESS and done.attempt == 2
    assert "lost: heartbeat stale; re-dispatched" in [h.reason for h in done.history]
    starts = [(e["attempt"], e["pid"]) for e in workers.events("start")]
    assert [a for a, _ in starts] == [1, 2] and starts[0][1] != starts[1][1]
    files = workers.data_dir / "podcasts" / run.run_id
    assert sorted(p.name for p in files.iterdir()) == ["outline.md", "transcript.txt"]  # attempt 1's partials gone


def test_a_worker_stopped_mid_run_releases_it_and_another_worker_finishes_it(workers: TwoWorkers) -> None:
    run = workers.run_in_first()
    began = time.monotonic()
    assert workers.first.stop() == 0  # SIGTERM: a graceful stop, as systemd does it
    assert time.monotonic() - began < 5  # the generation was interrupted, not waited for
    released = workers.store.get_run(run.run_id)
    assert released.status is RunStatus.STARTED and released.released
    assert [e["error"] for e in workers.events("interrupted")] == ["WorkerShutdown"]
    workers.second.start()  # picks up Dramatiq's retry of the message
    done = finished(workers.store, run.run_id)
    assert done.status is RunStatus.SUCCESS and done.attempt == 2


def test_a_run_accepted_while_the_broker_is_down_is_enqueued_by_the_sweep_and_completes(
    tmp_path: Path,
) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    store = seed(SqliteStore(tmp_path / "podflow.sqlite3", heartbeat_timeout_s=1.5))
    dispatcher = QueueDispatcher(broker=build_broker(load_settings(env_file=None, broker_url=url)))
    submission = submit(store, dispatcher, request("noop"), now=utcnow())
    assert submission.created and not submission.enqueued and "broker unreachable" in submission.error
    run = store.get_run(submission.run.run_id)
    assert run.status is RunStatus.PENDING and run.outbox_at is not None and run.enqueue_error

    server = RedisServer(tmp_path / "redis")
    server.port = port  # the broker comes back, at the same address
    server.start()
    worker = WorkerProcess(worker_env(data_dir=tmp_path, broker_url=url), tmp_path / "worker.log")
    try:
        worker.start()
        report = wait_for(
            lambda: (r := sweep(store, now=utcnow(), policy=POLICY, dispatcher=dispatcher)).enqueued and r,
            what="the sweep to enqueue it",
        )
        assert report.enqueued == 1 and report.send_errors == 0
        done = finished(store, run.run_id)
        assert done.status is RunStatus.SUCCESS and done.attempt == 1 and done.enqueue_error is None
    finally:
        worker.stop()
        close_broker(dispatcher.broker)
        server.stop()
        store.close()


def test_a_run_whose_message_a_restarted_broker_lost_is_sent_again_and_completes(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis").start()  # keeps nothing on disk, like the dev redis
    store = seed(SqliteStore(tmp_path / "podflow.sqlite3", heartbeat_timeout_s=1.5))
    dispatcher = QueueDispatcher(broker=build_broker(load_settings(env_file=None, broker_url=server.url)))
    worker = WorkerProcess(worker_env(data_dir=tmp_path, broker_url=server.url), tmp_path / "worker.log")
    try:
        submission = submit(store, dispatcher, request("noop"), now=utcnow())
        assert submission.enqueued and dispatcher.holds_nothing(now=utcnow()) is False
        server.stop()  # a restart without persistence: the message is gone
        server.start()
        assert dispatcher.holds_nothing(now=utcnow()) is True
        worker.start()
        # the run stays PENDING: nothing will ever deliver it, until the sweep notices
        later = utcnow() + timedelta(seconds=store.heartbeat_timeout_s + 1)
        report = sweep(store, now=later, policy=POLICY, dispatcher=dispatcher)
        assert report.requeued == 1
        done = finished(store, submission.run.run_id)
        assert done.status is RunStatus.SUCCESS and done.attempt == 1
    finally:
        worker.stop()
        close_broker(dispatcher.broker)
        server.stop()
        store.close()
