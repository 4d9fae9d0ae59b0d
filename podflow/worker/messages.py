"""Where a run's message is on Redis, and the three things podflow asks of Dramatiq's layout.

Dramatiq 2.x keeps every queue mutation in ``dramatiq/brokers/redis/dispatch.lua``;
its keys, for a queue ``<q>`` in the namespace ``<ns>`` (``dramatiq``)::

    <ns>:<q>                       list: names of messages ready to be fetched
    <ns>:<q>.msgs                  hash name -> message, from enqueue until ack: ready
                                   (its name in the list) or fetched by a worker, live
                                   or dead (its name in that worker's acks set)
    <ns>:__acks__.<worker>.<q>     set: names fetched by a worker, not yet acknowledged
    <ns>:<q>.DQ, <q>.DQ.msgs       the same for delayed messages (a retry's backoff, a
                                   message put back for later), until due
    <ns>:<q>.XQ, <q>.XQ.msgs       dead-lettered messages (kept 7 days)
    <ns>:__heartbeats__            zset: worker (broker) id -> last call, ms; a worker
                                   silent for the heartbeat timeout is dead, and the
                                   next "maintenance" pushes its unacked names back on
                                   their lists

A message's journey never leaves both hashes empty: a retry is enqueued on
``.DQ`` before the original is acked, a delayed message due again is enqueued on
``<q>`` before its ``.DQ`` copy is acked. So "does the broker still hold this
run's message?" has an exact answer -- if a hash field can be traced to its
message. Dramatiq names each enqueued copy with a fresh uuid
(``options["redis_message_id"]``), which nothing else records. Naming a copy
after its message id alone would not do: acknowledgements are asynchronous, so
the ack of one copy may come after the next copy of the same message entered
the same hash, and would delete it (Dramatiq's "Found 'None' message" warning,
and a message lost). :class:`RedisBroker` names each copy
``<message id>/<fresh uuid>``: unique per copy, as Dramatiq's, and traceable.
The four operations:

- :func:`held_messages`: which of these messages the broker holds (the sweep's
  per-run lost-message check);
- :func:`requeue_dead_workers`: Dramatiq's maintenance, now (it otherwise runs
  on a random 0.1 % of the calls of each queue, which a busy cluster hardly makes);
- :func:`put_first`: a delivery yielding to a higher band goes back at the
  front of its list (:mod:`podflow.worker.bands`), as a new copy enqueued before
  the delivery ends;
- :func:`leave_heartbeats`: a worker that stopped cleanly leaves
  ``__heartbeats__`` at once, instead of looking alive for the heartbeat timeout
  and then dead until maintenance removes it (its consumers put back, when
  closed, what they fetched and never handed out: :class:`_Consumer`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any, TypeGuard

import dramatiq
import redis
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker as DramatiqRedisBroker
from dramatiq.brokers.redis import _RedisConsumer as _DramatiqRedisConsumer
from dramatiq.common import current_millis, dq_name
from dramatiq.errors import ConnectionClosed

__all__ = [
    "RedisBroker",
    "acks_key",
    "held_messages",
    "is_redis",
    "leave_heartbeats",
    "put_first",
    "requeue_dead_workers",
]

#: between the message id and the copy's uuid in a hash field's name
_SEPARATOR = "/"

#: drop the worker from the heartbeats unless it still holds messages (KEYS[1]: the
#: heartbeats, KEYS[2..]: its acks sets; ARGV[1]: its id). Unacked messages keep
#: the heartbeat, so that maintenance finds them once it goes stale.
_LEAVE = """
for i = 2, #KEYS do
    if redis.call("exists", KEYS[i]) == 1 then return 0 end
end
return redis.call("zrem", KEYS[1], ARGV[1])
"""

#: Dramatiq's "enqueue", but at the head of the list (KEYS[1]: the list, KEYS[2]:
#: its hash; ARGV[1]: the copy's name, ARGV[2]: the message)
_PUT_FIRST = """
redis.call("hset", KEYS[2], ARGV[1], ARGV[2])
return redis.call("lpush", KEYS[1], ARGV[1])
"""


class _Consumer(_DramatiqRedisConsumer):
    """Dramatiq's Redis consumer, but closing it puts back what it fetched and
    never handed out. A consumer fetches up to its prefetch in one call and
    hands them out one by one; a worker stopping between the two (a graceful
    shutdown, while the delay queue's consumer fetches the retries it just
    caused) left the rest unacknowledged in the worker's acks set -- so it
    could not leave the broker's heartbeats, and they waited there for
    maintenance to find the worker dead (Dramatiq's ``close`` does nothing)."""

    def close(self) -> None:
        cached, self.message_cache = self.message_cache, []
        names = [Message.decode(data).options["redis_message_id"] for data in cached if data is not None]
        if names:
            try:
                self.broker.do_requeue(self.queue_name, *names)
            except redis.ConnectionError as exc:  # they stay held; maintenance requeues them
                raise ConnectionClosed(exc) from None


class RedisBroker(DramatiqRedisBroker):
    """Dramatiq's RedisBroker, but each enqueued copy of a message is named
    ``<message id>/<fresh uuid>`` (Dramatiq: ``<fresh uuid>``), so the sweep can
    tell from the names which messages the broker holds, and its consumers put
    back what they fetched but never handed out when closed (:class:`_Consumer`).
    :meth:`enqueue` is Dramatiq's otherwise."""

    def __init__(self, **options: Any) -> None:
        # Dramatiq's, untyped: mypy's untyped_calls_exclude does not reach a subclass's super() call
        super().__init__(**options)  # type: ignore[no-untyped-call]

    @property
    def consumer_class(self) -> type[_Consumer]:  # Dramatiq's hook for its consumer
        return _Consumer

    def enqueue(self, message: dramatiq.Message[Any], *, delay: int | None = None) -> dramatiq.Message[Any]:
        queue_name = message.queue_name
        name = _copy_name(message)
        message = message.copy(options={"redis_message_id": name})
        if delay is not None:
            queue_name = dq_name(queue_name)
            message = message.copy(queue_name=queue_name, options={"eta": current_millis() + delay})
        self.logger.debug("Enqueueing message %r on queue %r.", message.message_id, queue_name)
        self.emit_before("enqueue", message, delay)
        self.do_enqueue(queue_name, name, message.encode())
        self.emit_after("enqueue", message, delay)
        return message


def _copy_name(message: dramatiq.Message[Any]) -> str:
    return f"{message.message_id}{_SEPARATOR}{uuid.uuid4().hex}"


def put_first(broker: DramatiqRedisBroker, message: Any) -> None:
    """Enqueue a new copy of ``message`` (a delivery under way, from a ready
    queue) at the head of its queue's list, to be fetched next. The delivery
    then ends (and is acknowledged) as usual: the broker holds the message throughout.

    Raises: redis-py's connection errors.
    """
    name = _copy_name(message)
    copy = message.copy(options={"redis_message_id": name})
    key = f"{broker.namespace}:{message.queue_name}"
    broker.client.eval(_PUT_FIRST, 2, key, f"{key}.msgs", name, copy.encode())


def acks_key(broker: DramatiqRedisBroker, queue_name: str) -> str:
    """The set of the names this broker (a worker) fetched from ``queue_name`` and has not acknowledged."""
    return f"{broker.namespace}:__acks__.{broker.broker_id}.{queue_name}"


def is_redis(broker: dramatiq.Broker) -> TypeGuard[DramatiqRedisBroker]:
    """Whether ``broker`` keeps its messages in Redis (so they can be asked about)."""
    return isinstance(broker, DramatiqRedisBroker)


def held_messages(broker: DramatiqRedisBroker, queue_name: str, message_ids: Iterable[str]) -> set[str]:
    """The ids among ``message_ids`` whose message the broker still holds for ``queue_name``.

    A message is held from enqueue until it is acknowledged: a copy of it is a field
    of ``<ns>:<queue>.msgs`` while it is ready or fetched by a worker (live, or dead
    until maintenance requeues it), or of ``<ns>:<queue>.DQ.msgs`` while it is
    delayed (a retry's backoff, a message put back). The names of both hashes are
    read in one MULTI/EXEC (HKEYS), so a message moving from one to the other is
    seen in at least one, and traced to their message by :class:`RedisBroker`'s
    naming (``<message id>/<uuid>``). A message dead-lettered (``.XQ``) or lost
    (Redis restarted without persistence, a flushed database) is not held. The
    cost is one read of the queue's field names, whatever the number asked about.

    Raises: redis-py's connection errors.
    """
    wanted = set(message_ids)
    if not wanted:
        return set()
    hashes = (f"{broker.namespace}:{queue_name}.msgs", f"{broker.namespace}:{dq_name(queue_name)}.msgs")
    pipe = broker.client.pipeline(transaction=True)
    for key in hashes:
        pipe.hkeys(key)
    held: set[str] = set()
    unnamed: list[tuple[str, list[bytes]]] = []
    for key, names in zip(hashes, pipe.execute(), strict=True):
        traced = [name.decode().rpartition(_SEPARATOR)[0] for name in names]
        held.update(traced)
        unnamed.append((key, [name for name, id_ in zip(names, traced, strict=True) if not id_]))
    # copies an older podflow enqueued (Dramatiq's bare uuids): read their ids from the
    # bodies, so that an upgrade does not take a whole backlog for lost
    for key, names in unnamed:
        for body in broker.client.hmget(key, names) if names else ():
            if isinstance(body, bytes):
                held.add(Message.decode(body).message_id)
    return wanted & held


def requeue_dead_workers(broker: DramatiqRedisBroker, queue_name: str) -> None:
    """Dramatiq's maintenance for ``queue_name`` and its delay queue, run now: the
    messages fetched by workers silent for the broker's heartbeat timeout go back
    on their lists (at the end), as Dramatiq's own random maintenance would do.

    It calls ``dispatch.lua`` as :class:`~dramatiq.brokers.redis.RedisBroker` does,
    with maintenance on and the read-only ``qsize`` command, at the current time
    (the workers' heartbeats are wall-clock times, whatever ``now`` a sweep is given).

    Raises: redis-py's connection errors.
    """
    for name in (queue_name, dq_name(queue_name)):
        broker.scripts["dispatch"](
            keys=[broker.namespace],
            args=[
                "qsize",
                current_millis(),
                name,
                broker.broker_id,
                broker.heartbeat_timeout,
                broker.dead_message_ttl,
                "1",  # do_maintenance
                broker._max_unpack_size(),
            ],
        )


def leave_heartbeats(broker: DramatiqRedisBroker) -> bool:
    """Remove this broker's id from ``<ns>:__heartbeats__``, unless it still holds
    unacknowledged messages of a declared queue (then it stays, goes stale, and
    maintenance hands them on). Call it once the worker has stopped consuming.
    Whether it was removed.

    Raises: redis-py's connection errors.
    """
    queues = sorted(broker.get_declared_queues() | broker.get_declared_delay_queues())
    keys = [f"{broker.namespace}:__heartbeats__", *(acks_key(broker, q) for q in queues)]
    return bool(broker.client.eval(_LEAVE, len(keys), *keys, broker.broker_id))
