"""The store's monotonic counters: their names, the duration buckets, and a typed view.

Both backends keep the counters as ``name -> integer`` (the ``stats`` table or
collection, see :mod:`podflow.store.base`); the names are made here and only
here, and :meth:`StoreStats.parse` reads them back. SQLite maintains the run
counters with triggers written from :data:`DURATION_BUCKETS_S`; MongoDB adds
:func:`finished_increments` after each transition it writes.

What the workers count themselves (checkpoints reused or computed, provider
calls by outcome) waits in each process's :class:`CounterBuffer`, which its
heartbeat thread adds to the store (``Store.add_counts``) every heartbeat
interval: the API's ``/metrics`` then serves the whole cluster's totals, kept
across restarts, with no scrape of the workers. A SIGKILLed process loses at
most its last interval's counts.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from ..states import TERMINAL, RunStatus
from ..timeutil import from_ms

__all__ = [
    "CHECKPOINT_OUTCOMES",
    "CREATED",
    "PROVIDER_OUTCOMES",
    "DURATION_BUCKETS_S",
    "SWEEP_COUNTS",
    "SWEEP_LAST_AT",
    "SWEEP_RULES",
    "SWEEPS",
    "WEBHOOK_OUTCOMES",
    "CounterBuffer",
    "DurationStats",
    "MinuteCount",
    "StoreStats",
    "bucket_label",
    "checkpoint_counter",
    "finished_increments",
    "provider_call_counter",
    "sweep_increments",
    "webhook_counter",
]

#: upper bounds, in seconds, of the run-duration histogram's buckets (then +Inf).
#: SQLite's trigger is written from these: changing them needs a migration
#: that recreates ``runs_stats_finished`` (stored counts keep their old buckets).
DURATION_BUCKETS_S: tuple[int, ...] = (1, 5, 10, 30, 60, 120, 300, 600, 900, 1200, 1800, 2700, 3600, 7200)

#: counter names (see podflow.store.base, ``stats``)
CREATED = "created"
SWEEPS = "sweeps"
SWEEP_LAST_AT = "sweep_last_at"
#: the sweep's rules (podflow.sweep), then everything a sweep report counts
SWEEP_RULES = (
    "time_limit", "worker_lost", "redispatched", "enqueued", "requeued", "expired", "checkpoints", "deleted"
)  # fmt: skip
SWEEP_COUNTS = (*SWEEP_RULES, "send_errors")
#: what a stage result can be, and what a provider call can end with
CHECKPOINT_OUTCOMES = ("computed", "reused")
PROVIDER_OUTCOMES = ("ok", "429", "5xx", "4xx", "timeout", "connection", "cancelled")
#: what a webhook delivery attempt can end with: a 2xx, a failure retried later, the last failure
WEBHOOK_OUTCOMES = ("delivered", "retried", "expired")


def finished(status: str) -> str:
    return f"finished:{status}"


def failed(error_type: str) -> str:
    return f"failed:{error_type}"


def duration_count(status: str) -> str:
    return f"duration_count:{status}"


def duration_ms_sum(status: str) -> str:
    return f"duration_ms_sum:{status}"


def duration_bucket(status: str, label: str) -> str:
    return f"duration_le:{status}:{label}"


def swept(rule: str) -> str:
    return f"swept:{rule}"


def checkpoint_counter(stage: str, outcome: str) -> str:
    """``checkpoints:<stage>:<computed|reused>``: stage results, by how they were had."""
    return f"checkpoints:{stage}:{outcome}"


def webhook_counter(outcome: str) -> str:
    """``webhooks:<delivered|retried|expired>``: webhook delivery attempts, by how they ended."""
    return f"webhooks:{outcome}"


def provider_call_counter(endpoint: str, outcome: str) -> str:
    """``provider_calls:<llm|tts>:<outcome>``: requests sent to a provider, by how they ended."""
    return f"provider_calls:{endpoint}:{outcome}"


def _pairs(counters: Mapping[str, int], prefix: str) -> dict[tuple[str, str], int]:
    found = {}
    for name, value in counters.items():
        if name.startswith(prefix):
            first, sep, second = name.removeprefix(prefix).partition(":")
            if sep:
                found[(first, second)] = int(value)
    return dict(sorted(found.items()))


def bucket_label(duration_ms: int) -> str:
    """The bucket a duration falls in: its upper bound in seconds, or ``inf``."""
    for bound in DURATION_BUCKETS_S:
        if duration_ms <= bound * 1000:
            return str(bound)
    return "inf"


def finished_increments(
    status: RunStatus | str, *, started_at: datetime | None, finished_at: datetime, error_type: str | None
) -> dict[str, int]:
    """What one run reaching the terminal ``status`` adds to the counters
    (the MongoDB store's ``$inc``; SQLite's trigger computes the same)."""
    status = str(status)
    incs = {finished(status): 1}
    if status == RunStatus.FAILURE:
        incs[failed(error_type or "unknown")] = 1
    if started_at is not None:
        duration_ms = max(0, round((finished_at - started_at).total_seconds() * 1000))
        incs[duration_count(status)] = 1
        incs[duration_ms_sum(status)] = duration_ms
        incs[duration_bucket(status, bucket_label(duration_ms))] = 1
    return incs


def sweep_increments(counts: Mapping[str, int]) -> dict[str, int]:
    """What one recorded sweep adds to the counters (unknown keys are ignored)."""
    return {SWEEPS: 1, **{swept(name): int(counts.get(name, 0)) for name in SWEEP_COUNTS}}


@dataclass(frozen=True, slots=True)
class DurationStats:
    """The duration histogram of the runs that ended in one status after starting."""

    count: int = 0
    sum_s: float = 0.0
    #: cumulative counts: (upper bound in seconds, runs that took at most that); the last bound is inf
    buckets: list[tuple[float, int]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class StoreStats:
    """The counters, typed. They only grow: deleting runs does not lower them."""

    created: int = 0
    #: runs that reached each terminal status
    finished: dict[RunStatus, int] = field(default_factory=dict)
    #: FAILURE runs by ``error.type``
    failed: dict[str, int] = field(default_factory=dict)
    #: the current attempt's duration (``finished_at - started_at``), by terminal status
    durations: dict[RunStatus, DurationStats] = field(default_factory=dict)
    sweeps: int = 0
    #: runs each sweep rule touched (and ``send_errors``), summed over every sweep
    swept: dict[str, int] = field(default_factory=dict)
    last_sweep_at: datetime | None = None
    #: stage results by (stage, ``computed``/``reused``), counted by the workers
    checkpoints: dict[tuple[str, str], int] = field(default_factory=dict)
    #: provider requests by (``llm``/``tts``, outcome), counted by the workers
    provider_calls: dict[tuple[str, str], int] = field(default_factory=dict)
    #: webhook delivery attempts by outcome (``WEBHOOK_OUTCOMES``), counted by the deliverer
    webhooks: dict[str, int] = field(default_factory=dict)

    @classmethod
    def parse(cls, counters: Mapping[str, int]) -> StoreStats:
        """The typed view of the raw ``name -> value`` counters."""
        failed_by_type = {
            name.removeprefix("failed:"): int(value) for name, value in counters.items() if name.startswith("failed:")
        }
        durations = {}
        for status in sorted(TERMINAL):
            running = 0
            buckets: list[tuple[float, int]] = []
            for label in [*map(str, DURATION_BUCKETS_S), "inf"]:
                running += int(counters.get(duration_bucket(status, label), 0))
                buckets.append((float(label), running))
            durations[status] = DurationStats(
                count=int(counters.get(duration_count(status), 0)),
                sum_s=int(counters.get(duration_ms_sum(status), 0)) / 1000,
                buckets=buckets,
            )
        last = counters.get(SWEEP_LAST_AT)
        return cls(
            created=int(counters.get(CREATED, 0)),
            finished={status: int(counters.get(finished(status), 0)) for status in sorted(TERMINAL)},
            failed=dict(sorted(failed_by_type.items())),
            durations=durations,
            sweeps=int(counters.get(SWEEPS, 0)),
            swept={name: int(counters.get(swept(name), 0)) for name in SWEEP_COUNTS},
            last_sweep_at=None if last is None else from_ms(int(last)),
            checkpoints=_pairs(counters, "checkpoints:"),
            provider_calls=_pairs(counters, "provider_calls:"),
            webhooks={outcome: int(counters.get(webhook_counter(outcome), 0)) for outcome in WEBHOOK_OUTCOMES},
        )


class CounterBuffer:
    """Increments counted in one process, until they are added to the store. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: Counter[str] = Counter()

    def add(self, name: str, count: int = 1) -> None:
        with self._lock:
            self._pending[name] += count

    def take(self) -> dict[str, int]:
        """Everything counted since the last take (the caller adds it to the store)."""
        with self._lock:
            pending, self._pending = dict(self._pending), Counter()
        return pending

    def put_back(self, counts: Mapping[str, int]) -> None:
        """Counts a store write could not take: kept for the next flush."""
        with self._lock:
            self._pending.update(counts)


@dataclass(frozen=True, slots=True)
class MinuteCount:
    """Runs that reached ``status`` during the UTC minute starting at ``minute``."""

    minute: datetime
    status: RunStatus
    count: int
