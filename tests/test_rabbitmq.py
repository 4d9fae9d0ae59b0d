"""The same execution on RabbitMQ (amqp://): a real worker, a real broker.

Runs when a RabbitMQ answers on 127.0.0.1:5672 (as on our machines), else skips.
The broker is shared, so nothing here purges a queue: a message left over from
another run names a run this test's store does not have, and is skipped and acked.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from podflow.dispatch.queue import QueueDispatcher
from podflow.lifecycle import submit
from podflow.settings import load_settings
from podflow.states import RunStatus
from podflow.store.sqlite import SqliteStore
from podflow.timeutil import utcnow
from podflow.worker.broker import build_broker, close_broker
from tests.execution import WorkerProcess, finished, request, seed, worker_env
from tests.servers import RABBITMQ_URL, rabbitmq_up

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not rabbitmq_up(), reason="no RabbitMQ answers on 127.0.0.1:5672"),
]


@pytest.fixture
def rabbit(tmp_path: Path) -> Iterator[tuple[SqliteStore, QueueDispatcher]]:
    env = worker_env(data_dir=tmp_path, broker_url=RABBITMQ_URL)
    store = seed(SqliteStore(tmp_path / "podflow.sqlite3", heartbeat_timeout_s=1.5))
    broker = build_broker(load_settings(env_file=None, broker_url=RABBITMQ_URL))
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        yield store, QueueDispatcher(broker=broker)
    finally:
        worker.stop()
        close_broker(broker)
        store.close()


def test_a_run_sent_through_rabbitmq_is_executed_to_success(rabbit) -> None:
    store, dispatcher = rabbit
    submission = submit(store, dispatcher, request("noop"), now=utcnow())
    assert submission.enqueued, submission.error
    run = finished(store, submission.run.run_id, timeout=30)
    assert run.status is RunStatus.SUCCESS and run.attempt == 1
    assert run.result is not None and run.result.transcript_path


def test_a_transient_failure_is_retried_through_rabbitmq_delay_queue(rabbit) -> None:
    store, dispatcher = rabbit
    run_id = submit(store, dispatcher, request("flaky"), now=utcnow()).run.run_id
    run = finished(store, run_id, timeout=30)
    assert run.status is RunStatus.SUCCESS and run.attempt == 2
