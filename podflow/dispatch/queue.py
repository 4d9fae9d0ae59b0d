"""PODFLOW_MODE=queue: runs go to the Dramatiq workers as ``generate_podcast`` messages."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import dramatiq
from dramatiq.message import generate_unique_id

from ..models import Mode
from ..worker.broker import ACTOR_NAME, QUEUE_NAME, broker_errors

__all__ = ["QueueDispatcher"]


class QueueDispatcher:
    """Sends runs to the Dramatiq workers through ``broker``."""

    mode: Mode = "queue"
    durable = True

    def __init__(self, *, broker: dramatiq.Broker, queue_name: str = QUEUE_NAME) -> None:
        self.broker = broker
        self.queue_name = queue_name

    def new_message_id(self) -> str:
        return generate_unique_id()

    def message(self, run_id: str, message_id: str | None) -> dramatiq.Message[Any]:
        """The message for ``run_id``; with a result backend, ``.get_result(backend=...)`` works on it."""
        return dramatiq.Message(
            queue_name=self.queue_name,
            actor_name=ACTOR_NAME,
            args=(run_id,),
            kwargs={},
            options={},
            message_id=message_id or generate_unique_id(),
        )

    def send(self, run_id: str, message_id: str | None) -> None:
        with broker_errors(f"enqueue run {run_id}"):
            self.broker.enqueue(self.message(run_id, message_id))

    def holds_nothing(self, *, now: datetime) -> bool | None:
        """From one snapshot of the queue's counts; None on RabbitMQ, which does
        not say how many messages its consumers hold unacknowledged."""
        from ..monitoring.snapshot import inspect_broker

        counts = inspect_broker(self.broker, now=now, queues=(self.queue_name,)).queues[0]
        if counts.unacked is None:
            return None
        return counts.ready + counts.delayed + counts.unacked == 0
