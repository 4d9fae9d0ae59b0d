"""The PostgreSQL schema, as forward migrations applied on open under an advisory lock.

``MIGRATIONS[n]`` takes a database from version n to n + 1. The version is
the ``schema_version`` row of the ``meta`` table (key -> value, which also
has room for other facts about the store). :func:`migrate` runs in one
transaction holding a transaction-scoped advisory lock, so processes that
start at once apply each migration exactly once: the others wait, then find
the work done. PostgreSQL's DDL is transactional: a failed migration leaves
the previous version intact.

The counters (``stats``) are kept by row triggers on ``runs``, in the very
statement -- so the transaction -- that inserts or ends a run: exact, unlike
MongoDB's best-effort ``$inc``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from ..base import name_key, newer_schema
from ..counters import CREATED, DURATION_BUCKETS_S

__all__ = ["LOCK_KEY", "MIGRATIONS", "migrate", "read_store_id", "schema_version"]

#: the advisory lock serializing migrations: b"podflow" as a big-endian integer
LOCK_KEY = int.from_bytes(b"podflow", "big")

_TERMINAL = "('SUCCESS', 'FAILURE', 'REVOKED')"
_UPSERT = "ON CONFLICT (name) DO UPDATE SET value = stats.value + excluded.value"


def _counters() -> list[str]:
    buckets = " ".join(f"WHEN duration_ms <= {bound * 1000} THEN '{bound}'" for bound in DURATION_BUCKETS_S)
    return [
        "CREATE TABLE stats (name text PRIMARY KEY, value bigint NOT NULL)",
        f"""CREATE FUNCTION podflow_count_created() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO stats (name, value) VALUES ('{CREATED}', 1) {_UPSERT};
            RETURN NULL;
        END $$""",
        # podflow.store.counters.finished_increments, in SQL. Every writer takes
        # finished:<status> first, so two transactions never wait on each other in a cycle.
        f"""CREATE FUNCTION podflow_count_finished() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            duration_ms bigint;
        BEGIN
            INSERT INTO stats (name, value) VALUES ('finished:' || NEW.status, 1) {_UPSERT};
            IF NEW.status = 'FAILURE' THEN
                INSERT INTO stats (name, value)
                VALUES ('failed:' || coalesce(NEW.error ->> 'type', 'unknown'), 1) {_UPSERT};
            END IF;
            IF NEW.started_at IS NOT NULL THEN
                duration_ms := greatest(0, round(extract(epoch FROM
                    coalesce(NEW.finished_at, NEW.updated_at) - NEW.started_at) * 1000));
                INSERT INTO stats (name, value) VALUES
                    ('duration_count:' || NEW.status, 1),
                    ('duration_ms_sum:' || NEW.status, duration_ms),
                    ('duration_le:' || NEW.status || ':' || CASE {buckets} ELSE 'inf' END, 1)
                {_UPSERT};
            END IF;
            RETURN NULL;
        END $$""",
        "CREATE TRIGGER runs_stats_created AFTER INSERT ON runs FOR EACH ROW EXECUTE FUNCTION podflow_count_created()",
        f"""CREATE TRIGGER runs_stats_finished AFTER UPDATE OF status ON runs FOR EACH ROW
        WHEN (NEW.status IN {_TERMINAL} AND OLD.status NOT IN {_TERMINAL})
        EXECUTE FUNCTION podflow_count_finished()""",
    ]


def _backfill_name_keys(conn: Any) -> None:
    rows = conn.execute("SELECT run_id, episode_name FROM runs").fetchall()
    with conn.cursor() as cur:
        keys = [(name_key(r["episode_name"]), r["run_id"]) for r in rows]
        cur.executemany("UPDATE runs SET name_key = %s WHERE run_id = %s", keys)


#: a migration step: a statement, or a function of the connection (a backfill Python computes)
Step = str | Callable[[Any], None]

MIGRATIONS: list[list[Step]] = [
    [
        """CREATE TABLE runs (
            run_id text PRIMARY KEY,
            status text NOT NULL CHECK (status IN ('PENDING', 'STARTED', 'SUCCESS', 'FAILURE', 'REVOKED')),
            episode_profile text NOT NULL,
            speaker_profile text NOT NULL,
            episode_name text NOT NULL,
            source_ids jsonb NOT NULL,
            briefing_suffix text,
            mode text NOT NULL,
            attempt integer NOT NULL DEFAULT 0,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            started_at timestamptz,
            finished_at timestamptz,
            heartbeat_at timestamptz,
            released boolean NOT NULL DEFAULT false,
            message_id text,
            outbox_at timestamptz,
            enqueued_at timestamptz,
            enqueue_error text,
            progress jsonb,
            error jsonb,
            result jsonb,
            history jsonb NOT NULL,
            idempotency_key text UNIQUE,
            request_hash text,
            retry_of text
        )""",
        "CREATE INDEX runs_message_id ON runs (message_id) WHERE message_id IS NOT NULL",
        # the sweep's indexes are partial, on the live runs each rule reads (as on SQLite)
        "CREATE INDEX runs_started_heartbeat ON runs (heartbeat_at) WHERE status = 'STARTED'",
        "CREATE INDEX runs_started_started ON runs (started_at) WHERE status = 'STARTED'",
        "CREATE INDEX runs_pending_outbox ON runs (outbox_at) WHERE status = 'PENDING' AND outbox_at IS NOT NULL",
        "CREATE INDEX runs_pending_enqueued ON runs (enqueued_at) WHERE status = 'PENDING' AND enqueued_at IS NOT NULL",
        "CREATE INDEX runs_status_created ON runs (status, created_at, run_id)",
        "CREATE INDEX runs_created ON runs (created_at, run_id)",
        "CREATE INDEX runs_finished ON runs (finished_at) WHERE finished_at IS NOT NULL",
        """CREATE TABLE sources (
            source_id text PRIMARY KEY,
            title text NOT NULL,
            filename text,
            content_type text NOT NULL,
            byte_size integer NOT NULL,
            sha256 text NOT NULL UNIQUE,
            text text NOT NULL,
            created_at timestamptz NOT NULL
        )""",
        "CREATE INDEX sources_created ON sources (created_at, source_id)",
        "CREATE TABLE episode_profiles (name text PRIMARY KEY, doc jsonb NOT NULL, updated_at timestamptz NOT NULL)",
        "CREATE TABLE speaker_profiles (name text PRIMARY KEY, doc jsonb NOT NULL, updated_at timestamptz NOT NULL)",
        "CREATE TABLE seeded (kind text NOT NULL, name text NOT NULL, PRIMARY KEY (kind, name))",
        "CREATE TABLE leases (name text PRIMARY KEY, holder text NOT NULL, expires_at timestamptz NOT NULL)",
        *_counters(),
    ],
    # schema 2: the listing's filters (podflow.store.base.RunFilter): name search, profiles, retries
    [
        "ALTER TABLE runs ADD COLUMN name_key text",
        _backfill_name_keys,
        'CREATE INDEX runs_name ON runs ((name_key COLLATE "C"), created_at, run_id)',
        'CREATE INDEX runs_id_prefix ON runs ((run_id COLLATE "C"))',
        "CREATE INDEX runs_episode_profile ON runs (episode_profile, created_at, run_id)",
        "CREATE INDEX runs_speaker_profile ON runs (speaker_profile, created_at, run_id)",
        "CREATE INDEX runs_retry_of ON runs (retry_of) WHERE retry_of IS NOT NULL",
    ],
    # schema 3: the message that carries each run now (the sweep re-sends lost ones
    # under a new id); a live run's is its first until then
    [
        "ALTER TABLE runs ADD COLUMN current_message_id text",
        "UPDATE runs SET current_message_id = message_id WHERE status IN ('PENDING', 'STARTED')",
    ],
    # schema 4: completion webhooks (podflow.webhooks): where each run's event goes, and
    # its delivery, owed by the write that ends the run; the index holds only the due ones
    [
        "ALTER TABLE runs ADD COLUMN callback_url text",
        "ALTER TABLE runs ADD COLUMN webhook_due_at timestamptz",
        "ALTER TABLE runs ADD COLUMN webhook_attempts integer NOT NULL DEFAULT 0",
        "ALTER TABLE runs ADD COLUMN webhook jsonb",
        "CREATE INDEX runs_webhook_due ON runs (webhook_due_at) WHERE webhook_due_at IS NOT NULL",
    ],
    # schema 5: each run's priority band, and a scheduled run's start time
    [
        "ALTER TABLE runs ADD COLUMN priority text NOT NULL DEFAULT 'normal'",
        "ALTER TABLE runs ADD COLUMN start_at timestamptz",
    ],
    # schema 6: the attempts that count toward max_attempts (a release because the worker
    # stopped gives one back); until now every attempt counted
    [
        "ALTER TABLE runs ADD COLUMN attempts_counted integer NOT NULL DEFAULT 0",
        "UPDATE runs SET attempts_counted = attempt WHERE attempt > 0",
    ],
]


def schema_version(conn: Any) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return 0 if row is None else int(row["value"])


def migrate(conn: Any, *, where: str) -> int:
    """Bring the database forward to ``len(MIGRATIONS)``; the version it is at now.

    Raises:
      StoreError: the database is from a newer podflow.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        conn.execute("CREATE TABLE IF NOT EXISTS meta (key text PRIMARY KEY, value text NOT NULL)")
        version = schema_version(conn)
        if version > len(MIGRATIONS):
            raise newer_schema(where, version, len(MIGRATIONS))
        for statements in MIGRATIONS[version:]:
            for statement in statements:
                if callable(statement):
                    statement(conn)
                else:
                    conn.execute(statement)
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', %s)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(len(MIGRATIONS)),),
        )
        # the store's identity, made once: 64 random bits as hex (PostgreSQL 12 has no gen_random_uuid)
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('store_id', %s) ON CONFLICT (key) DO NOTHING",
            (secrets.token_hex(8),),
        )
    return len(MIGRATIONS)


def read_store_id(conn: Any) -> str:
    """``meta.store_id`` (made by :func:`migrate`)."""
    return str(conn.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()["value"])
