"""Run records, the outbox marks, and the transition table rendered for PostgreSQL.

Every status change is ONE ``UPDATE ... WHERE <precondition> RETURNING``
(:mod:`podflow.store.sql`); the history append is in that statement and the
counters in its triggers, so all three commit together or not at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import psycopg

from ...errors import NamesMissing, StoreError
from ...models import Progress, Run, RunRef, Source
from ...states import RunStatus
from .. import expressions as e
from .. import listing, sql
from .. import transitions as t
from ..base import DEFAULT_BATCH, Claimed, RunFilter, name_key
from ..shared import WriteStore
from .connection import PostgresConnection, guarded
from .rows import RUN_COLUMNS, run_of, run_values

__all__ = ["LIST_OUTBOX", "WALK", "PostgresRuns"]

_REF_COLUMNS = ", ".join(t.REF_FIELDS)
_COLUMNS = [c.strip() for c in RUN_COLUMNS.split(",")]
_INSERT = f"INSERT INTO runs ({RUN_COLUMNS}, name_key) VALUES ({', '.join(f'%({c})s' for c in _COLUMNS)}, %(name_key)s)"
#: the columns that are not text (a SELECT list, unlike VALUES, does not take the column's type)
_TYPES = {
    **dict.fromkeys(("attempt", "webhook_attempts", "attempts_counted"), "integer"),
    "released": "boolean",
    **dict.fromkeys(("source_ids", "progress", "error", "result", "history", "webhook"), "jsonb"),
    **dict.fromkeys(
        (
            "created_at",
            "updated_at",
            "started_at",
            "finished_at",
            "heartbeat_at",
            "outbox_at",
            "enqueued_at",
            "webhook_due_at",
            "start_at",
        ),
        "timestamptz",
    ),
}
#: the run inserted only if what it names exists: one statement, no read before it
_CHECKED_INSERT = (
    f"INSERT INTO runs ({RUN_COLUMNS}, name_key)"
    f" SELECT {', '.join(f'%({c})s::' + _TYPES.get(c, 'text') for c in _COLUMNS)}, %(name_key)s::text"
    f" WHERE {sql.names_exist_sql(sql.POSTGRES)} RETURNING 1"
)
#: a search leg too common to sort (podflow.store.listing) is read in the listing's
#: order: the planner cannot estimate the range it is given as an expression
WALK = "SET LOCAL enable_sort = off"
#: the sweep's read of the outbox (served by its partial index)
LIST_OUTBOX = (
    f"SELECT {_REF_COLUMNS} FROM runs WHERE status = 'PENDING' AND outbox_at < %(cutoff)s"
    " ORDER BY outbox_at LIMIT %(limit)s"
)


class PostgresRuns(PostgresConnection, WriteStore):
    # -- the transition table --------------------------------------------------------
    @guarded
    def _write_one(self, write: t.Write, args: Mapping[str, Any]) -> Any:
        row = self._one(sql.update_sql(write, sql.POSTGRES, RUN_COLUMNS), sql.encode(write, sql.POSTGRES, args))
        return None if row is None else sql.returned(write, row, run_of, sql.POSTGRES)

    @guarded
    def _write_many(self, write: t.Write, args: Mapping[str, Any], limit: int) -> list[Any]:
        statement = sql.update_sql(write, sql.POSTGRES, RUN_COLUMNS)
        rows = self._all(statement, sql.encode(write, sql.POSTGRES, args, limit))
        return [sql.returned(write, row, run_of, sql.POSTGRES) for row in rows]

    @guarded
    def claim_execution(self, run_id: str, *, now: datetime) -> Claimed | None:
        args = sql.encode(t.CLAIM_RUN, sql.POSTGRES, self._claim_args(run_id, now))
        row = self._one(sql.claim_sql(sql.POSTGRES, RUN_COLUMNS), args)
        return None if row is None else sql.claimed(row, run_of, Source.model_validate)

    @guarded
    def _lease_rows(self, run_ids: list[str]) -> dict[str, Mapping[str, Any]]:
        rows = self._all("SELECT run_id, status, attempt, released FROM runs WHERE run_id = ANY(%s)", (run_ids,))
        return {row["run_id"]: row for row in rows}

    @guarded
    def _beat(
        self, leases: Mapping[str, int], progress: Mapping[str, Progress], *, now: datetime
    ) -> tuple[set[str], None]:
        rows = self._all(sql.beat_sql(sql.POSTGRES), sql.beat_params(leases, progress, sql.POSTGRES, now=now))
        return {row["run_id"] for row in rows}, None

    # -- run records ------------------------------------------------------------------
    @guarded
    def create_run(self, run: Run, *, check_names: bool = False) -> tuple[Run, bool]:
        values = {**run_values(run), "name_key": name_key(run.episode_name)}
        for _ in range(8):
            try:
                if not check_names:
                    self._one(_INSERT, values)
                elif self._one(_CHECKED_INSERT, {**values, **sql.names_exist_params(run, sql.POSTGRES)}) is None:
                    raise NamesMissing("a profile or source the run names does not exist")
                return run, True
            except psycopg.errors.UniqueViolation:
                if run.idempotency_key is None:
                    raise
            existing = self.get_run_by_idempotency_key(run.idempotency_key)
            if existing is not None:  # else the key's holder was deleted in between: try again
                return existing, False
        raise StoreError(f"could not create run {run.run_id}: idempotency key keeps changing hands")

    @guarded
    def get_run(self, run_id: str) -> Run | None:
        row = self._one(f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = %s", (run_id,))
        return None if row is None else run_of(row)

    @guarded
    def get_runs(self, run_ids: Sequence[str]) -> dict[str, Run]:
        rows = self._all(f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ANY(%s)", (list(run_ids),))
        return {run.run_id: run for run in map(run_of, rows)}

    @guarded
    def get_run_by_message_id(self, message_id: str) -> Run | None:
        row = self._one(f"SELECT {RUN_COLUMNS} FROM runs WHERE message_id = %s LIMIT 1", (message_id,))
        return None if row is None else run_of(row)

    @guarded
    def get_run_by_idempotency_key(self, key: str) -> Run | None:
        row = self._one(f"SELECT {RUN_COLUMNS} FROM runs WHERE idempotency_key = %s", (key,))
        return None if row is None else run_of(row)

    @guarded
    def _runs_page(self, where: RunFilter, after: tuple[datetime, str] | None, limit: int) -> list[Run]:
        def select(query: str, params: dict[str, Any], walk: bool = False) -> list[Run]:
            if not walk:
                return [run_of(row) for row in self._all(query, params)]
            with self._conn() as conn, conn.transaction():
                conn.execute(WALK)
                return [run_of(row) for row in conn.execute(query, params).fetchall()]

        if where.search_key is not None:

            def count(query: str, params: dict[str, Any]) -> int:
                return int(self._one(query, params)["n"])

            return listing.search_page(where, after, sql.POSTGRES, RUN_COLUMNS, limit, count=count, select=select)
        return select(
            listing.listing_sql(where, after, sql.POSTGRES, RUN_COLUMNS),
            listing.listing_params(where, after, sql.POSTGRES, limit),
        )

    @guarded
    def delete_run(self, run_id: str) -> bool:
        deleted = self._one("DELETE FROM runs WHERE run_id = %s AND status != 'STARTED' RETURNING 1", (run_id,))
        return deleted is not None

    @guarded
    def list_ended_before(self, *, finished_before: datetime, limit: int = DEFAULT_BATCH) -> list[str]:
        rows = self._all(sql.ended_before_sql(sql.POSTGRES), {"before": finished_before, "limit": limit})
        return [row["run_id"] for row in rows]

    @guarded
    def delete_ended(self, run_ids: Sequence[str]) -> list[str]:
        if not run_ids:
            return []
        rows = self._all(sql.delete_ended_sql(len(run_ids), sql.POSTGRES), list(run_ids))
        return [row["run_id"] for row in rows]

    @guarded
    def count_by_status(self) -> dict[RunStatus, int]:
        counts = {status: 0 for status in RunStatus}
        for row in self._all("SELECT status, count(*) AS n FROM runs GROUP BY status"):
            counts[RunStatus(row["status"])] = row["n"]
        return counts

    @guarded
    def oldest_due_pending_at(self, *, now: datetime) -> datetime | None:
        row = self._one(
            "SELECT min(coalesce(start_at, created_at)) AS t FROM runs WHERE status = 'PENDING'"
            " AND (outbox_at IS NOT NULL OR enqueued_at IS NOT NULL) AND coalesce(start_at, created_at) <= %(now)s",
            {"now": now},
        )
        value: datetime | None = row["t"]
        return value

    # -- dispatch bookkeeping ---------------------------------------------------------
    @guarded
    def request_start(
        self, run_id: str, *, message_id: str | None, now: datetime, outbox_at: datetime | None = None
    ) -> Run | None:
        row = self._one(
            "UPDATE runs SET outbox_at = %(outbox_at)s, updated_at = %(now)s,"
            " message_id = coalesce(message_id, %(message_id)s),"
            " current_message_id = coalesce(message_id, %(message_id)s)"
            " WHERE run_id = %(run_id)s AND status = 'PENDING' AND outbox_at IS NULL AND enqueued_at IS NULL"
            f" RETURNING {RUN_COLUMNS}",
            {"now": now, "outbox_at": outbox_at or now, "message_id": message_id, "run_id": run_id},
        )
        return None if row is None else run_of(row)

    @guarded
    def mark_enqueued_many(self, sent: Mapping[str, str | None], *, now: datetime) -> int:
        if not sent:
            return 0
        params = {"sent": sql.POSTGRES.json_param(dict(sent)), "now": now}
        return len(self._all(sql.enqueued_many_sql(sql.POSTGRES), params))

    @guarded
    def mark_enqueue_failed(self, run_id: str, *, error: str, now: datetime) -> bool:
        row = self._one(
            "UPDATE runs SET enqueue_error = %s, updated_at = %s"
            " WHERE run_id = %s AND outbox_at IS NOT NULL RETURNING 1",
            (error, now, run_id),
        )
        return row is not None

    @guarded
    def _pending_before(self, column: str, cutoff: datetime, limit: int) -> list[RunRef]:
        query = {"outbox_at": LIST_OUTBOX}[column]
        return [sql.ref_of(row, sql.POSTGRES) for row in self._all(query, {"cutoff": cutoff, "limit": limit})]

    @guarded
    def _page(
        self, where: e.Cond, order: str, args: Mapping[str, Any], after: tuple[datetime, str], limit: int
    ) -> list[RunRef]:
        params = sql.page_params(where, sql.POSTGRES, args, after, limit)
        return [
            sql.ref_of(row, sql.POSTGRES, waiting_since=row["waiting_since"])
            for row in self._all(sql.page_sql(where, order, sql.POSTGRES), params)
        ]
