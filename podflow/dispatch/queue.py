"""PODFLOW_MODE=queue: runs go to the Dramatiq workers as ``generate_podcast`` messages,
on their priority band's queue (:mod:`podflow.worker.bands`); a scheduled run's
message is delayed until its start and names it (``START_OPTION``), so a worker
never starts it early."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import dramatiq
from dramatiq.message import generate_unique_id

from ..models import Mode, Priority, RunRef
from ..timeutil import to_ms
from ..worker.bands import band_queue, band_queues
from ..worker.broker import ACTOR_NAME, QUEUE_NAME, START_OPTION, STORE_OPTION, broker_errors
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

    def message(
        self,
        run_id: str,
        message_id: str | None,
        *,
        store_id: str | None = None,
        priority: Priority = "normal",
        start_at: datetime | None = None,
    ) -> dramatiq.Message[Any]:
        """The message for ``run_id`` on its band's queue, naming the store it
        belongs to and, scheduled, its start (ms); with a result backend,
        ``.get_result(backend=...)`` works on it."""
        options: dict[str, Any] = {STORE_OPTION: store_id} if store_id else {}
        if start_at is not None:
            options[START_OPTION] = to_ms(start_at)
        return dramatiq.Message(
            queue_name=band_queue(self.queue_name, priority),
            actor_name=ACTOR_NAME,
            args=(run_id,),
            kwargs={},
            options=options,
            message_id=message_id or generate_unique_id(),
        )

    def send(
        self,
        run_id: str,
        message_id: str | None,
        *,
        store_id: str | None = None,
        priority: Priority = "normal",
        start_at: datetime | None = None,
        now: datetime | None = None,
    ) -> None:
        message = self.message(run_id, message_id, store_id=store_id, priority=priority, start_at=start_at)
        delay_ms = to_ms(start_at) - to_ms(now) if start_at is not None and now is not None else 0
        with broker_errors(f"enqueue run {run_id}"):
            # Dramatiq's delay queue holds it until then (and the sweep re-sends it if lost)
            self.broker.enqueue(message, delay=delay_ms if delay_ms > 0 else None)

    def missing(self, refs: Sequence[RunRef]) -> set[str] | None:
        """On Redis, the runs whose current message is neither ready, delayed nor
        fetched by a worker on their band's queue (:func:`~podflow.worker.messages.held_messages`); None
        on RabbitMQ, which cannot be asked about one message.

        Raises: BrokerUnavailable.
        """
        if not is_redis(self.broker):
            return None
        by_band: dict[Priority, list[str]] = defaultdict(list)
        for ref in refs:
            if ref.current_message_id:
                by_band[ref.priority].append(ref.current_message_id)
        with broker_errors("look up messages"):  # each band's queue: where its runs' messages are
            held = {p: held_messages(self.broker, band_queue(self.queue_name, p), ids) for p, ids in by_band.items()}
        return {r.run_id for r in refs if r.current_message_id not in held.get(r.priority, ())}

    def requeue_orphans(self) -> None:
        """On Redis, Dramatiq's maintenance now: the messages of workers it counts
        dead go back on the queue (RabbitMQ redelivers them by itself).

        Raises: BrokerUnavailable.
        """
        if is_redis(self.broker):
            with broker_errors("requeue the messages of dead workers"):
                for name in band_queues(self.queue_name).values():
                    requeue_dead_workers(self.broker, name)
