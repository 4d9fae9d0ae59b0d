"""Queue mode's dispatcher: a Dramatiq message carrying the run's recorded message id."""

from __future__ import annotations

import time

import pytest
from dramatiq import Message

from podflow.dispatch.queue import QueueDispatcher
from podflow.errors import BrokerUnavailable
from podflow.settings import load_settings
from podflow.worker.broker import ACTOR_NAME, QUEUE_NAME, build_broker
from tests.servers import free_port


def test_the_queue_dispatcher_enqueues_the_runs_message_id(redis_url: str) -> None:
    broker = build_broker(load_settings(env_file=None, broker_url=redis_url))
    QueueDispatcher(broker=broker).send("run_abc", "msg-42")
    client = broker.client  # type: ignore[attr-defined]
    [data] = client.hvals(f"dramatiq:{QUEUE_NAME}.msgs")
    message = Message.decode(data)
    assert (message.message_id, message.actor_name, message.args) == ("msg-42", ACTOR_NAME, ("run_abc",))


def test_the_queue_dispatcher_reports_a_dead_broker_quickly() -> None:
    broker = build_broker(load_settings(env_file=None, broker_url=f"redis://127.0.0.1:{free_port()}/0"))
    began = time.monotonic()
    with pytest.raises(BrokerUnavailable, match="broker unreachable"):
        QueueDispatcher(broker=broker).send("run_abc", "msg-1")
    assert time.monotonic() - began < 5
