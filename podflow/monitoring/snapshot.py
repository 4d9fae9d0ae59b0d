"""What the broker and the store hold right now: ``podflow status``, the dashboard, ``/metrics``.

Read-only: nothing here changes the broker or the store. Each function takes
the broker (or the store) and ``now``, and returns plain dataclasses with an
``as_dict()`` for JSON; the dashboard's overview (:mod:`podflow.monitoring.overview`)
serves the same :class:`QueueCounts` and :class:`BrokerClient`.

Redis, in Dramatiq's layout (``dramatiq/brokers/redis/dispatch.lua``; the
namespace is ``dramatiq``):

=============================  ================================================
``dramatiq:<q>``               list: ids of messages ready to be fetched
``dramatiq:<q>.msgs``          hash id → message: ready *and* fetched but not
                               yet acknowledged (being executed or prefetched)
``dramatiq:<q>.DQ.msgs``       hash: delayed messages (retries waiting for their
                               eta), including those a worker holds until then
``dramatiq:<q>.XQ``            zset: dead-lettered ids by time (kept 7 days)
``dramatiq:__heartbeats__``    zset: broker id → last seen, ms since the epoch
=============================  ================================================

Every process that talks to the broker refreshes its heartbeat on each call,
senders too; podflow's broker ids say which role each process has and, for a
worker, the store it works for and its queue (:func:`podflow.worker.broker.client_id`),
so :func:`foreign_stores` can flag workers of another deployment on the same
queue. A worker silent for the broker's heartbeat timeout
(PODFLOW_HEARTBEAT_TIMEOUT / 2, at most 60 s) is dead to Dramatiq, which then gives
its unacknowledged messages to others; one that stopped cleanly leaves at once.

RabbitMQ: the counts come from passive declares of ``<q>``, ``<q>.DQ`` and
``<q>.XQ`` (a missing queue counts 0, nothing is created); it keeps no worker
heartbeats, so worker liveness is unavailable there.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import dramatiq

from ..errors import BrokerUnavailable
from ..states import RunStatus
from ..store.base import Store
from ..timeutil import to_ms
from ..worker.bands import band_queues
from ..worker.broker import QUEUE_NAME, broker_errors, parse_client_id

__all__ = [
    "BrokerClient",
    "BrokerStatus",
    "QueueCounts",
    "StoreStatus",
    "foreign_stores",
    "inspect_broker",
    "inspect_store",
    "parse_heartbeats",
]

#: Dramatiq's default worker heartbeat timeout (``RedisBroker.heartbeat_timeout``)
DEFAULT_HEARTBEAT_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class QueueCounts:
    """Messages of one broker queue. ``unacked`` (fetched by a worker, not yet
    acknowledged) is None where the broker does not say (RabbitMQ)."""

    name: str
    #: waiting for a worker
    ready: int
    #: retries waiting for their backoff
    delayed: int
    #: dead-lettered: Dramatiq gave up on them (kept 7 days)
    dead: int
    #: held by workers (running or prefetched)
    unacked: int | None = None


@dataclass(frozen=True, slots=True)
class BrokerClient:
    """A process in the broker's heartbeats (a Dramatiq worker, or a sender)."""

    id: str
    #: ``worker``, ``api``, ``scheduler``, ``cli``...; None for an id podflow did not make
    role: str | None
    host: str | None
    pid: int | None
    #: seconds since its last heartbeat
    last_seen_s: float
    #: seen within the broker's heartbeat timeout (meaningful for workers)
    alive: bool
    #: the store a worker works for (``Store.store_id``) and the queue it consumes;
    #: None for senders and for workers that could not open their store at boot
    store_id: str | None = None
    queue: str | None = None


@dataclass(frozen=True, slots=True)
class BrokerStatus:
    """The broker's queues and, on Redis, its workers and other clients.

    ``workers`` is None where liveness is unavailable (RabbitMQ; ``note`` says so).
    """

    kind: str
    queues: list[QueueCounts]
    workers: list[BrokerClient] | None
    clients: list[BrokerClient] = field(default_factory=list)
    heartbeat_timeout_s: float | None = None
    note: str | None = None

    @property
    def workers_alive(self) -> int | None:
        return None if self.workers is None else sum(w.alive for w in self.workers)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "workers_alive": self.workers_alive}


@dataclass(frozen=True, slots=True)
class StoreStatus:
    """Runs by status, and how long the PENDING run that has waited longest has been
    due (``Store.oldest_due_pending_at``: a scheduled run waits from its start_at,
    so runs scheduled ahead raise no "stuck" alert)."""

    runs: dict[str, int]
    oldest_pending_due_at: datetime | None
    oldest_pending_age_s: float | None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        due = self.oldest_pending_due_at
        data["oldest_pending_due_at"] = due.isoformat() if due else None
        return data


def inspect_store(store: Store, *, now: datetime) -> StoreStatus:
    """Raises: StoreUnavailable."""
    counts = store.count_by_status()
    oldest = store.oldest_due_pending_at(now=now)
    return StoreStatus(
        runs={str(status): counts.get(status, 0) for status in RunStatus},
        oldest_pending_due_at=oldest,
        oldest_pending_age_s=None if oldest is None else max(0.0, (now - oldest).total_seconds()),
    )


def parse_heartbeats(
    entries: Iterable[tuple[str | bytes, float]], *, now: datetime, timeout_s: float
) -> tuple[list[BrokerClient], list[BrokerClient]]:
    """Split ``(broker id, last seen ms)`` pairs into ``(workers, other clients)``,
    most recently seen first. Ids podflow did not make count as workers: only
    a consumer talks to the broker often enough to matter."""
    now_ms = to_ms(now)
    workers: list[BrokerClient] = []
    clients: list[BrokerClient] = []
    for raw, seen_ms in sorted(entries, key=lambda e: -e[1]):
        ident = parse_client_id(raw.decode() if isinstance(raw, bytes) else raw)
        age_s = max(0.0, (now_ms - seen_ms) / 1000)
        client = BrokerClient(
            ident.id, ident.role, ident.host, ident.pid, age_s, age_s < timeout_s, ident.store_id, ident.queue
        )
        (workers if ident.role in (None, "worker") else clients).append(client)
    return workers, clients


def foreign_stores(workers: Iterable[BrokerClient] | None, *, store_id: str, queue: str) -> list[str]:
    """The stores other than ``store_id`` whose live workers consume ``queue``:
    another deployment sharing the queue (their workers put this store's messages
    back, and this store's theirs). Empty when none, or where workers are unknown."""
    return sorted(
        {
            w.store_id
            for w in workers or ()
            if w.alive and w.store_id and w.store_id != store_id and (w.queue or QUEUE_NAME) == queue
        }
    )


def inspect_broker(
    broker: dramatiq.Broker, *, now: datetime, queues: Sequence[str] = tuple(band_queues(QUEUE_NAME).values())
) -> BrokerStatus:
    """Queue counts for ``queues`` (default: every band's of ``podcast``) and, on
    Redis, the broker's heartbeats.

    Raises: BrokerUnavailable.
    """
    client = getattr(broker, "client", None)
    if client is not None:
        return _inspect_redis(broker, client, now=now, queues=queues)
    with broker_errors("inspect"):
        counts = [_rabbitmq_counts(broker, name) for name in queues]
    return BrokerStatus(
        kind="rabbitmq",
        queues=counts,
        workers=None,
        note="worker liveness is not available on RabbitMQ (it keeps no worker heartbeats)",
    )


def _inspect_redis(broker: Any, client: Any, *, now: datetime, queues: Sequence[str]) -> BrokerStatus:
    ns = broker.namespace
    timeout_s = getattr(broker, "heartbeat_timeout", DEFAULT_HEARTBEAT_TIMEOUT_S * 1000) / 1000
    with broker_errors("inspect"):
        pipe = client.pipeline(transaction=True)  # one consistent snapshot
        for name in queues:
            pipe.llen(f"{ns}:{name}")
            pipe.hlen(f"{ns}:{name}.msgs")
            pipe.hlen(f"{ns}:{name}.DQ.msgs")
            pipe.zcard(f"{ns}:{name}.XQ")
        pipe.zrange(f"{ns}:__heartbeats__", 0, -1, withscores=True)
        replies = pipe.execute()
    counts = []
    for i, name in enumerate(queues):
        ready, held, delayed, dead = replies[4 * i : 4 * i + 4]
        counts.append(QueueCounts(name, ready=ready, delayed=delayed, dead=dead, unacked=max(0, held - ready)))
    workers, clients = parse_heartbeats(replies[-1], now=now, timeout_s=timeout_s)
    return BrokerStatus("redis", counts, workers, clients, heartbeat_timeout_s=timeout_s)


def _rabbitmq_counts(broker: Any, name: str) -> QueueCounts:
    import pika

    connection = pika.BlockingConnection(broker.parameters)
    try:
        ready, delayed, dead = (_passive_count(connection, q) for q in (name, f"{name}.DQ", f"{name}.XQ"))
    finally:
        connection.close()
    return QueueCounts(name, ready=ready, delayed=delayed, dead=dead)


def _passive_count(connection: Any, queue: str) -> int:
    """Ready messages of ``queue``; 0 if it does not exist (a passive declare
    creates nothing, and closes its channel when the queue is missing)."""
    import pika.exceptions

    channel = connection.channel()
    try:
        return int(channel.queue_declare(queue=queue, passive=True).method.message_count)
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code == 404:
            return 0
        raise BrokerUnavailable(f"passive declare of {queue}: {exc}") from exc
    finally:
        if channel.is_open:
            channel.close()
