"""Run records, the outbox marks, and the transition table rendered for SQLite.

Every status change is one ``UPDATE ... WHERE <precondition> RETURNING``
(:mod:`podflow.store.sql`), which SQLite executes atomically under its write
lock; the counters change in the same statement, by trigger.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from ...errors import NamesMissing
from ...models import Progress, Run, RunRef, Source
from ...states import RunStatus
from ...timeutil import from_ms, to_ms
from .. import expressions as e
from .. import listing, sql
from .. import transitions as t
from ..base import DEFAULT_BATCH, Claimed, RunFilter, name_key
from ..shared import WriteStore
from .connection import SqliteConnection, guarded, writes
from .rows import RUN_COLUMNS, dt, placeholders, run_of, run_values

__all__ = ["SqliteRuns"]

#: what a client was told was accepted survives a power cut (see .connection)
_DURABLE = frozenset({t.CANCEL.name})
#: run ids per ``get_runs`` statement, well within SQLite's limit on host parameters
_IDS_PER_STATEMENT = 900
_INSERTED = [*(c.strip() for c in RUN_COLUMNS.split(",")), "name_key"]
_INSERT = f"INSERT INTO runs ({', '.join(_INSERTED)}) VALUES ({placeholders(len(_INSERTED))})"
#: the run inserted only if what it names exists: one statement, no read before it
_CHECKED_INSERT = (
    f"INSERT INTO runs ({', '.join(_INSERTED)}) SELECT {', '.join(f':{c}' for c in _INSERTED)}"
    f" WHERE {sql.names_exist_sql(sql.SQLITE)}"
)
#: ended runs deleted per write: a deleted row touches every index of ``runs`` (about
#: 2 ms a run at 1M runs on a busy 2-core machine), and other writers (heartbeats,
#: finishes) wait for the one writer SQLite admits
_DELETES_PER_WRITE = 100


def _source_of(obj: Mapping[str, Any]) -> Source:
    return Source(**{**obj, "created_at": from_ms(obj["created_at"])})



class SqliteRuns(SqliteConnection, WriteStore):
    # -- the transition table --------------------------------------------------------
    @guarded
    def _write_one(self, write: t.Write, args: Mapping[str, Any]) -> Any:
        statement = sql.update_sql(write, sql.SQLITE, RUN_COLUMNS)
        with self.writing(durable=write.name in _DURABLE):
            row = self._conn().execute(statement, sql.encode(write, sql.SQLITE, args)).fetchone()
        return None if row is None else sql.returned(write, row, run_of, sql.SQLITE)

    @guarded
    def _write_many(self, write: t.Write, args: Mapping[str, Any], limit: int) -> list[Any]:
        statement = sql.update_sql(write, sql.SQLITE, RUN_COLUMNS)
        with self.writing():
            rows = self._conn().execute(statement, sql.encode(write, sql.SQLITE, args, limit)).fetchall()
        return [sql.returned(write, row, run_of, sql.SQLITE) for row in rows]

    @guarded
    def claim_execution(self, run_id: str, *, now: datetime) -> Claimed | None:
        args = sql.encode(t.CLAIM_RUN, sql.SQLITE, self._claim_args(run_id, now))
        with self.writing():
            row = self._conn().execute(sql.claim_sql(sql.SQLITE, RUN_COLUMNS), args).fetchone()
        return None if row is None else sql.claimed(row, run_of, _source_of)

    @guarded
    def _lease_rows(self, run_ids: list[str]) -> dict[str, Mapping[str, Any]]:
        rows = self._conn().execute(
            f"SELECT run_id, status, attempt, released FROM runs WHERE run_id IN ({placeholders(len(run_ids))})",
            run_ids,
        )
        return {row["run_id"]: row for row in rows}

    @guarded
    @writes()
    def _beat(
        self, leases: Mapping[str, int], progress: Mapping[str, Progress], *, now: datetime
    ) -> tuple[set[str], None]:
        params = sql.beat_params(leases, progress, sql.SQLITE, now=now)
        rows = self._conn().execute(sql.beat_sql(sql.SQLITE), params).fetchall()
        return {row["run_id"] for row in rows}, None

    # -- run records ------------------------------------------------------------------
    @guarded
    @writes(durable=True)
    def create_run(self, run: Run, *, check_names: bool = False) -> tuple[Run, bool]:
        conn = self._conn()
        values = (*run_values(run), name_key(run.episode_name))
        try:
            if not check_names:
                conn.execute(_INSERT, values)
            elif not conn.execute(_CHECKED_INSERT, {**dict(zip(_INSERTED, values, strict=True)),
                                                    **sql.names_exist_params(run, sql.SQLITE)}).rowcount:
                raise NamesMissing("a profile or source the run names does not exist")
        except sqlite3.IntegrityError:
            if run.idempotency_key is None:
                raise
            existing = self.get_run_by_idempotency_key(run.idempotency_key)
            if existing is None:  # the key's holder was deleted in between; try once more
                return self.create_run(run, check_names=check_names)
            return existing, False
        return run, True

    @guarded
    def get_run(self, run_id: str) -> Run | None:
        row = self._conn().execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else run_of(row)

    @guarded
    def get_runs(self, run_ids: Sequence[str]) -> dict[str, Run]:
        found: dict[str, Run] = {}
        ids = list(dict.fromkeys(run_ids))
        for start in range(0, len(ids), _IDS_PER_STATEMENT):
            chunk = ids[start : start + _IDS_PER_STATEMENT]
            query = f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id IN ({placeholders(len(chunk))})"
            found.update((run.run_id, run) for run in map(run_of, self._conn().execute(query, chunk)))
        return found

    @guarded
    def get_run_by_message_id(self, message_id: str) -> Run | None:
        row = (
            self._conn()
            .execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE message_id = ? LIMIT 1", (message_id,))
            .fetchone()
        )
        return None if row is None else run_of(row)

    @guarded
    def get_run_by_idempotency_key(self, key: str) -> Run | None:
        row = self._conn().execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE idempotency_key = ?", (key,)).fetchone()
        return None if row is None else run_of(row)

    @guarded
    def _runs_page(self, where: RunFilter, after: tuple[datetime, str] | None, limit: int) -> list[Run]:
        conn = self._conn()

        def select(query: str, params: dict[str, Any], walk: bool = False) -> list[Run]:
            return [run_of(row) for row in conn.execute(query, params).fetchall()]

        if where.search_key is not None:

            def count(query: str, params: dict[str, Any]) -> int:
                return int(conn.execute(query, params).fetchone()["n"])

            return listing.search_page(where, after, sql.SQLITE, RUN_COLUMNS, limit, count=count, select=select)
        return select(
            listing.listing_sql(where, after, sql.SQLITE, RUN_COLUMNS),
            listing.listing_params(where, after, sql.SQLITE, limit),
        )

    @guarded
    @writes(durable=True)
    def delete_run(self, run_id: str) -> bool:
        cur = self._conn().execute("DELETE FROM runs WHERE run_id = ? AND status != 'STARTED'", (run_id,))
        return cur.rowcount == 1

    @guarded
    def list_ended_before(self, *, finished_before: datetime, limit: int = DEFAULT_BATCH) -> list[str]:
        rows = self._conn().execute(
            sql.ended_before_sql(sql.SQLITE), {"before": to_ms(finished_before), "limit": limit}
        )
        return [row["run_id"] for row in rows]

    @guarded
    def delete_ended(self, run_ids: Sequence[str]) -> list[str]:
        deleted: list[str] = []
        for start in range(0, len(run_ids), _DELETES_PER_WRITE):
            chunk = list(run_ids[start : start + _DELETES_PER_WRITE])
            with self.writing():  # one write each: the lock is free for others in between
                rows = self._conn().execute(sql.delete_ended_sql(len(chunk), sql.SQLITE), chunk).fetchall()
            deleted += [row["run_id"] for row in rows]
        return deleted

    @guarded
    def count_by_status(self) -> dict[RunStatus, int]:
        counts = {status: 0 for status in RunStatus}
        for row in self._conn().execute("SELECT status, count(*) AS n FROM runs GROUP BY status"):
            counts[RunStatus(row["status"])] = row["n"]
        return counts

    @guarded
    def oldest_due_pending_at(self, *, now: datetime) -> datetime | None:
        row = (
            self._conn()
            .execute(
                "SELECT min(coalesce(start_at, created_at)) AS t FROM runs WHERE status = 'PENDING'"
                " AND (outbox_at IS NOT NULL OR enqueued_at IS NOT NULL) AND coalesce(start_at, created_at) <= ?",
                (to_ms(now),),
            )
            .fetchone()
        )
        return dt(row["t"])

    # -- dispatch bookkeeping ---------------------------------------------------------
    @guarded
    @writes(durable=True)
    def request_start(
        self, run_id: str, *, message_id: str | None, now: datetime, outbox_at: datetime | None = None
    ) -> Run | None:
        row = (
            self._conn()
            .execute(
                "UPDATE runs SET outbox_at = :outbox_at, updated_at = :now,"
                " message_id = coalesce(message_id, :message_id),"
                " current_message_id = coalesce(message_id, :message_id)"
                " WHERE run_id = :run_id AND status = 'PENDING'"
                " AND outbox_at IS NULL AND enqueued_at IS NULL"
                f" RETURNING {RUN_COLUMNS}",
                {"now": to_ms(now), "outbox_at": to_ms(outbox_at or now), "message_id": message_id, "run_id": run_id},
            )
            .fetchone()
        )
        return None if row is None else run_of(row)

    @guarded
    @writes()
    def mark_enqueued_many(self, sent: Mapping[str, str | None], *, now: datetime) -> int:
        if not sent:
            return 0
        params = {"sent": json.dumps(dict(sent)), "now": to_ms(now)}
        return len(self._conn().execute(sql.enqueued_many_sql(sql.SQLITE), params).fetchall())

    @guarded
    @writes()
    def mark_enqueue_failed(self, run_id: str, *, error: str, now: datetime) -> bool:
        cur = self._conn().execute(
            "UPDATE runs SET enqueue_error = ?, updated_at = ? WHERE run_id = ? AND outbox_at IS NOT NULL",
            (error, to_ms(now), run_id),
        )
        return cur.rowcount == 1

    @guarded
    def _pending_before(self, column: str, cutoff: datetime, limit: int) -> list[RunRef]:
        """PENDING runs whose ``column`` (outbox_at) is before the cutoff, oldest first."""
        assert column == "outbox_at"
        rows = self._conn().execute(
            f"SELECT {', '.join(t.REF_FIELDS)} FROM runs"
            f" WHERE status = 'PENDING' AND {column} < ? ORDER BY {column} LIMIT ?",
            (to_ms(cutoff), limit),
        )
        return [sql.ref_of(row, sql.SQLITE) for row in rows]

    @guarded
    def _page(
        self, where: e.Cond, order: str, args: Mapping[str, Any], after: tuple[datetime, str], limit: int
    ) -> list[RunRef]:
        params = sql.page_params(where, sql.SQLITE, args, after, limit)
        rows = self._conn().execute(sql.page_sql(where, order, sql.SQLITE), params).fetchall()
        return [sql.ref_of(row, sql.SQLITE, waiting_since=from_ms(row["waiting_since"])) for row in rows]
