"""Counters, throughput and leases on PostgreSQL (the counters' triggers are in .migrations)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from ...states import RunStatus
from ...timeutil import from_ms, to_ms
from ..counters import SWEEP_LAST_AT, MinuteCount, StoreStats, sweep_increments
from .connection import PostgresConnection, guarded

__all__ = ["FINISHED_PER_MINUTE", "PostgresTelemetry"]

#: runs finished since a time, per minute and status (a range scan of the runs_finished index)
FINISHED_PER_MINUTE = (
    "SELECT date_trunc('minute', finished_at) AS minute, status, count(*) AS n FROM runs"
    " WHERE finished_at >= %(since)s GROUP BY minute, status ORDER BY minute, status"
)


class PostgresTelemetry(PostgresConnection):
    @guarded
    def stats(self) -> StoreStats:
        return StoreStats.parse({row["name"]: row["value"] for row in self._all("SELECT name, value FROM stats")})

    @guarded
    def record_sweep(self, counts: Mapping[str, int], *, now: datetime) -> None:
        values = [*sweep_increments(counts).items(), (SWEEP_LAST_AT, to_ms(now))]
        self._one(
            f"INSERT INTO stats (name, value) VALUES {', '.join(['(%s, %s)'] * len(values))}"
            " ON CONFLICT (name) DO UPDATE SET value = CASE WHEN stats.name = %s"
            " THEN greatest(stats.value, excluded.value) ELSE stats.value + excluded.value END",
            [*(v for pair in values for v in pair), SWEEP_LAST_AT],
        )

    @guarded
    def add_counts(self, counts: Mapping[str, int]) -> None:
        values = [(name, int(count)) for name, count in sorted(counts.items()) if count]
        if not values:
            return
        self._one(
            f"INSERT INTO stats (name, value) VALUES {', '.join(['(%s, %s)'] * len(values))}"
            " ON CONFLICT (name) DO UPDATE SET value = stats.value + excluded.value",
            [v for pair in values for v in pair],
        )

    @guarded
    def finished_per_minute(self, *, since: datetime) -> list[MinuteCount]:
        rows = self._all(FINISHED_PER_MINUTE, {"since": since})
        return [MinuteCount(from_ms(to_ms(row["minute"])), RunStatus(row["status"]), row["n"]) for row in rows]

    # -- leases -----------------------------------------------------------------------
    @guarded
    def acquire_lease(self, name: str, *, holder: str, now: datetime, ttl_s: float) -> bool:
        row = self._one(
            "INSERT INTO leases (name, holder, expires_at) VALUES (%(name)s, %(holder)s, %(expires)s)"
            " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at"
            " WHERE leases.expires_at <= %(now)s OR leases.holder = excluded.holder RETURNING holder",
            {"name": name, "holder": holder, "now": now, "expires": now + timedelta(seconds=ttl_s)},
        )
        return row is not None

    @guarded
    def release_lease(self, name: str, *, holder: str) -> None:
        self._one("DELETE FROM leases WHERE name = %s AND holder = %s RETURNING 1", (name, holder))
