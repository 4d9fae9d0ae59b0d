"""Crash recovery with real processes: a SIGKILLed or stopped worker, a broker down at submit,
a Redis restart under load, and two deployments on one Redis."""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from podflow.cli.runs import _detail
from podflow.cli.status import collect
from podflow.dispatch.queue import QueueDispatcher
from podflow.lifecycle import submit
from podflow.models import Run
from podflow.runner import SHUTDOWN_REASON
from podflow.settings import Settings, load_settings
from podflow.states import RunStatus
from podflow.store.base import Store
from podflow.store.sqlite import SqliteStore
from podflow.sweep import RESENT_REASON, SweepPolicy, SweepReport, sweep
from podflow.timeutil import utcnow
from podflow.worker.broker import build_broker, close_broker
from tests.execution import WorkerProcess, finished, request, seed, wait_for, worker_env
from tests.generators import read_events
from tests.servers import RedisServer, free_port

pytestmark = pytest.mark.slow

# as worker_env: heartbeat every 0.2 s, lost after 1.5 s (Dramatiq's worker timeout: 0.75 s)
HEARTBEAT_TIMEOUT_S = 1.5
SWEEP_INTERVAL_S = 0.5
POLICY = SweepPolicy(time_limit_s=60, pending_timeout_s=3600, outbox_grace_s=0.5)
#: the Redis-restart test's: short enough that a lost run left alone would expire in it
PENDING_TIMEOUT_S = 20.0
LOSS = {"lost: heartbeat stale", "reclaimed: heartbeat stale"}


def settings_for(url: str, data_dir: Path, **more: object) -> Settings:
    """What the test's own processes (submitter, sweeper, status) run with: the workers' settings."""
    return load_settings(
        env_file=None, broker_url=url, data_dir=data_dir, heartbeat_interval_s=0.2,
        heartbeat_timeout_s=HEARTBEAT_TIMEOUT_S, **more,
    )  # fmt: skip


def open_store(data_dir: Path) -> SqliteStore:
    return seed(SqliteStore(data_dir / "podflow.sqlite3", heartbeat_timeout_s=HEARTBEAT_TIMEOUT_S))  # type: ignore[return-value]


def reasons(run: Run) -> list[str]:
    return [h.reason for h in run.history]


@dataclass
class Sweeping:
    """The scheduler, in a thread: a sweep every SWEEP_INTERVAL_S, at real time."""

    store: Store
    dispatcher: QueueDispatcher
    policy: SweepPolicy = POLICY
    reports: list[tuple[float, SweepReport]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def loop(self) -> None:
        while not self.stop.wait(SWEEP_INTERVAL_S):
            report = sweep(self.store, now=utcnow(), policy=self.policy, dispatcher=self.dispatcher)
            self.reports.append((time.time(), report))


@contextmanager
def sweeping(store: Store, dispatcher: QueueDispatcher, policy: SweepPolicy = POLICY) -> Iterator[Sweeping]:
    state = Sweeping(store, dispatcher, policy)
    thread = threading.Thread(target=state.loop, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.stop.set()
        thread.join(10)


@dataclass
class TwoWorkers:
    """A running worker, a second one ready to start, and a store they share."""

    data_dir: Path
    settings: Settings
    store: SqliteStore
    dispatcher: QueueDispatcher
    first: WorkerProcess
    second: WorkerProcess

    def submit(self, name: str) -> Run:
        return submit(self.store, self.dispatcher, request(name), now=utcnow()).run

    def run_in_first(self, name: str = "slow:10,0.2") -> Run:
        """A run caught mid-generation (10 s on its first attempt, 0.2 s after)."""
        run = self.submit(name)
        wait_for(lambda: (r := self.store.get_run(run.run_id)).progress and r.progress.percent > 0, what="progress")
        return run

    def message_retries(self, run: Run) -> list[int]:
        """Dramatiq's retry count of each copy of the run's current message the broker holds."""
        client = self.dispatcher.broker.client
        prefix = f"{self.store.get_run(run.run_id).current_message_id}/"
        copies = []
        for key in client.keys(f"{self.dispatcher.broker.namespace}:*.msgs"):
            copies += [data for name, data in client.hgetall(key).items() if name.decode().startswith(prefix)]
        return [json.loads(data)["options"].get("retries", 0) for data in copies]

    def events(self, event: str, run_id: str | None = None) -> list[dict]:
        return [
            e for e in read_events(self.data_dir / "events.jsonl")
            if e["event"] == event and run_id in (None, e["run_id"])
        ]  # fmt: skip


@pytest.fixture
def workers(request: pytest.FixtureRequest, redis_url: str, tmp_path: Path) -> Iterator[TwoWorkers]:
    """Indirect parameter: PODFLOW_MAX_ATTEMPTS (default 3)."""
    max_attempts = getattr(request, "param", 3)
    env = worker_env(data_dir=tmp_path, broker_url=redis_url, PODFLOW_MAX_ATTEMPTS=str(max_attempts))
    settings = settings_for(redis_url, tmp_path, max_attempts=max_attempts)
    store = open_store(tmp_path)
    store.max_attempts = max_attempts
    dispatcher = QueueDispatcher(broker=build_broker(settings, role="test"))
    first = WorkerProcess(env, tmp_path / "first.log")
    second = WorkerProcess(env, tmp_path / "second.log")
    try:
        first.start()
        yield TwoWorkers(tmp_path, settings, store, dispatcher, first, second)
    finally:
        first.stop()
        second.stop()
        close_broker(dispatcher.broker)
        store.close()


def test_a_worker_killed_with_a_backlog_re_runs_each_of_its_runs_once(workers: TwoWorkers) -> None:
    held = [workers.run_in_first("slow:20,0.3") for _ in range(2)]  # both threads of the first worker
    backlog = [workers.submit("slow:0.5") for _ in range(10)]  # 2.5 s of work for two threads: queued
    workers.first.kill()  # SIGKILL: no clean-up, no release; its two messages stay unacked in Redis
    killed_at = time.time()
    workers.second.start()
    with sweeping(workers.store, workers.dispatcher) as sweeps:
        done = [finished(workers.store, run.run_id, timeout=30) for run in held + backlog]
    assert all(run.status is RunStatus.SUCCESS for run in done)
    assert all(run.attempt == 1 and reasons(run) == ["created", "claimed", "success"] for run in done[2:])
    for run in done[:2]:
        assert run.attempt == 2
        entries = reasons(run)
        # one entry for the loss (the sweep's release, or the claim of a stale run), one run of attempt 2
        assert sum(reason in LOSS for reason in entries) == 1, entries
        assert RESENT_REASON not in entries  # no new message: the killed worker's own was handed on, once
        assert [e["attempt"] for e in workers.events("start", run.run_id)] == [1, 2]
        assert workers.second.log().count(f"run {run.run_id}: skipped") == 0  # delivered once, and run
    assert sum(report.requeued for _, report in sweeps.reports) == 0
    restarted = min(e["t"] for run in held for e in workers.events("start", run.run_id) if e["attempt"] == 2)
    # released by a sweep once silent past the timeout; then its turn behind the 2.5 s backlog (and a worker's boot)
    assert restarted - killed_at < HEARTBEAT_TIMEOUT_S + 2 * SWEEP_INTERVAL_S + 2.5 + 5


def test_a_worker_stopped_mid_run_releases_it_quietly_and_leaves_the_broker(workers: TwoWorkers) -> None:
    runs = [workers.run_in_first() for _ in range(2)]
    began = time.monotonic()
    assert workers.first.stop() == 0  # SIGTERM: a graceful stop, as systemd does it
    stopped_at = time.monotonic()
    assert stopped_at - began < 5  # the generations were interrupted, not waited for
    status = collect(workers.settings, now=utcnow())
    assert status["broker"]["workers"] == []  # gone from the broker's heartbeats at once
    log = workers.first.log()
    assert "ERROR" not in log and "Traceback" not in log
    for run in runs:
        released = workers.store.get_run(run.run_id)
        assert released.status is RunStatus.STARTED and released.released and released.error is None
        assert released.history[-1].reason == SHUTDOWN_REASON == _detail(released)  # what `runs list` shows
        assert log.count(f"run {run.run_id}: attempt 1 {SHUTDOWN_REASON}") == 1
        # put back as it was: a stop is none of the message's retries (which end in the dead letters)
        assert workers.message_retries(run) == [0]
    assert [e["error"] for e in workers.events("interrupted")] == ["WorkerShutdown"] * 2
    workers.second.start()  # picks up Dramatiq's retries of the messages
    for run in runs:
        done = finished(workers.store, run.run_id)
        assert done.status is RunStatus.SUCCESS and done.attempt == 2


@pytest.mark.parametrize("workers", [1], indirect=True)  # PODFLOW_MAX_ATTEMPTS=1: no retry of a failure
def test_a_stop_does_not_use_up_an_attempt_a_run_on_its_last_one_is_continued(workers: TwoWorkers) -> None:
    run = workers.run_in_first()
    assert workers.first.stop() == 0  # SIGTERM, a deploy's stop: the run is released, not failed
    released = workers.store.get_run(run.run_id)
    # the stopping worker's idle thread may take the run's retry before Dramatiq stops it: put back, not run
    assert released.released and (released.attempt, released.attempts_counted) == (1, 0)
    assert f"run {run.run_id}: attempt 2" not in workers.first.log()
    workers.second.start()
    with sweeping(workers.store, workers.dispatcher):  # its fail_lost rule would end a run with none left
        done = finished(workers.store, run.run_id)
    assert done.status is RunStatus.SUCCESS, done.error
    assert (done.attempt, done.attempts_counted) == (2, 1)
    assert reasons(done) == ["created", "claimed", SHUTDOWN_REASON, "retry", "success"]
    assert [e["attempt"] for e in workers.events("start", run.run_id)] == [1, 2]


def test_a_run_accepted_while_the_broker_is_down_is_enqueued_by_the_sweep_and_completes(tmp_path: Path) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    store = open_store(tmp_path)
    dispatcher = QueueDispatcher(broker=build_broker(settings_for(url, tmp_path)))
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


def test_under_continuous_submits_a_redis_restart_loses_no_run(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis").start()  # keeps nothing on disk, like the dev redis
    store = open_store(tmp_path)
    dispatcher = QueueDispatcher(broker=build_broker(settings_for(server.url, tmp_path), role="test"))
    worker = WorkerProcess(worker_env(data_dir=tmp_path, broker_url=server.url), tmp_path / "worker.log")
    submitted: list[str] = []
    stop_submitting = threading.Event()

    def submitter() -> None:  # 8 runs a second for a worker that does 5: a backlog builds
        while not stop_submitting.wait(0.125):
            submitted.append(submit(store, dispatcher, request("slow:0.4"), now=utcnow()).run.run_id)

    # a pending timeout the test can reach: a lost run not found would expire well
    # within the wait below, while the backlog (8 s at most) never comes near it
    policy = dataclasses.replace(POLICY, pending_timeout_s=PENDING_TIMEOUT_S)
    try:
        worker.start()
        with sweeping(store, dispatcher, policy):
            thread = threading.Thread(target=submitter, daemon=True)
            thread.start()
            time.sleep(2.5)
            with worker.frozen(store.path):  # so that it fetches nothing between the look and the restart
                lost = _waiting_in_the_queue(store, dispatcher)
                server.stop()  # a restart without persistence: every queued message is gone
            server.start()
            back_at = time.time()
            time.sleep(2.5)  # new runs keep arriving
            stop_submitting.set()
            thread.join(10)
            done = [finished(store, run_id, timeout=60) for run_id in submitted]
    finally:
        worker.stop()
        close_broker(dispatcher.broker)
        server.stop()
        store.close()
    assert len(lost) >= 3, "no backlog when Redis restarted"
    assert [run.status for run in done] == [RunStatus.SUCCESS] * len(done)  # none lost, none expired
    resent = [run for run in done if RESENT_REASON in reasons(run)]
    assert lost <= {run.run_id for run in resent}  # every run whose message was lost, found and sent again
    bound_s = HEARTBEAT_TIMEOUT_S + 2 * SWEEP_INTERVAL_S + 1.0  # + 1 s of a loaded machine's slack
    for run in resent:
        assert reasons(run).count(RESENT_REASON) == 1, reasons(run)  # sent again once
        [entry] = [h for h in run.history if h.reason == RESENT_REASON]
        assert entry.at.timestamp() - back_at < bound_s, (entry.at.timestamp() - back_at, run.run_id)
        assert run.history[-2].at >= entry.at  # STARTED again after it, once its turn in the queue came
    assert all(run.attempt == 1 for run in done)  # a lost message is no failed attempt


def _waiting_in_the_queue(store: Store, dispatcher: QueueDispatcher) -> set[str]:
    """The runs whose message waits in the queue's list, fetched by no worker."""
    names = dispatcher.broker.client.lrange(f"{dispatcher.broker.namespace}:{dispatcher.queue_name}", 0, -1)
    runs = [store.get_run_by_message_id(name.decode().split("/")[0]) for name in names]
    return {run.run_id for run in runs if run is not None}


@dataclass(eq=False)
class Stack:
    """One deployment: its data dir (store), a dispatcher and a worker, on a shared Redis."""

    data_dir: Path
    queue: str
    store: SqliteStore
    dispatcher: QueueDispatcher
    worker: WorkerProcess

    @classmethod
    def on(cls, redis_url: str, data_dir: Path, queue: str = "podcast") -> Stack:
        settings = settings_for(redis_url, data_dir, queue_name=queue)
        env = worker_env(data_dir=data_dir, broker_url=redis_url, PODFLOW_QUEUE=queue)
        dispatcher = QueueDispatcher(broker=build_broker(settings, role="test"), queue_name=queue)
        return cls(data_dir, queue, open_store(data_dir), dispatcher, WorkerProcess(env, data_dir / "worker.log"))

    def submit(self, count: int) -> list[Run]:
        return [submit(self.store, self.dispatcher, request("noop"), now=utcnow()).run for _ in range(count)]

    def close(self) -> None:
        self.worker.stop()
        close_broker(self.dispatcher.broker)
        self.store.close()


@contextmanager
def two_stacks(redis_url: str, tmp_path: Path, queues: tuple[str, str]) -> Iterator[tuple[Stack, Stack]]:
    a, b = Stack.on(redis_url, tmp_path / "a", queues[0]), Stack.on(redis_url, tmp_path / "b", queues[1])
    try:
        a.worker.start()
        b.worker.start()
        yield a, b
    finally:
        a.close()
        b.close()


def test_two_stacks_on_one_redis_each_run_only_their_own_runs(redis_url: str, tmp_path: Path) -> None:
    with two_stacks(redis_url, tmp_path, ("podcast", "podcast")) as (a, b):
        runs = {a: a.submit(20), b: b.submit(20)}
        done = {stack: [finished(stack.store, run.run_id, timeout=60) for run in mine] for stack, mine in runs.items()}
        status = collect(settings_for(redis_url, a.data_dir), now=utcnow())
        ids = {a: a.store.store_id, b: b.store.store_id}
    for stack, mine in done.items():
        assert [(r.status, r.attempt) for r in mine] == [(RunStatus.SUCCESS, 1)] * 20
        assert {e["run_id"] for e in read_events(stack.data_dir / "events.jsonl")} == {r.run_id for r in mine}
        other = b if stack is a else a
        log = stack.worker.log()
        assert "does not exist" not in log  # no run of the other stack dropped as unknown
        warnings = re.findall(rf"belongs to store {ids[other]}, not to this worker's store {ids[stack]}", log)
        assert 1 <= len(warnings) <= 2, log  # once a minute
    assert status["broker"]["foreign_stores"] == [ids[b]]


def test_two_stacks_on_their_own_queues_never_meet(redis_url: str, tmp_path: Path) -> None:
    with two_stacks(redis_url, tmp_path, ("podcast", "podcast-b")) as (a, b):
        runs = {a: a.submit(5), b: b.submit(5)}
        done = [finished(stack.store, run.run_id) for stack, mine in runs.items() for run in mine]
        status = collect(settings_for(redis_url, a.data_dir), now=utcnow())
    assert [r.status for r in done] == [RunStatus.SUCCESS] * 10
    assert all("belongs to store" not in stack.worker.log() for stack in (a, b))
    assert status["broker"]["foreign_stores"] == []
