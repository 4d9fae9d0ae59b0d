"""The workers, as ``celery inspect`` showed them: one entry per ``dramatiq`` command.

:func:`inspect_workers` reads the presence records of :mod:`podflow.worker.presence`
(one per worker process) and groups them by the command they belong to (host
and main pid): a worker is ``processes x threads``, the runs it holds now, the
runs it finished SUCCESS and FAILURE since it started, and when it was last
heard from. A process silent for :data:`~podflow.worker.presence.PRESENCE_TTL_S`
has dropped off. Dramatiq's heartbeat records (:class:`~.snapshot.BrokerClient`)
add what only they carry: the store a worker serves (``store_id``), when the
record has it. Read-only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from ..timeutil import from_ms, to_ms
from ..worker.broker import QUEUE_NAME, broker_errors
from ..worker.presence import PRESENCE_TTL_S, WORKERS_KEY, record_key
from .snapshot import BrokerClient

__all__ = ["WorkerView", "group_workers", "inspect_workers", "read_presence"]


class WorkerView(BaseModel):
    """One worker command (``dramatiq podflow.actors``, ``podflow worker``) and its processes."""

    model_config = ConfigDict(extra="forbid")

    host: str
    #: the command's main process
    pid: int
    #: worker processes heard from now, and how many the command runs (PODFLOW_WORKER_PROCESSES)
    processes: int
    processes_configured: int
    #: worker threads per process
    threads: int
    #: the runs it executes now
    running: list[str]
    #: runs it finished SUCCESS / FAILURE since it started (the processes alive now)
    done: int
    failed: int
    started_at: datetime | None
    #: seconds since its most recent process wrote its record
    last_seen_s: float
    #: the pids of its processes
    pids: list[int]
    #: the store it serves, when its heartbeat records say (None: not known)
    store_id: str | None = None


def read_presence(broker: Any, *, now: datetime, ttl_s: float = PRESENCE_TTL_S) -> list[dict[str, Any]]:
    """The presence records written within ``ttl_s`` of ``now`` (``seen_ms`` added); [] without Redis.

    Raises:
      BrokerUnavailable
    """
    client = getattr(broker, "client", None)
    if client is None:
        return []
    since = to_ms(now) - int(ttl_s * 1000)
    with broker_errors("presence"):
        entries = client.zrangebyscore(WORKERS_KEY, since, "+inf", withscores=True)
        pipe = client.pipeline(transaction=False)
        for worker_id, _ in entries:
            pipe.hgetall(record_key(worker_id.decode() if isinstance(worker_id, bytes) else worker_id))
        found = pipe.execute() if entries else []
    records = []
    for (_, seen_ms), raw in zip(entries, found, strict=True):
        if raw:  # expired between the two reads: gone
            fields = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
                      for k, v in raw.items()}  # fmt: skip
            records.append({**fields, "seen_ms": int(seen_ms)})
    return records


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def group_workers(
    records: Iterable[dict[str, Any]],
    *,
    now: datetime,
    heartbeats: Sequence[BrokerClient] = (),
    queue: str | None = None,
) -> list[WorkerView]:
    """Presence records grouped into workers, most recently seen first. With
    ``queue`` (PODFLOW_QUEUE), a process whose broker heartbeat names another queue
    is left out: another deployment sharing the Redis on purpose, not one of ours."""
    store_ids = {(c.host, c.pid): getattr(c, "store_id", None) for c in heartbeats}
    queues = {(c.host, c.pid): c.queue or QUEUE_NAME for c in heartbeats}
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for record in records:
        host = str(record.get("host", "?"))
        if queue is not None and queues.get((host, _int(record.get("pid"))), queue) != queue:
            continue
        key = (host, _int(record.get("main_pid"), _int(record.get("pid"))))
        groups.setdefault(key, []).append(record)
    now_ms = to_ms(now)
    views = []
    for (host, main_pid), procs in groups.items():
        pids = sorted(_int(p.get("pid")) for p in procs)
        started = [_int(p.get("started_at")) for p in procs if _int(p.get("started_at"))]
        running = sorted({run for p in procs for run in json.loads(p.get("running") or "[]")})
        stores = {str(found) for pid in pids if (found := store_ids.get((host, pid)))}
        views.append(
            WorkerView(
                host=host,
                pid=main_pid,
                processes=len(procs),
                processes_configured=max(_int(p.get("processes"), 1) for p in procs),
                threads=max(_int(p.get("threads")) for p in procs),
                running=running,
                done=sum(_int(p.get("done")) for p in procs),
                failed=sum(_int(p.get("failed")) for p in procs),
                started_at=from_ms(min(started)) if started else None,
                last_seen_s=max(0.0, (now_ms - max(p["seen_ms"] for p in procs)) / 1000),
                pids=pids,
                store_id=",".join(sorted(stores)) if stores else None,
            )
        )
    return sorted(views, key=lambda v: (v.last_seen_s, v.host, v.pid))


def inspect_workers(
    broker: Any, *, now: datetime, heartbeats: Sequence[BrokerClient] = (), queue: str | None = None
) -> list[WorkerView] | None:
    """The workers now (of ``queue``'s deployment, see :func:`group_workers`); None
    where no presence records exist (RabbitMQ).

    Raises: BrokerUnavailable.
    """
    if getattr(broker, "client", None) is None:
        return None
    return group_workers(read_presence(broker, now=now), now=now, heartbeats=heartbeats, queue=queue)

