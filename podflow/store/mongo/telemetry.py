"""Counters, throughput and leases on MongoDB."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import datetime, timedelta

from pymongo.errors import DuplicateKeyError

from ...states import RunStatus
from ...timeutil import from_ms, to_ms
from ..counters import SWEEP_LAST_AT, MinuteCount, StoreStats, sweep_increments
from .connection import MongoConnection, guarded
from .documents import COUNTERS

__all__ = ["MongoTelemetry"]


class MongoTelemetry(MongoConnection):
    @guarded
    def stats(self) -> StoreStats:
        doc = self.stats_collection.find_one(COUNTERS) or {}
        return StoreStats.parse({k: v for k, v in doc.items() if k != "_id"})

    @guarded
    def record_sweep(self, counts: Mapping[str, int], *, now: datetime) -> None:
        self.stats_collection.update_one(
            COUNTERS, {"$inc": sweep_increments(counts), "$max": {SWEEP_LAST_AT: to_ms(now)}}, upsert=True
        )

    @guarded
    def add_counts(self, counts: Mapping[str, int]) -> None:
        increments = {name: int(count) for name, count in counts.items() if count}
        if increments:
            self.stats_collection.update_one(COUNTERS, {"$inc": increments}, upsert=True)

    @guarded
    def finished_per_minute(self, *, since: datetime) -> list[MinuteCount]:
        counts: Counter[tuple[int, str]] = Counter()
        for doc in self.runs.find({"finished_at": {"$gte": since}}, {"_id": 0, "finished_at": 1, "status": 1}):
            counts[(to_ms(doc["finished_at"]) // 60000, doc["status"])] += 1
        return [
            MinuteCount(from_ms(minute * 60000), RunStatus(status), n) for (minute, status), n in sorted(counts.items())
        ]

    # -- leases -----------------------------------------------------------------------
    @guarded
    def acquire_lease(self, name: str, *, holder: str, now: datetime, ttl_s: float) -> bool:
        try:
            self.leases.find_one_and_update(
                {"name": name, "$or": [{"expires_at": {"$lte": now}}, {"holder": holder}]},
                {"$set": {"holder": holder, "expires_at": now + timedelta(seconds=ttl_s)}},
                upsert=True,
            )
        except DuplicateKeyError:  # someone else holds a valid lease
            return False
        return True

    @guarded
    def release_lease(self, name: str, *, holder: str) -> None:
        self.leases.delete_one({"name": name, "holder": holder})
