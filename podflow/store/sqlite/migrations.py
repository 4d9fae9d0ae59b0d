"""The SQLite schema, as forward migrations; its version lives in ``PRAGMA user_version``.

``MIGRATIONS[n]`` takes a file from version n to n + 1. The tables are
documented in :mod:`podflow.store.base`.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Callable

from ..base import name_key, newer_schema
from ..counters import CREATED, DURATION_BUCKETS_S

__all__ = ["MIGRATIONS", "migrate", "read_store_id"]

#: a migration step: a statement, or a function of the connection (a backfill Python computes)
Step = str | Callable[[sqlite3.Connection], None]

_TERMINAL_SQL = "('SUCCESS', 'FAILURE', 'REVOKED')"


def _finished_counts(row: str) -> list[tuple[str, str, str]]:
    """(counter name, increment, condition) for one run ``row`` that reached a
    terminal status, as SQL over its columns: :func:`podflow.store.counters.finished_increments`
    in SQL, for the trigger (``NEW``) and the backfill (a table alias)."""
    duration = f"max(coalesce({row}.finished_at, {row}.updated_at) - {row}.started_at, 0)"
    bucket = " ".join(f"WHEN {duration} <= {bound * 1000} THEN '{bound}'" for bound in DURATION_BUCKETS_S)
    started = f"{row}.started_at IS NOT NULL"
    return [
        (f"'finished:' || {row}.status", "1", "1"),
        (f"'failed:' || coalesce(json_extract({row}.error, '$.type'), 'unknown')", "1", f"{row}.status = 'FAILURE'"),
        (f"'duration_count:' || {row}.status", "1", started),
        (f"'duration_ms_sum:' || {row}.status", duration, started),
        (f"'duration_le:' || {row}.status || ':' || CASE {bucket} ELSE 'inf' END", "1", started),
    ]


#: add the increments of the SELECT (name, value) to the stats table
_ADD_TO_STATS = "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value"


def _stats_migration() -> list[Step]:
    """Schema 2: the ``stats`` counters, counted from the runs already there,
    then kept by triggers in the statement that inserts a run or ends it."""
    per_run = " UNION ALL ".join(
        f"SELECT {name} AS name, {value} AS value FROM runs AS r WHERE r.status IN {_TERMINAL_SQL} AND {cond}"
        for name, value, cond in _finished_counts("r")
    )
    on_finish = " UNION ALL ".join(
        f"SELECT {name} AS name, {value} AS value WHERE {cond}" for name, value, cond in _finished_counts("NEW")
    )
    return [
        "CREATE TABLE stats (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
        f"INSERT INTO stats (name, value) SELECT '{CREATED}', count(*) FROM runs",
        f"INSERT INTO stats (name, value) SELECT name, sum(value) FROM ({per_run}) GROUP BY name",
        f"""CREATE TRIGGER runs_stats_created AFTER INSERT ON runs BEGIN
            INSERT INTO stats (name, value) VALUES ('{CREATED}', 1) {_ADD_TO_STATS};
        END""",
        f"""CREATE TRIGGER runs_stats_finished AFTER UPDATE OF status ON runs
        WHEN NEW.status IN {_TERMINAL_SQL} AND OLD.status NOT IN {_TERMINAL_SQL} BEGIN
            INSERT INTO stats (name, value) SELECT name, value FROM ({on_finish}) WHERE true {_ADD_TO_STATS};
        END""",
    ]


def _backfill_name_keys(conn: sqlite3.Connection) -> None:
    rows = conn.execute("SELECT run_id, episode_name FROM runs").fetchall()
    conn.executemany("UPDATE runs SET name_key = ? WHERE run_id = ?", [(name_key(n), r) for r, n in rows])


MIGRATIONS: list[list[Step]] = [
    [
        """CREATE TABLE runs (
            run_id TEXT PRIMARY KEY,
            status TEXT NOT NULL,
            episode_profile TEXT NOT NULL,
            speaker_profile TEXT NOT NULL,
            episode_name TEXT NOT NULL,
            source_ids TEXT NOT NULL,
            briefing_suffix TEXT,
            mode TEXT NOT NULL,
            attempt INTEGER NOT NULL DEFAULT 0,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            started_at INTEGER,
            finished_at INTEGER,
            heartbeat_at INTEGER,
            released INTEGER NOT NULL DEFAULT 0,
            message_id TEXT,
            outbox_at INTEGER,
            enqueued_at INTEGER,
            enqueue_error TEXT,
            progress TEXT,
            error TEXT,
            result TEXT,
            history TEXT NOT NULL,
            idempotency_key TEXT UNIQUE,
            request_hash TEXT,
            retry_of TEXT
        )""",
        "CREATE INDEX runs_message_id ON runs (message_id) WHERE message_id IS NOT NULL",
        # The sweep's indexes are partial: they hold only the live runs each rule
        # looks at, so finished runs (most of the table) cost them nothing, and a
        # status change touches them only when a run enters or leaves that status.
        "CREATE INDEX runs_started_heartbeat ON runs (status, heartbeat_at) WHERE status = 'STARTED'",
        "CREATE INDEX runs_started_started ON runs (status, started_at) WHERE status = 'STARTED'",
        "CREATE INDEX runs_pending_outbox ON runs (status, outbox_at)"
        " WHERE status = 'PENDING' AND outbox_at IS NOT NULL",
        "CREATE INDEX runs_pending_enqueued ON runs (status, enqueued_at)"
        " WHERE status = 'PENDING' AND enqueued_at IS NOT NULL",
        "CREATE INDEX runs_status_created ON runs (status, created_at, run_id)",
        "CREATE INDEX runs_created ON runs (created_at, run_id)",
        "CREATE INDEX runs_finished ON runs (finished_at) WHERE finished_at IS NOT NULL",
        """CREATE TABLE sources (
            source_id TEXT PRIMARY KEY,
            title TEXT NOT NULL,
            filename TEXT,
            content_type TEXT NOT NULL,
            byte_size INTEGER NOT NULL,
            sha256 TEXT NOT NULL UNIQUE,
            text TEXT NOT NULL,
            created_at INTEGER NOT NULL
        )""",
        "CREATE INDEX sources_created ON sources (created_at, source_id)",
        "CREATE TABLE episode_profiles (name TEXT PRIMARY KEY, doc TEXT NOT NULL, updated_at INTEGER NOT NULL)",
        "CREATE TABLE speaker_profiles (name TEXT PRIMARY KEY, doc TEXT NOT NULL, updated_at INTEGER NOT NULL)",
        "CREATE TABLE seeded (kind TEXT NOT NULL, name TEXT NOT NULL, PRIMARY KEY (kind, name))",
        "CREATE TABLE leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at INTEGER NOT NULL)",
    ],
    _stats_migration(),
    # schema 3: facts about the store itself (key -> value): its store_id (see migrate)
    ["CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID"],
    # schema 4: the listing's filters (podflow.store.base.RunFilter): name search, profiles, retries
    [
        "ALTER TABLE runs ADD COLUMN name_key TEXT",
        _backfill_name_keys,
        "CREATE INDEX runs_name ON runs (name_key, created_at, run_id)",
        "CREATE INDEX runs_episode_profile ON runs (episode_profile, created_at, run_id)",
        "CREATE INDEX runs_speaker_profile ON runs (speaker_profile, created_at, run_id)",
        "CREATE INDEX runs_retry_of ON runs (retry_of) WHERE retry_of IS NOT NULL",
    ],
    # schema 5: the message that carries each run now (the sweep re-sends lost ones
    # under a new id); a live run's is its first until then
    [
        "ALTER TABLE runs ADD COLUMN current_message_id TEXT",
        "UPDATE runs SET current_message_id = message_id WHERE status IN ('PENDING', 'STARTED')",
    ],
    # schema 6: completion webhooks (podflow.webhooks): where each run's event goes, and
    # its delivery, owed by the write that ends the run; the index holds only the due ones
    [
        "ALTER TABLE runs ADD COLUMN callback_url TEXT",
        "ALTER TABLE runs ADD COLUMN webhook_due_at INTEGER",
        "ALTER TABLE runs ADD COLUMN webhook_attempts INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE runs ADD COLUMN webhook TEXT",
        "CREATE INDEX runs_webhook_due ON runs (webhook_due_at) WHERE webhook_due_at IS NOT NULL",
    ],
    # schema 7: each run's priority band, and a scheduled run's start time
    [
        "ALTER TABLE runs ADD COLUMN priority TEXT NOT NULL DEFAULT 'normal'",
        "ALTER TABLE runs ADD COLUMN start_at INTEGER",
    ],
    # schema 8: the attempts that count toward max_attempts (a release because the worker
    # stopped gives one back); until now every attempt counted
    [
        "ALTER TABLE runs ADD COLUMN attempts_counted INTEGER NOT NULL DEFAULT 0",
        "UPDATE runs SET attempts_counted = attempt WHERE attempt > 0",
    ],
]


def migrate(conn: sqlite3.Connection, *, where: str) -> None:
    """Bring the file forward to ``len(MIGRATIONS)``, inside the caller's write transaction.

    Raises:
      StoreError: the file is from a newer podflow.
    """
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > len(MIGRATIONS):
        raise newer_schema(where, version, len(MIGRATIONS))
    for statements in MIGRATIONS[version:]:
        for statement in statements:
            if callable(statement):
                statement(conn)
            else:
                conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
    # the store's identity, made once: 64 random bits as hex
    conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('store_id', ?)", (secrets.token_hex(8),))


def read_store_id(conn: sqlite3.Connection) -> str:
    """``meta.store_id`` (made by :func:`migrate`)."""
    return str(conn.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()[0])
