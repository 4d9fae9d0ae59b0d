"""Thread mode: the same runner in a pool inside the (API) process."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from podflow import lifecycle
from podflow.dispatch.thread import ThreadExecutor, build_thread_executor
from podflow.generation.base import GenerationContext, GenerationRequest, GenerationResult
from podflow.generation.keys import input_key
from podflow.lifecycle import submit
from podflow.models import Run
from podflow.paths import run_dir
from podflow.settings import load_settings
from podflow.states import RunStatus
from podflow.store.sqlite import SqliteStore
from podflow.sweep import SweepPolicy
from podflow.timeutil import utcnow
from tests import generators
from tests.execution import FakeDispatcher, finished, request, seed, wait_for

HEARTBEAT_INTERVAL_S = 0.1


class Pool:
    def __init__(self, tmp_path: Path, generator: Any = generators.by_name, **settings: Any) -> None:
        self.data_dir = tmp_path
        defaults = {"retry_backoff_s": 0.05, "retry_backoff_max_s": 0.2, "concurrency": 2}
        self.settings = load_settings(
            env_file=None,
            data_dir=tmp_path,
            mode="thread",
            heartbeat_interval_s=HEARTBEAT_INTERVAL_S,
            heartbeat_timeout_s=1.0,
            sweep_interval_s=0.2,
            **{**defaults, **settings},
        )
        self.store = seed(SqliteStore(tmp_path / "podflow.sqlite3", heartbeat_timeout_s=1.0))
        self.generator = generator
        self.executors: list[ThreadExecutor] = []

    def executor(self) -> ThreadExecutor:
        policy = SweepPolicy.from_settings(self.settings, outbox_grace_s=0.2)
        executor = build_thread_executor(self.settings, store=self.store, generator=self.generator, policy=policy)
        self.executors.append(executor)
        return executor

    def finished(self, run_id: str, timeout: float = 10) -> Run:
        return finished(self.store, run_id, timeout=timeout)

    def events(self, run_id: str, event: str) -> list[dict]:
        path = self.data_dir / "events.jsonl"
        return [e for e in generators.read_events(path) if e["run_id"] == run_id and e["event"] == event]

    def close(self) -> None:
        for executor in self.executors:
            executor.stop(timeout_s=5)
        self.store.close()


@contextlib.contextmanager
def started_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **settings: Any
) -> Iterator[tuple[Pool, ThreadExecutor]]:
    """A pool with ``settings``, its executor started; closed after."""
    monkeypatch.setenv("PODFLOW_TEST_EVENTS", str(tmp_path / "events.jsonl"))
    pool = Pool(tmp_path, **settings)
    try:
        executor = pool.executor()
        executor.start()
        yield pool, executor
    finally:
        pool.close()


@pytest.fixture
def pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pool]:
    monkeypatch.setenv("PODFLOW_TEST_EVENTS", str(tmp_path / "events.jsonl"))
    pool = Pool(tmp_path)
    yield pool
    pool.close()


def test_a_run_succeeds_in_the_pool(pool: Pool) -> None:
    executor = pool.executor()
    executor.start()
    submission = submit(pool.store, executor, request("noop"), now=utcnow())
    assert submission.enqueued and submission.run.mode == "thread" and submission.run.message_id is None
    done = pool.finished(submission.run.run_id)
    assert done.status is RunStatus.SUCCESS and done.attempt == 1
    assert (pool.data_dir / done.result.transcript_path).is_file()


def test_a_transient_error_is_retried_after_a_backoff(pool: Pool) -> None:
    executor = pool.executor()
    executor.start()
    run = submit(pool.store, executor, request("flaky"), now=utcnow()).run
    done = pool.finished(run.run_id)
    assert done.status is RunStatus.SUCCESS and done.attempt == 2


def test_a_pending_run_cancelled_before_it_starts_never_reaches_the_generator(pool: Pool) -> None:
    executor = pool.executor()
    run = submit(pool.store, executor, request("noop"), now=utcnow()).run  # queued, pool not started
    lifecycle.cancel(pool.store, run.run_id, now=utcnow())
    executor.start()
    wait_for(lambda: executor._queue.empty() and not executor._pending, what="the queue to drain")
    assert pool.store.get_run(run.run_id).status is RunStatus.REVOKED
    assert pool.events(run.run_id, "start") == []


def test_a_started_run_cancelled_stops_within_two_heartbeat_intervals(pool: Pool) -> None:
    executor = pool.executor()
    executor.start()
    run = submit(pool.store, executor, request("slow:10"), now=utcnow()).run
    wait_for(lambda: pool.events(run.run_id, "start"), what="the generator to start")
    time.sleep(0.15)
    cancelled_at = time.time()
    lifecycle.cancel(pool.store, run.run_id, now=utcnow())
    [stopped] = wait_for(lambda: pool.events(run.run_id, "interrupted"), timeout=5, what="the interrupt")
    assert stopped["error"] == "RunCancelled" and stopped["t"] - cancelled_at <= 2 * HEARTBEAT_INTERVAL_S
    wait_for(lambda: not run_dir(pool.data_dir, run.run_id).exists(), timeout=5, what="the files to go")
    assert pool.store.get_run(run.run_id).status is RunStatus.REVOKED


def test_the_monitor_enforces_the_soft_time_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with started_pool(tmp_path, monkeypatch, soft_time_limit_s=0.5) as (pool, executor):
        run = submit(pool.store, executor, request("slow:10"), now=utcnow()).run
        done = pool.finished(run.run_id, timeout=5)
        assert done.status is RunStatus.FAILURE and done.attempt == 1
        assert done.error.type == "soft_time_limit"
        assert pool.events(run.run_id, "interrupted")[0]["error"] == "SoftTimeLimitExceeded"
        assert not run_dir(tmp_path, run.run_id).exists()


def checkpointed_steps(req: GenerationRequest, ctx: GenerationContext) -> GenerationResult:
    """Eight steps of 0.08 s, each a checkpoint."""
    for step in range(8):
        ctx.checkpoints.value(input_key("step", step), lambda: time.sleep(0.08), stage="steps")
    return generators.noop(req, ctx)


def test_a_soft_time_limit_after_new_checkpoints_resumes_at_once_not_after_the_backoff(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PODFLOW_TEST_EVENTS", str(tmp_path / "events.jsonl"))
    pool = Pool(tmp_path, checkpointed_steps, soft_time_limit_s=0.5, retry_backoff_s=30, retry_backoff_max_s=60)
    try:
        executor = pool.executor()
        executor.max_retries = 0  # a resume is none of the run's retries: it goes on all the same
        executor.start()
        run = submit(pool.store, executor, request("steps"), now=utcnow()).run
        done = pool.finished(run.run_id, timeout=5)  # a 30 s backoff would not make it
        assert done.status is RunStatus.SUCCESS and done.attempt == 2, done.error
        assert [h.reason for h in done.history if h.attempt == 1][-1] == "released for retry: soft_time_limit"
        steps = done.result.stages["steps"]
        assert steps.computed + steps.reused == 8 and steps.reused >= 3
    finally:
        pool.close()


def test_a_restart_resumes_what_a_dead_process_left_behind(pool: Pool) -> None:
    """An outbox run never handed to a pool, and a run whose executing process died."""
    dead = FakeDispatcher(mode="thread", durable=False)
    dead.down = True
    never_sent = submit(pool.store, dead, request("noop"), now=utcnow() - timedelta(seconds=5)).run
    orphan = submit(pool.store, dead, request("noop"), now=utcnow() - timedelta(seconds=5)).run
    assert pool.store.claim(orphan.run_id, now=utcnow() - timedelta(seconds=5)) == 1  # then the process died
    executor = pool.executor()
    executor.start()
    assert pool.finished(never_sent.run_id).status is RunStatus.SUCCESS
    resumed = pool.finished(orphan.run_id)
    assert resumed.status is RunStatus.SUCCESS and resumed.attempt == 2


def test_a_run_interrupted_by_stop_resumes_after_the_next_start(pool: Pool) -> None:
    first = pool.executor()
    first.start()
    run = submit(pool.store, first, request("slow:10,0.1"), now=utcnow()).run
    wait_for(lambda: pool.events(run.run_id, "start"), what="the generator to start")
    first.stop(timeout_s=5)
    interrupted = pool.store.get_run(run.run_id)
    assert interrupted.status is RunStatus.STARTED and interrupted.released
    assert pool.events(run.run_id, "interrupted")[0]["error"] == "WorkerShutdown"
    assert not (run_dir(pool.data_dir, run.run_id) / ".attempt-1").exists()
    pool.executor().start()  # the process restarted
    done = pool.finished(run.run_id)
    assert done.status is RunStatus.SUCCESS and done.attempt == 2


def _started_at(run: Run) -> Any:
    return next(h.at for h in run.history if h.status is RunStatus.STARTED)


def test_the_pool_serves_high_runs_before_normal_ones_queued_earlier(tmp_path: Path, monkeypatch: Any) -> None:
    with started_pool(tmp_path, monkeypatch, concurrency=1) as (pool, executor):
        busy = submit(pool.store, executor, request("slow:0.5"), now=utcnow()).run
        wait_for(lambda: pool.store.get_run(busy.run_id).status is RunStatus.STARTED, what="the first run")
        normal = [submit(pool.store, executor, request("noop"), now=utcnow()).run for _ in range(3)]
        low = submit(pool.store, executor, request("noop").model_copy(update={"priority": "low"}), now=utcnow()).run
        high = submit(pool.store, executor, request("noop").model_copy(update={"priority": "high"}), now=utcnow()).run
        order = sorted([*normal, low, high], key=lambda run: _started_at(pool.finished(run.run_id)))
        assert [run.run_id for run in order] == [high.run_id, *(r.run_id for r in normal), low.run_id]


def test_a_scheduled_run_waits_in_the_pool_until_its_start(pool: Pool) -> None:
    executor = pool.executor()
    executor.start()
    start_at = utcnow() + timedelta(seconds=1)
    submission = submit(pool.store, executor, request("noop").model_copy(update={"start_at": start_at}), now=utcnow())
    assert submission.enqueued
    time.sleep(0.5)  # a sweep or two meanwhile: it is held, not sent again
    assert pool.store.get_run(submission.run.run_id).status is RunStatus.PENDING
    done = pool.finished(submission.run.run_id)
    assert done.status is RunStatus.SUCCESS and done.started_at >= start_at
    assert len(pool.events(done.run_id, "start")) == 1


def test_a_run_scheduled_beyond_the_horizon_is_sent_by_the_pools_sweep_and_starts_on_time(pool: Pool) -> None:
    executor = pool.executor()
    executor.start()
    start_at = utcnow() + timedelta(seconds=1.5)
    scheduled = request("noop").model_copy(update={"start_at": start_at})
    submission = submit(pool.store, executor, scheduled, now=utcnow(), schedule_horizon_s=0.8)
    assert submission.held  # in the store only: the pool's own sweep hands it over 0.8 s before its start
    done = pool.finished(submission.run.run_id)
    assert done.status is RunStatus.SUCCESS and start_at <= done.started_at < start_at + timedelta(seconds=1)
    assert len(pool.events(done.run_id, "start")) == 1
