"""PODFLOW_MODE=queue: runs go to the Dramatiq workers as ``generate_podcast`` messages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dramatiq
from dramatiq.message import generate_unique_id

from ..models import Mode, RunRef
from ..worker.broker import ACTOR_NAME, QUEUE_NAME, STORE_OPTION, broker_errors
from ..worker.messages import held_messages, is_redis, requeue_dead_workers

__all__ = ["QueueDispatcher"]


class QueueDispatcher:
    """Sends runs to the Dramatiq workers through ``broker``, on ``queue_name`` (PODFLOW_QUEUE)."""

    mode: Mode = "queue"
    durable = True

    def __init__(self, *, broker: dramatiq.Broker, queue_name: str = QUEUE_NAME) -> None:
        self.broker = broker
        self.queue_name = queue_name

    def new_message_id(self) -> str:
        return generate_unique_id()

    def message(self, run_id: str, message_id: str | None, *, store_id: str | None = None) -> dramatiq.Message[Any]:
        """The message for ``run_id``, naming the store it belongs to; with a result
        backend, ``.get_result(backend=...)`` works on it."""
        return dramatiq.Message(
            queue_name=self.queue_name,
            actor_name=ACTOR_NAME,
            args=(run_id,),
            kwargs={},
            options={STORE_OPTION: store_id} if store_id else {},
            message_id=message_id or generate_unique_id(),
        )

    def send(self, run_id: str, message_id: str | None, *, store_id: str | None = None) -> None:
        with broker_errors(f"enqueue run {run_id}"):
            self.broker.enqueue(self.message(run_id, message_id, store_id=store_id))

    def missing(self, refs: Sequence[RunRef]) -> set[str] | None:
        """On Redis, the runs whose current message is neither ready, delayed nor
        fetched by a worker (:func:`~podflow.worker.messages.held_messages`); None
        on RabbitMQ, which cannot be asked about one message.

        Raises: BrokerUnavailable.
        """
        if not is_redis(self.broker):
            return None
        ids = [r.current_message_id for r in refs if r.current_message_id]
        with broker_errors("look up messages"):
            held = held_messages(self.broker, self.queue_name, ids)
        return {r.run_id for r in refs if r.current_message_id not in held}

    def requeue_orphans(self) -> None:
        """On Redis, Dramatiq's maintenance now: the messages of workers it counts
        dead go back on the queue (RabbitMQ redelivers them by itself).

        Raises: BrokerUnavailable.
        """
        if is_redis(self.broker):
            with broker_errors("requeue the messages of dead workers"):
                requeue_dead_workers(self.broker, self.queue_name)
