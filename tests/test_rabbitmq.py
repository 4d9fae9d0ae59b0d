"""The same execution on RabbitMQ (amqp://): a real worker, a real broker.

Runs when a RabbitMQ answers on 127.0.0.1:5672 (as on our machines), else skips.
The broker is shared by every engineer's test runs, so each test has a queue of its
own (PODFLOW_QUEUE, with the pid and a random part: two deployments on one broker,
on purpose), and deletes that queue and its delay and dead-letter queues afterwards;
nothing shared is ever purged.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from podflow.dispatch.queue import QueueDispatcher
from podflow.lifecycle import submit
from podflow.models import RunRef
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


def _delete_queues(queue: str) -> None:
    """This test's own queues, and only those."""
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    try:
        channel = connection.channel()
        for name in (queue, f"{queue}.DQ", f"{queue}.XQ"):
            channel.queue_delete(queue=name)
    finally:
        connection.close()


@pytest.fixture
def rabbit(tmp_path: Path) -> Iterator[tuple[SqliteStore, QueueDispatcher]]:
    queue = f"podflow-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    env = worker_env(data_dir=tmp_path, broker_url=RABBITMQ_URL, PODFLOW_QUEUE=queue)
    store = seed(SqliteStore(tmp_path / "podflow.sqlite3", heartbeat_timeout_s=1.5))
    broker = build_broker(load_settings(env_file=None, broker_url=RABBITMQ_URL, queue_name=queue))
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        yield store, QueueDispatcher(broker=broker, queue_name=queue)
    finally:
        worker.stop()
        close_broker(broker)
        store.close()
        _delete_queues(queue)


def test_a_run_sent_through_rabbitmq_is_executed_to_success(rabbit) -> None:
    store, dispatcher = rabbit
    submission = submit(store, dispatcher, request("noop"), now=utcnow())
    assert submission.enqueued, submission.error
    run = finished(store, submission.run.run_id, timeout=30)
    assert run.status is RunStatus.SUCCESS and run.attempt == 1
    assert run.result is not None and run.result.transcript_path
    # RabbitMQ cannot be asked about one message: the sweep re-sends nothing there (it redelivers itself)
    assert dispatcher.missing([RunRef(run_id=run.run_id, attempt=1, mode="queue", current_message_id="m")]) is None
    dispatcher.requeue_orphans()  # a no-op


def test_a_transient_failure_is_retried_through_rabbitmq_delay_queue(rabbit) -> None:
    store, dispatcher = rabbit
    run_id = submit(store, dispatcher, request("flaky"), now=utcnow()).run.run_id
    run = finished(store, run_id, timeout=30)
    assert run.status is RunStatus.SUCCESS and run.attempt == 2
