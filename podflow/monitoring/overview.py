"""What the dashboard shows, in one read: ``GET /api/monitor/overview``.

:func:`overview` gathers runs by status, the oldest PENDING run, runs finished
per minute over the last hour, the sweeps' counters and, in queue mode, the
broker's queues and workers (:mod:`podflow.monitoring.snapshot`). Its cost is bounded:
four store queries (``count_by_status`` is a GROUP BY over the status index,
``finished_per_minute`` a range of the ``finished_at`` index, ``stats`` a small
table) and one broker round trip. A broker that does not answer is reported
in ``broker.error``, not raised: the dashboard still shows the runs.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import dramatiq
from pydantic import BaseModel, ConfigDict

from ..errors import BrokerUnavailable
from ..models import Mode
from ..states import TERMINAL, RunStatus
from ..store.base import Store
from ..worker.bands import band_queues
from ..worker.broker import QUEUE_NAME
from ..worker.presence import PRESENCE_TTL_S
from .snapshot import BrokerClient, QueueCounts, foreign_stores, inspect_broker, inspect_store
from .workers import WorkerView, inspect_workers

__all__ = [
    "WINDOW_MINUTES",
    "BrokerView",
    "FinishedMinute",
    "LastSweep",
    "Overview",
    "finished_per_minute",
    "overview",
]

#: how far back the throughput chart goes
WINDOW_MINUTES = 60


class _View(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BrokerView(_View):
    """The broker as the API process sees it (queue mode)."""

    kind: str | None = None
    #: why it could not be read (the queues and workers are then unknown)
    error: str | None = None
    note: str | None = None
    heartbeat_timeout_s: float | None = None
    #: the queue this deployment's runs go through (PODFLOW_QUEUE)
    queue: str | None = None
    #: other stores whose live workers consume that queue: two deployments sharing it
    foreign_stores: list[str] = []


class FinishedMinute(_View):
    """Runs that ended during the UTC minute starting at ``minute``, by terminal status."""

    minute: datetime
    success: int = 0
    failure: int = 0
    revoked: int = 0


class LastSweep(_View):
    """The sweeps recorded in the store (by the scheduler, ``podflow sweep``, or thread mode)."""

    at: datetime | None
    age_s: float | None
    #: sweeps recorded so far
    sweeps: int
    #: runs each rule touched, summed over every sweep (and ``send_errors``)
    runs: dict[str, int]


class Overview(_View):
    """Everything the dashboard shows besides the runs themselves."""

    at: datetime
    mode: Mode
    #: this deployment's store (each worker record names the store it works for)
    store_id: str
    #: runs in the store now, by status
    totals: dict[RunStatus, int]
    #: age of the oldest PENDING run asked to start; null when there is none
    oldest_pending_age_s: float | None
    #: the last hour, oldest first; the last entry is the current (partial) minute
    finished_per_minute: list[FinishedMinute]
    #: null in thread mode (no broker)
    broker: BrokerView | None
    #: empty in thread mode and while the broker cannot be read
    queues: list[QueueCounts]
    #: null where liveness is unknown: thread mode, RabbitMQ, broker unreadable
    workers: list[BrokerClient] | None
    #: each worker command from the workers' presence records (podflow.monitoring.workers):
    #: processes x threads, runs held, done and failed; null where there are none (thread mode, RabbitMQ)
    worker_details: list[WorkerView] | None = None
    #: a worker silent this long has dropped off ``worker_details``
    workers_drop_off_s: float = PRESENCE_TTL_S
    last_sweep: LastSweep


def finished_per_minute(store: Store, *, now: datetime, minutes: int = WINDOW_MINUTES) -> list[FinishedMinute]:
    """The last ``minutes`` minutes up to ``now``'s, each with its count per terminal status (zeros included)."""
    current = now.replace(second=0, microsecond=0)
    first = current - timedelta(minutes=minutes - 1)
    starts = [first + timedelta(minutes=i) for i in range(minutes)]
    buckets = {start: FinishedMinute(minute=start) for start in starts}
    for counted in store.finished_per_minute(since=first):
        bucket = buckets.get(counted.minute)
        if bucket is not None and counted.status in TERMINAL:
            field = counted.status.lower()
            setattr(bucket, field, getattr(bucket, field) + counted.count)
    return list(buckets.values())


def _broker_part(
    broker: dramatiq.Broker, *, now: datetime, store_id: str, queue: str
) -> tuple[BrokerView, list[QueueCounts], list[BrokerClient] | None, list[WorkerView] | None]:
    try:
        status = inspect_broker(broker, now=now, queues=tuple(band_queues(queue).values()))
        details = inspect_workers(broker, now=now, heartbeats=status.workers or (), queue=queue)
    except BrokerUnavailable as exc:
        return BrokerView(error=str(exc), queue=queue), [], None, None
    view = BrokerView(
        kind=status.kind,
        note=status.note,
        heartbeat_timeout_s=status.heartbeat_timeout_s,
        queue=queue,
        foreign_stores=foreign_stores(status.workers, store_id=store_id, queue=queue),
    )
    return view, status.queues, status.workers, details


def overview(
    store: Store, broker: dramatiq.Broker | None, *, mode: Mode, now: datetime, queue: str = QUEUE_NAME
) -> Overview:
    """The dashboard's overview at ``now``; ``broker`` is None in thread mode,
    ``queue`` is PODFLOW_QUEUE.

    Raises:
      StoreUnavailable: the store cannot be reached (a broker that cannot is
        reported in ``broker.error`` instead).
    """
    runs = inspect_store(store, now=now)
    stats = store.stats()
    broker_view, queues, workers, details = (
        _broker_part(broker, now=now, store_id=store.store_id, queue=queue)
        if broker is not None
        else (None, [], None, None)
    )
    last = stats.last_sweep_at
    return Overview(
        at=now,
        mode=mode,
        store_id=store.store_id,
        totals={RunStatus(name): count for name, count in runs.runs.items()},
        oldest_pending_age_s=runs.oldest_pending_age_s,
        finished_per_minute=finished_per_minute(store, now=now),
        broker=broker_view,
        queues=queues,
        workers=workers,
        worker_details=details,
        last_sweep=LastSweep(
            at=last,
            age_s=None if last is None else max(0.0, (now - last).total_seconds()),
            sweeps=stats.sweeps,
            runs=stats.swept,
        ),
    )
