"""Counters, throughput and leases on SQLite (the counters' triggers are in .migrations)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from ...states import RunStatus
from ...timeutil import from_ms, to_ms
from ..counters import SWEEP_LAST_AT, MinuteCount, StoreStats, sweep_increments
from .connection import SqliteConnection, guarded, writes

__all__ = ["FINISHED_PER_MINUTE", "SqliteTelemetry"]

#: runs finished since a time, per minute and status (a range scan of the runs_finished index)
FINISHED_PER_MINUTE = (
    "SELECT finished_at / 60000 AS minute, status, count(*) AS n FROM runs"
    " WHERE finished_at >= ? GROUP BY minute, status ORDER BY minute, status"
)


class SqliteTelemetry(SqliteConnection):
    @guarded
    def stats(self) -> StoreStats:
        rows = self._conn().execute("SELECT name, value FROM stats").fetchall()
        return StoreStats.parse({row["name"]: row["value"] for row in rows})

    @guarded
    @writes()
    def record_sweep(self, counts: Mapping[str, int], *, now: datetime) -> None:
        values = [*sweep_increments(counts).items(), (SWEEP_LAST_AT, to_ms(now))]
        self._conn().execute(
            f"INSERT INTO stats (name, value) VALUES {', '.join(['(?, ?)'] * len(values))}"
            " ON CONFLICT (name) DO UPDATE SET value = CASE WHEN name = ?"
            " THEN max(value, excluded.value) ELSE value + excluded.value END",
            [*(v for pair in values for v in pair), SWEEP_LAST_AT],
        )

    @guarded
    @writes()
    def add_counts(self, counts: Mapping[str, int]) -> None:
        values = [(name, int(count)) for name, count in counts.items() if count]
        if not values:
            return
        self._conn().execute(
            f"INSERT INTO stats (name, value) VALUES {', '.join(['(?, ?)'] * len(values))}"
            " ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
            [v for pair in values for v in pair],
        )

    @guarded
    def finished_per_minute(self, *, since: datetime) -> list[MinuteCount]:
        rows = self._conn().execute(FINISHED_PER_MINUTE, (to_ms(since),))
        return [MinuteCount(from_ms(row["minute"] * 60000), RunStatus(row["status"]), row["n"]) for row in rows]

    # -- leases -----------------------------------------------------------------------
    @guarded
    @writes()
    def acquire_lease(self, name: str, *, holder: str, now: datetime, ttl_s: float) -> bool:
        row = (
            self._conn()
            .execute(
                "INSERT INTO leases (name, holder, expires_at) VALUES (:name, :holder, :expires)"
                " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at"
                " WHERE leases.expires_at <= :now OR leases.holder = excluded.holder"
                " RETURNING holder",
                {"name": name, "holder": holder, "now": to_ms(now), "expires": to_ms(now) + int(ttl_s * 1000)},
            )
            .fetchone()
        )
        return row is not None

    @guarded
    @writes()
    def release_lease(self, name: str, *, holder: str) -> None:
        self._conn().execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))
