"""The dead-letter queue: the messages Dramatiq gave up on, listed and requeued.

On Redis, in Dramatiq 2.x's layout (``dramatiq/brokers/redis/dispatch.lua``,
whose ``nack`` command moves a message there)::

    <ns>:<queue>.XQ        zset: dead entries, scored by when they died (ms)
    <ns>:<queue>.XQ.msgs   hash: entry -> the message (JSON)

An entry is the message's ``redis_message_id`` option (a key the Redis broker
gives each enqueue), not its Dramatiq ``message_id``; both are listed, and
either names a message to requeue.

Dramatiq's maintenance deletes dead messages older than its
``dead_message_ttl`` (7 days). :func:`requeue` moves one back in a single Lua
script -- out of the dead-letter queue, onto the end of ``<ns>:<queue>`` with its
data in ``<ns>:<queue>.msgs``, as dispatch.lua's ``enqueue`` puts a new message
-- with its retry count reset, so it gets Dramatiq's full retries again. A run
whose message is requeued is claimed as usual: if it ended meanwhile, its
worker skips the delivery with one log line.

RabbitMQ keeps dead messages in the ``<queue>.XQ`` queue; listing or moving
them means consuming them, which this module does not do: there
:class:`~podflow.errors.NotSupported` says so (the RabbitMQ management UI's
"Get messages" and "Move messages" do it).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from ..errors import NotFound, NotSupported
from ..timeutil import from_ms
from .broker import ACTOR_NAME, QUEUE_NAME, broker_errors

__all__ = ["DeadMessage", "DeadMessageNotFound", "list_dead", "requeue"]

#: the most dead messages one listing returns
MAX_LISTED = 500

_REQUEUE = """
-- KEYS: <ns>:<q>.XQ, <ns>:<q>.XQ.msgs, <ns>:<q>, <ns>:<q>.msgs; ARGV: message id, message data
if redis.call("zrem", KEYS[1], ARGV[1]) == 0 then
    return 0
end
redis.call("hdel", KEYS[2], ARGV[1])
redis.call("hset", KEYS[4], ARGV[1], ARGV[2])
redis.call("rpush", KEYS[3], ARGV[1])
return 1
"""


class DeadMessageNotFound(NotFound):
    """No such message in the dead-letter queue (requeued already, or expired)."""

    kind = "dead-letter message"

    def __init__(self, queue: str, ident: str) -> None:
        super().__init__(ident)
        self.queue = queue


@dataclass(frozen=True, slots=True)
class DeadMessage:
    """One dead-lettered message."""

    #: its entry in the dead-letter queue (the Redis broker's ``redis_message_id``)
    id: str
    #: Dramatiq's message id (a run's ``message_id``)
    message_id: str
    queue: str
    actor: str
    #: the run it delivers (``generate_podcast``'s argument); None for another actor's
    run_id: str | None
    #: when it was dead-lettered, and first enqueued
    dead_at: datetime
    enqueued_at: datetime | None
    #: Dramatiq's retries of it so far
    retries: int
    #: the last exception Dramatiq recorded (its Retries middleware keeps the traceback's last line)
    error: str | None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["dead_at"] = self.dead_at.isoformat()
        data["enqueued_at"] = self.enqueued_at.isoformat() if self.enqueued_at else None
        return data


def _redis(broker: Any) -> Any:
    client = getattr(broker, "client", None)
    if client is None:
        raise NotSupported(
            "dead-letter messages can be listed and requeued on Redis only; on RabbitMQ use the management UI"
            " (queue podcast.XQ: Get messages, Move messages)"
        )
    return client


def _keys(broker: Any, queue: str) -> tuple[str, str, str, str]:
    base = f"{broker.namespace}:{queue}"
    return f"{base}.XQ", f"{base}.XQ.msgs", base, f"{base}.msgs"


def _parse(entry: str, raw: bytes | str | None, dead_ms: float, queue: str) -> DeadMessage:
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        data = {}
    options = data.get("options") or {}
    args = data.get("args") or []
    actor = str(data.get("actor_name") or "?")
    traceback = str(options.get("traceback") or "").strip()
    return DeadMessage(
        id=entry,
        message_id=str(data.get("message_id") or entry),
        queue=queue,
        actor=actor,
        run_id=str(args[0]) if actor == ACTOR_NAME and args else None,
        dead_at=from_ms(int(dead_ms)),
        enqueued_at=from_ms(int(data["message_timestamp"])) if data.get("message_timestamp") else None,
        retries=int(options.get("retries") or 0),
        error=traceback.splitlines()[-1] if traceback else None,
    )


def list_dead(broker: Any, *, queue: str = QUEUE_NAME, limit: int = 100) -> tuple[list[DeadMessage], int]:
    """The newest ``limit`` dead messages of ``queue`` (most recently dead first), and how many there are.

    Raises:
      NotSupported: not a Redis broker.
      BrokerUnavailable
    """
    client = _redis(broker)
    dead, dead_msgs, _, _ = _keys(broker, queue)
    with broker_errors("dead-letter"):
        total = int(client.zcard(dead))
        entries = client.zrevrange(dead, 0, min(limit, MAX_LISTED) - 1, withscores=True)
        ids = [i.decode() if isinstance(i, bytes) else str(i) for i, _ in entries]
        raws = client.hmget(dead_msgs, ids) if ids else []
    return [_parse(i, raw, score, queue) for i, raw, (_, score) in zip(ids, raws, entries, strict=True)], total


def _entry(broker: Any, client: Any, queue: str, ident: str) -> str:
    """The entry ``ident`` names: an entry itself, or a Dramatiq message id among the listed."""
    if client.zscore(_keys(broker, queue)[0], ident) is not None:
        return ident
    listed, _ = list_dead(broker, queue=queue, limit=MAX_LISTED)
    return next((m.id for m in listed if m.message_id == ident), ident)


def requeue(broker: Any, ident: str, *, queue: str = QUEUE_NAME) -> DeadMessage:
    """Move one dead message (named by its entry or its message id) back to the
    end of ``queue``, its retries reset; what it was.

    Raises:
      DeadMessageNotFound: not (or no longer) in the dead-letter queue.
      NotSupported: not a Redis broker.
      BrokerUnavailable
    """
    client = _redis(broker)
    keys = _keys(broker, queue)
    with broker_errors("dead-letter"):
        entry = _entry(broker, client, queue, ident)
        raw = client.hget(keys[1], entry)
        score = client.zscore(keys[0], entry)
        if raw is None or score is None:
            raise DeadMessageNotFound(queue, ident)
        message = json.loads(raw)
        options = message.setdefault("options", {})
        for spent in ("retries", "traceback", "eta"):
            options.pop(spent, None)
        message["queue_name"] = queue  # a message that died in the delay queue goes back to the queue itself
        moved = client.register_script(_REQUEUE)(keys=list(keys), args=[entry, json.dumps(message)])
    if not moved:  # another requeue won
        raise DeadMessageNotFound(queue, ident)
    return _parse(entry, raw, score, queue)
