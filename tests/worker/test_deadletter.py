"""The dead-letter queue on a private redis-server: real messages Dramatiq nacked, listed and requeued."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import dramatiq
import pytest

from podflow.errors import NotSupported
from podflow.settings import load_settings
from podflow.worker.broker import ACTOR_NAME, QUEUE_NAME, build_broker, close_broker
from podflow.worker.deadletter import DeadMessageNotFound, list_dead, requeue
from tests.servers import RABBITMQ_URL


@pytest.fixture
def broker(redis_url: str) -> Iterator[dramatiq.Broker]:
    broker = build_broker(load_settings(env_file=None, broker_url=redis_url), role="api")
    broker.declare_queue(QUEUE_NAME)
    yield broker
    close_broker(broker)


def dead_letter(broker: dramatiq.Broker, run_id: str) -> dramatiq.Message:  # type: ignore[type-arg]
    """A ``generate_podcast`` message for ``run_id``, fetched and nacked by a consumer, as Dramatiq
    does with a message it gives up on."""
    message = dramatiq.Message(
        queue_name=QUEUE_NAME, actor_name=ACTOR_NAME, args=(run_id,), kwargs={}, options={"retries": 5,
        "traceback": "Traceback (most recent call last):\n  ...\nValueError: boom\n"},
    )  # fmt: skip
    broker.enqueue(message)
    consumer = broker.consume(QUEUE_NAME, prefetch=1, timeout=1000)
    fetched = next(m for m in consumer if m is not None)
    consumer.nack(fetched)
    consumer.close()
    return fetched


def test_dead_messages_are_listed_newest_first_with_their_run_and_error(broker: dramatiq.Broker) -> None:
    first = dead_letter(broker, "run_a")
    time.sleep(0.01)  # Dramatiq scores a dead letter by its millisecond: no tie between the two
    second = dead_letter(broker, "run_b")
    listed, total = list_dead(broker)
    assert total == 2
    assert [(m.message_id, m.run_id, m.retries, m.error) for m in listed] == [
        (second.message_id, "run_b", 5, "ValueError: boom"),
        (first.message_id, "run_a", 5, "ValueError: boom"),
    ]
    assert listed[0].dead_at >= listed[1].dead_at and listed[0].id == second.options["redis_message_id"]
    assert list_dead(broker, limit=1)[0] == listed[:1]


def test_a_requeued_message_is_delivered_again_with_its_retries_reset_once(broker: dramatiq.Broker) -> None:
    dead = dead_letter(broker, "run_a")
    requeued = requeue(broker, dead.message_id)  # by its Dramatiq message id (or by its entry)
    assert requeued.run_id == "run_a"
    assert list_dead(broker) == ([], 0)
    with pytest.raises(DeadMessageNotFound):
        requeue(broker, dead.message_id)
    consumer = broker.consume(QUEUE_NAME, prefetch=1, timeout=1000)
    again = next(m for m in consumer if m is not None)
    assert (again.message_id, again.args, again.options.get("retries")) == (dead.message_id, ("run_a",), None)
    consumer.ack(again)
    consumer.close()
    assert broker.client.hlen(f"{broker.namespace}:{QUEUE_NAME}.msgs") == 0  # acked: gone for good


def test_on_rabbitmq_listing_dead_letters_is_refused_saying_what_works(tmp_path: Path) -> None:
    broker = build_broker(load_settings(env_file=None, broker_url=RABBITMQ_URL), role="api")
    with pytest.raises(NotSupported, match="management UI"):
        list_dead(broker)
    broker.close()
