"""``generate_podcast`` in a real ``dramatiq podflow.actors`` worker on a private redis-server.

One worker process serves the module (``tests.generators:by_name`` picks the
behaviour from the episode name); the soft-time-limit case gets its own worker
with a one-second limit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from dramatiq.results.backends import RedisBackend

from podflow import lifecycle
from podflow.dispatch.queue import QueueDispatcher
from podflow.lifecycle import submit
from podflow.models import Run
from podflow.paths import run_dir
from podflow.settings import load_settings
from podflow.states import RunStatus
from podflow.store.sqlite import SqliteStore
from podflow.timeutil import utcnow
from podflow.worker.broker import build_broker
from tests.execution import ROOT, FakeDispatcher, WorkerProcess, finished, request, seed, wait_for, worker_env
from tests.generators import read_events

pytestmark = pytest.mark.slow

HEARTBEAT_INTERVAL_S = 0.2


@dataclass
class Stack:
    data_dir: Path
    store: SqliteStore
    dispatcher: QueueDispatcher
    results: RedisBackend
    worker: WorkerProcess

    def submit(self, name: str) -> Run:
        return submit(self.store, self.dispatcher, request(name), now=utcnow()).run

    def finished(self, run_id: str, timeout: float = 20) -> Run:
        return finished(self.store, run_id, timeout=timeout)

    def events(self, run_id: str, event: str | None = None) -> list[dict]:
        return [
            e
            for e in read_events(self.data_dir / "events.jsonl")
            if e["run_id"] == run_id and (event is None or e["event"] == event)
        ]

    def result(self, run: Run, timeout_ms: int = 10_000) -> dict:
        message = self.dispatcher.message(run.run_id, run.message_id)
        return message.get_result(backend=self.results, block=True, timeout=timeout_ms)


def start_stack(data_dir: Path, url: str, **settings: str) -> Stack:
    env = worker_env(data_dir=data_dir, broker_url=url, PODFLOW_RESULT_BACKEND=url, **settings)
    store = seed(SqliteStore(data_dir / "podflow.sqlite3", heartbeat_timeout_s=1.5))
    broker = build_broker(load_settings(env_file=None, broker_url=url))
    # no socket timeout: get_result(block=True) waits on the server
    results = RedisBackend(client=redis.Redis.from_url(url, socket_timeout=None))
    worker = WorkerProcess(env, data_dir / "worker.log").start()
    return Stack(data_dir, store, QueueDispatcher(broker=broker), results, worker)


@pytest.fixture(scope="module")
def stack(worker_redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = start_stack(tmp_path_factory.mktemp("actors"), worker_redis_url)
    yield stack
    stack.worker.stop()
    stack.store.close()


def test_the_actor_uses_the_soft_time_limit_and_stores_results_only_with_a_backend(tmp_path) -> None:
    code = (
        "import json, podflow.actors as a; o = a.generate_podcast.options;"
        "print(json.dumps([a.generate_podcast.queue_name, o['time_limit'], o.get('store_results', False)]))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PODFLOW_")}
    env.update(PODFLOW_DATA_DIR=str(tmp_path), PODFLOW_GENERATOR="tests.generators:noop")
    env["PODFLOW_SOFT_TIME_LIMIT"] = "1234"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == ["podcast", 1_234_000, False]
    env["PODFLOW_RESULT_BACKEND"] = "redis://127.0.0.1:1/0"  # never connected at import
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == ["podcast", 1_234_000, True]
    assert not (tmp_path / "podflow.sqlite3").exists()  # importing opens no store


def test_a_run_succeeds_and_its_result_is_available_to_a_python_caller(stack: Stack) -> None:
    run = stack.submit("noop")
    done = stack.finished(run.run_id)
    assert done.status is RunStatus.SUCCESS and done.attempt == 1
    assert (stack.data_dir / done.result.transcript_path).is_file()
    assert not list(run_dir(stack.data_dir, run.run_id).glob(".attempt-*"))
    result = stack.result(run)
    assert (result["outcome"], result["status"], result["attempt"]) == ("succeeded", "SUCCESS", 1)


def test_a_transient_error_is_retried_and_succeeds_on_attempt_2(stack: Stack) -> None:
    run = stack.submit("flaky")
    done = stack.finished(run.run_id)
    assert done.status is RunStatus.SUCCESS and done.attempt == 2
    assert [e["attempt"] for e in stack.events(run.run_id, "start")] == [1, 2]
    assert [h.reason for h in done.history] == [
        "created",
        "claimed",
        "released for retry: TransientGenerationError",
        "retry",
        "success",
    ]
    assert stack.result(run)["status"] == "SUCCESS"


def test_a_permanent_error_fails_the_run_with_its_message_and_is_not_retried(stack: Stack) -> None:
    run = stack.submit("broken")
    done = stack.finished(run.run_id)
    assert done.status is RunStatus.FAILURE and done.attempt == 1
    assert (done.error.type, done.error.message) == ("ValueError", "boom: the generator has a bug")
    assert stack.result(run)["outcome"] == "failed"  # the message was acked, not retried
    assert len(stack.events(run.run_id, "start")) == 1
    assert not run_dir(stack.data_dir, run.run_id).exists()


def test_a_pending_run_cancelled_before_its_message_arrives_never_reaches_the_generator(stack: Stack) -> None:
    down = FakeDispatcher(store=stack.store)
    down.down = True  # the message is still on its way
    run = submit(stack.store, down, request("noop"), now=utcnow()).run
    lifecycle.cancel(stack.store, run.run_id, now=utcnow())
    stack.dispatcher.send(run.run_id, run.message_id)  # ...and arrives after the cancel
    result = stack.result(run)
    assert (result["outcome"], result["status"]) == ("skipped", "REVOKED")
    assert stack.events(run.run_id) == []
    assert stack.store.get_run(run.run_id).status is RunStatus.REVOKED


def test_a_started_run_cancelled_stops_within_two_heartbeat_intervals_and_leaves_no_files(stack: Stack) -> None:
    run = stack.submit("slow:10")
    wait_for(lambda: stack.events(run.run_id, "start"), what="the generator to start")
    time.sleep(0.3)  # between two steps, far from the start
    staging = run_dir(stack.data_dir, run.run_id) / ".attempt-1"
    assert (staging / "partial.wav").exists()
    cancelled_at = time.time()
    lifecycle.cancel(stack.store, run.run_id, now=utcnow())
    [stopped] = wait_for(lambda: stack.events(run.run_id, "interrupted"), timeout=5, what="the interrupt")
    assert stopped["error"] == "RunCancelled"
    assert stopped["t"] - cancelled_at <= 2 * HEARTBEAT_INTERVAL_S
    wait_for(lambda: not run_dir(stack.data_dir, run.run_id).exists(), timeout=5, what="the files to go")
    done = stack.store.get_run(run.run_id)
    assert done.status is RunStatus.REVOKED and done.result is None
    assert stack.result(run)["outcome"] == "cancelled"


def test_a_soft_time_limit_after_new_checkpoints_resumes_at_once_in_a_worker(redis_url: str, tmp_path: Path) -> None:
    # a 30 s backoff would not make it in time: the released run's message is put back, due now
    stack = start_stack(tmp_path, redis_url, PODFLOW_SOFT_TIME_LIMIT="1", PODFLOW_MAX_ATTEMPTS="5",
                        PODFLOW_RETRY_BACKOFF="30", PODFLOW_RETRY_BACKOFF_MAX="60")  # fmt: skip
    try:
        run = stack.submit("steps")  # ten checkpointed steps of 0.3 s: an attempt's second holds three or more
        done = stack.finished(run.run_id, timeout=15)
        assert done.status is RunStatus.SUCCESS and done.attempt >= 2, done.error
        assert [h.reason for h in done.history if h.attempt == 1][-1] == "released for retry: soft_time_limit"
        steps = done.result.stages["steps"]
        assert steps.computed + steps.reused == 10 and steps.reused >= 3
        assert "Traceback" not in stack.worker.log()
    finally:
        stack.worker.stop()
        stack.store.close()


def test_a_duplicate_delivery_never_runs_the_generator_twice_nor_overwrites_a_finished_run(stack: Stack) -> None:
    run = stack.submit("slow:1.5")
    wait_for(lambda: stack.events(run.run_id, "start"), what="the generator to start")
    stack.dispatcher.send(run.run_id, "msg-stale-duplicate")  # another message of the run: a duplicate
    wait_for(lambda: f"run {run.run_id}: skipped: held by live attempt 1" in stack.worker.log(), what="a skip")
    # its own message again (as Dramatiq hands on a worker's it counts dead): kept until the claim can tell
    stack.dispatcher.send(run.run_id, run.message_id)
    wait_for(lambda: f"run {run.run_id}: its message put back for" in stack.worker.log(), what="a put-back")
    done = stack.finished(run.run_id)
    assert done.status is RunStatus.SUCCESS and done.attempt == 1
    assert len(stack.events(run.run_id, "start")) == 1
    wait_for(lambda: f"run {run.run_id}: skipped: the run is already SUCCESS" in stack.worker.log(), what="a skip")

    stack.dispatcher.send(run.run_id, run.message_id)  # once more, after it finished
    wait_for(lambda: stack.worker.log().count(f"run {run.run_id}: skipped: the run is already SUCCESS") == 2,
             what="a second skip")  # fmt: skip
    assert stack.store.get_run(run.run_id) == done
    assert len(stack.events(run.run_id, "start")) == 1


def test_the_soft_time_limit_fails_the_run_with_soft_time_limit_and_no_retry(redis_url: str, tmp_path: Path) -> None:
    stack = start_stack(tmp_path, redis_url, PODFLOW_SOFT_TIME_LIMIT="1")  # database 0: not the module's worker
    try:
        run = stack.submit("slow:10")
        done = stack.finished(run.run_id, timeout=10)
        assert done.status is RunStatus.FAILURE and done.attempt == 1
        assert (done.error.type, done.error.message) == ("soft_time_limit", "soft time limit of 1 s exceeded")
        [stopped] = stack.events(run.run_id, "interrupted")
        assert stopped["error"] == "TimeLimitExceeded"
        assert not run_dir(tmp_path, run.run_id).exists()
        assert stack.result(run)["outcome"] == "failed"
        assert len(stack.events(run.run_id, "start")) == 1
    finally:
        stack.worker.stop()
        stack.store.close()
