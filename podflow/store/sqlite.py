"""The embedded store: one SQLite file shared by the API, workers and scheduler.

Safe across processes: WAL journal, a busy timeout, and every status change
is a single ``UPDATE ... WHERE <precondition> RETURNING`` statement, which
SQLite executes atomically under its write lock.

Durability: what a client is told was accepted -- a new run, a start
request, a cancellation, sources and profiles -- survives a power cut: the
write-ahead log is fsynced before the method returns (:func:`_writes`; the
guarantee of ``synchronous=FULL``, but flushed after the write lock is
released, so other writers never wait for this one's disk). The execution
path (claims, heartbeats, progress, finishes, enqueue marks, sweep writes)
commits with ``synchronous=NORMAL``: still atomic, safe from corruption and
durable across process crashes, but a power cut may roll back its last
fraction of a second -- which fencing and the sweep already handle (a
rolled-back finish re-executes the run as a new attempt; a rolled-back
enqueue mark is re-sent from the outbox). An fsync per execution write would
cost more than the rest of podflow's bookkeeping.

Read-modify-write sequences (seeding) run in ``BEGIN IMMEDIATE``
transactions. Each thread gets its own connection.

The schema is documented in :mod:`podflow.store.base`; its version lives in
``PRAGMA user_version`` and :data:`MIGRATIONS` brings older files forward.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from ..errors import AlreadyExists, ProfileNotFound, StoreError, StoreUnavailable
from ..models import (
    ErrorInfo,
    Lease,
    Progress,
    Run,
    RunPage,
    RunRef,
    RunResult,
    Source,
    SourceInfo,
    Transition,
)
from ..states import RunStatus, allowed_sources
from ..timeutil import from_ms, to_ms
from .base import (
    DEFAULT_BATCH,
    PROFILE_MODELS,
    MinuteCount,
    Profile,
    ProfileKind,
    StoreStats,
    decode_cursor,
    encode_cursor,
    finish_status,
    lease_of,
    profile_kind,
)
from .counters import CREATED, DURATION_BUCKETS_S, SWEEP_LAST_AT, sweep_increments

__all__ = ["MIGRATIONS", "SqliteStore"]

P = ParamSpec("P")
T = TypeVar("T")

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


def _stats_migration() -> list[str]:
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


#: runs finished since a time, per minute and status (a range scan of the runs_finished index)
_FINISHED_PER_MINUTE = (
    "SELECT finished_at / 60000 AS minute, status, count(*) AS n FROM runs"
    " WHERE finished_at >= ? GROUP BY minute, status ORDER BY minute, status"
)

#: MIGRATIONS[n] takes a file from user_version n to n + 1.
MIGRATIONS: list[list[str]] = [
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
]

_RUN_COLUMNS = (
    "run_id, status, episode_profile, speaker_profile, episode_name, source_ids, briefing_suffix, mode,"
    " attempt, created_at, updated_at, started_at, finished_at, heartbeat_at, released, message_id,"
    " outbox_at, enqueued_at, enqueue_error, progress, error, result, history, idempotency_key,"
    " request_hash, retry_of"
)
_SOURCE_INFO_COLUMNS = "source_id, title, filename, content_type, byte_size, sha256, created_at"


_STARTED, _REVOKED, _FAILURE = "'STARTED'", "'REVOKED'", "'FAILURE'"


def _append(status: str, attempt: str, reason: str) -> str:
    """SET clause appending {status, at, attempt, reason} to the row's history.

    Arguments are SQL expressions; in an UPDATE, column names in them refer
    to the row's values before the update (SQLite semantics).
    """
    return (
        "history = json_insert(history, '$[#]', json_object("
        f"'status', {status}, 'at', :now, 'attempt', {attempt}, 'reason', {reason}))"
    )


#: waiting for another process's write lock: first pause, and the longest.
#: SQLite's own busy handler sleeps 1, 2, 5, 10... ms, far longer than a write
#: holds the lock (tens of microseconds), so podflow waits in finer steps.
_BUSY_FIRST_S = 0.00005
_BUSY_MAX_S = 0.002


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY or "locked" in str(exc)


def _guarded(method: Callable[P, T]) -> Callable[P, T]:
    """Translate sqlite3's errors into podflow's, retrying while the file is
    locked by another process (for up to ``busy_timeout_s``).

    Retrying the whole method is safe: SQLite refuses a statement that cannot
    take the lock before it changes anything, every method is one statement or
    one transaction, and the few that issue two repeat idempotent writes.
    """

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        store = args[0]
        deadline: float | None = None
        pause = _BUSY_FIRST_S
        while True:
            try:
                return method(*args, **kwargs)
            except sqlite3.OperationalError as exc:  # locked too long, unreadable file, full disk...
                if _is_busy(exc):
                    now = time.monotonic()
                    if deadline is None:
                        deadline = now + store.busy_timeout_s  # type: ignore[attr-defined]
                    if now < deadline:
                        time.sleep(pause)
                        pause = min(pause * 2, _BUSY_MAX_S)
                        continue
                raise StoreUnavailable(f"SQLite store unavailable: {exc}") from exc
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"SQLite store error: {exc}") from exc

    return wrapper


def _writes(*, durable: bool = False) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """A method that writes. Writers queue instead of polling SQLite's lock:
    threads of one process on a lock, processes on an ``flock`` of a sidecar
    file (``<db>.lock``), which the kernel hands to the next waiter the moment
    it is released. SQLite's own locking still guards the file (and writers
    that are not podflow). If ``durable``, the write-ahead log is fsynced
    before the method returns -- after the locks are released, so other
    writers never wait for this one's disk flush (see the module docstring).

    Keep the work inside small: build models from returned rows after it."""

    def decorate(method: Callable[P, T]) -> Callable[P, T]:
        @functools.wraps(method)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            store = args[0]
            with store._write_lock, store._file_lock():  # type: ignore[attr-defined]
                result = method(*args, **kwargs)
            if durable:
                store._sync_wal()  # type: ignore[attr-defined]
            return result

        return wrapper

    return decorate


def _ms(dt: datetime | None) -> int | None:
    return None if dt is None else to_ms(dt)


def _dt(ms: int | None) -> datetime | None:
    return None if ms is None else from_ms(ms)


def _json(model: Any) -> str | None:
    return None if model is None else model.model_dump_json()


def _placeholders(n: int) -> str:
    return ", ".join("?" * n)


class SqliteStore:
    """The embedded store (see :mod:`podflow.store.base` for the contract).

    Parameters:
      path: the database file; its directory is created if needed.
      heartbeat_timeout_s: a STARTED run silent this long may be re-claimed.
      max_attempts: no claim beyond this attempt.
      busy_timeout_s: how long a write waits for another process's lock.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        heartbeat_timeout_s: float = 120.0,
        max_attempts: int = 3,
        busy_timeout_s: float = 10.0,
    ) -> None:
        self.path = Path(path)
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.max_attempts = max_attempts
        self.busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._write_lock = threading.RLock()  # re-entered by create_run and add_source retries
        self._lock_fd: int | None = None
        self._lock_pid = 0
        self._closed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(f"cannot create {self.path.parent}: {exc}") from exc
        self._migrate()

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"

    # -- connections ------------------------------------------------------------
    @contextmanager
    def _file_lock(self) -> Iterator[None]:
        """Hold the cross-process write lock (see :func:`_writes`)."""
        if self._lock_fd is None or self._lock_pid != os.getpid():  # first use, or a forked child
            if self._closed:
                raise StoreUnavailable("the store is closed")
            self._lock_fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o660)
            self._lock_pid = os.getpid()
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _sync_wal(self) -> None:
        """Make every transaction committed so far durable: fsync the write-ahead log.

        The same guarantee as ``synchronous=FULL`` (committed frames are in the
        log, and SQLite only rewrites the log after a checkpoint has synced
        them into the database file), without holding the write lock through
        the flush. The log is opened each time: a cached descriptor could
        outlive a log that SQLite deleted and made anew.
        """
        fd = os.open(f"{self.path}-wal", os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise StoreUnavailable("the store is closed")
            # timeout=0: a locked file raises at once and _guarded waits in fine steps
            conn = sqlite3.connect(self.path, timeout=0, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA synchronous = NORMAL")  # see _writes
            conn.execute("PRAGMA foreign_keys = OFF")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction taken up front (no lock upgrade, so no SQLITE_BUSY deadlock)."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @_guarded
    def _migrate(self) -> None:
        conn = self._conn()
        # WAL cannot be switched inside a transaction; it is persistent once set.
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise StoreError(f"{self.path}: cannot use WAL journal (got {mode!r})")
        with self._transaction():
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise StoreError(
                    f"{self.path} has schema version {version}, newer than this podflow "
                    f"understands ({len(MIGRATIONS)}); upgrade podflow"
                )
            for statements in MIGRATIONS[version:]:
                for statement in statements:
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")

    def schema_version(self) -> int:
        return int(self._conn().execute("PRAGMA user_version").fetchone()[0])

    @_guarded
    def ping(self) -> None:
        self._conn().execute("SELECT 1").fetchone()

    def close(self) -> None:
        self._closed = True
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        with self._write_lock:
            if self._lock_fd is not None and self._lock_pid == os.getpid():
                os.close(self._lock_fd)
            self._lock_fd = None
        self._local = threading.local()

    # -- row conversion ---------------------------------------------------------
    @staticmethod
    def _run(row: sqlite3.Row) -> Run:
        return Run(
            run_id=row["run_id"],
            status=row["status"],
            episode_profile=row["episode_profile"],
            speaker_profile=row["speaker_profile"],
            episode_name=row["episode_name"],
            source_ids=json.loads(row["source_ids"]),
            briefing_suffix=row["briefing_suffix"],
            mode=row["mode"],
            attempt=row["attempt"],
            created_at=from_ms(row["created_at"]),
            updated_at=from_ms(row["updated_at"]),
            started_at=_dt(row["started_at"]),
            finished_at=_dt(row["finished_at"]),
            heartbeat_at=_dt(row["heartbeat_at"]),
            released=bool(row["released"]),
            message_id=row["message_id"],
            outbox_at=_dt(row["outbox_at"]),
            enqueued_at=_dt(row["enqueued_at"]),
            enqueue_error=row["enqueue_error"],
            progress=Progress.model_validate_json(row["progress"]) if row["progress"] else None,
            error=ErrorInfo.model_validate_json(row["error"]) if row["error"] else None,
            result=RunResult.model_validate_json(row["result"]) if row["result"] else None,
            history=[
                Transition(status=h["status"], at=from_ms(h["at"]), attempt=h["attempt"], reason=h["reason"])
                for h in json.loads(row["history"])
            ],
            idempotency_key=row["idempotency_key"],
            request_hash=row["request_hash"],
            retry_of=row["retry_of"],
        )

    @staticmethod
    def _run_values(run: Run) -> tuple[Any, ...]:
        history = [
            {"status": str(h.status), "at": to_ms(h.at), "attempt": h.attempt, "reason": h.reason}
            for h in run.history
        ]
        return (
            run.run_id,
            str(run.status),
            run.episode_profile,
            run.speaker_profile,
            run.episode_name,
            json.dumps(run.source_ids),
            run.briefing_suffix,
            run.mode,
            run.attempt,
            to_ms(run.created_at),
            to_ms(run.updated_at),
            _ms(run.started_at),
            _ms(run.finished_at),
            _ms(run.heartbeat_at),
            int(run.released),
            run.message_id,
            _ms(run.outbox_at),
            _ms(run.enqueued_at),
            run.enqueue_error,
            _json(run.progress),
            _json(run.error),
            _json(run.result),
            json.dumps(history),
            run.idempotency_key,
            run.request_hash,
            run.retry_of,
        )

    def _read_lease(self, run_id: str, attempt: int) -> Lease:
        row = self._conn().execute(
            "SELECT status, attempt, released FROM runs WHERE run_id = ?", (run_id,)
        ).fetchone()
        return lease_of(row, attempt)

    # -- run records ------------------------------------------------------------
    @_guarded
    @_writes(durable=True)
    def create_run(self, run: Run) -> tuple[Run, bool]:
        conn = self._conn()
        try:
            conn.execute(
                f"INSERT INTO runs ({_RUN_COLUMNS}) VALUES ({_placeholders(26)})", self._run_values(run)
            )
        except sqlite3.IntegrityError:
            if run.idempotency_key is None:
                raise
            row = conn.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE idempotency_key = ?", (run.idempotency_key,)
            ).fetchone()
            if row is None:  # the key's holder was deleted in between; try once more
                return self.create_run(run)
            return self._run(row), False
        return run, True

    @_guarded
    def get_run(self, run_id: str) -> Run | None:
        row = self._conn().execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else self._run(row)

    @_guarded
    def get_run_by_message_id(self, message_id: str) -> Run | None:
        row = (
            self._conn()
            .execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE message_id = ? LIMIT 1", (message_id,))
            .fetchone()
        )
        return None if row is None else self._run(row)

    @_guarded
    def list_runs(
        self, *, status: RunStatus | None = None, limit: int = 50, cursor: str | None = None
    ) -> RunPage:
        where: list[str] = []
        params: list[Any] = []
        if status is not None:
            where.append("status = ?")
            params.append(str(status))
        if cursor:
            created_at, run_id = decode_cursor(cursor)
            where.append("(created_at < ? OR (created_at = ? AND run_id < ?))")
            params += [to_ms(created_at), to_ms(created_at), run_id]
        sql = f"SELECT {_RUN_COLUMNS} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, run_id DESC LIMIT ?"
        rows = self._conn().execute(sql, (*params, limit + 1)).fetchall()
        runs = [self._run(row) for row in rows[:limit]]
        next_cursor = encode_cursor(runs[-1].created_at, runs[-1].run_id) if len(rows) > limit else None
        return RunPage(runs=runs, next_cursor=next_cursor)

    @_guarded
    @_writes(durable=True)
    def delete_run(self, run_id: str) -> bool:
        cur = self._conn().execute("DELETE FROM runs WHERE run_id = ? AND status != 'STARTED'", (run_id,))
        return cur.rowcount == 1

    @_guarded
    def count_by_status(self) -> dict[RunStatus, int]:
        counts = {status: 0 for status in RunStatus}
        for row in self._conn().execute("SELECT status, count(*) AS n FROM runs GROUP BY status"):
            counts[RunStatus(row["status"])] = row["n"]
        return counts

    @_guarded
    def oldest_pending_created_at(self) -> datetime | None:
        row = (
            self._conn()
            .execute(
                "SELECT min(created_at) AS t FROM runs WHERE status = 'PENDING'"
                " AND (outbox_at IS NOT NULL OR enqueued_at IS NOT NULL)"
            )
            .fetchone()
        )
        return _dt(row["t"])

    # -- dispatch bookkeeping ---------------------------------------------------
    @_guarded
    @_writes(durable=True)
    def request_start(self, run_id: str, *, message_id: str | None, now: datetime) -> Run | None:
        row = (
            self._conn()
            .execute(
                "UPDATE runs SET outbox_at = :now, updated_at = :now,"
                " message_id = coalesce(message_id, :message_id)"
                " WHERE run_id = :run_id AND status = 'PENDING'"
                " AND outbox_at IS NULL AND enqueued_at IS NULL"
                f" RETURNING {_RUN_COLUMNS}",
                {"now": to_ms(now), "message_id": message_id, "run_id": run_id},
            )
            .fetchone()
        )
        return None if row is None else self._run(row)

    @_guarded
    @_writes()
    def mark_enqueued(self, run_id: str, *, now: datetime) -> bool:
        cur = self._conn().execute(
            "UPDATE runs SET enqueued_at = coalesce(enqueued_at, :now), outbox_at = NULL,"
            " enqueue_error = NULL WHERE run_id = :run_id",
            {"now": to_ms(now), "run_id": run_id},
        )
        return cur.rowcount == 1

    @_guarded
    @_writes()
    def mark_enqueue_failed(self, run_id: str, *, error: str, now: datetime) -> bool:
        cur = self._conn().execute(
            "UPDATE runs SET enqueue_error = ?, updated_at = ? WHERE run_id = ? AND outbox_at IS NOT NULL",
            (error, to_ms(now), run_id),
        )
        return cur.rowcount == 1

    # -- execution --------------------------------------------------------------
    @_guarded
    @_writes()
    def claim(self, run_id: str, *, now: datetime) -> int | None:
        reason = "CASE WHEN status = 'PENDING' THEN 'claimed' WHEN released THEN 'retry' ELSE 'reclaimed: heartbeat stale' END"  # noqa: E501
        row = (
            self._conn()
            .execute(
                "UPDATE runs SET status = 'STARTED', attempt = attempt + 1, started_at = :now,"
                " heartbeat_at = :now, updated_at = :now, released = 0, progress = NULL,"
                " outbox_at = NULL, enqueued_at = coalesce(enqueued_at, :now),"
                f" {_append(_STARTED, 'attempt + 1', reason)}"
                " WHERE run_id = :run_id AND (status = 'PENDING' OR (status = 'STARTED'"
                " AND attempt < :max_attempts AND (released OR heartbeat_at < :stale_before)))"
                " RETURNING attempt",
                {
                    "now": to_ms(now),
                    "run_id": run_id,
                    "max_attempts": self.max_attempts,
                    "stale_before": to_ms(now) - int(self.heartbeat_timeout_s * 1000),
                },
            )
            .fetchone()
        )
        return None if row is None else int(row["attempt"])

    _FENCE = "run_id = :run_id AND attempt = :attempt AND status = 'STARTED' AND NOT released"

    @_guarded
    @_writes()
    def heartbeat(self, run_id: str, attempt: int, *, now: datetime) -> Lease:
        conn = self._conn()
        cur = conn.execute(
            f"UPDATE runs SET heartbeat_at = :now WHERE {self._FENCE}",
            {"now": to_ms(now), "run_id": run_id, "attempt": attempt},
        )
        return Lease(owned=True, status=RunStatus.STARTED) if cur.rowcount else self._read_lease(run_id, attempt)

    @_guarded
    def lease(self, run_id: str, attempt: int) -> Lease:
        return self._read_lease(run_id, attempt)

    @_guarded
    @_writes()
    def heartbeat_many(self, leases: Mapping[str, int], *, now: datetime) -> dict[str, Lease]:
        conn = self._conn()
        owned: set[str] = set()
        items = list(leases.items())
        for start in range(0, len(items), 400):
            chunk = items[start : start + 400]
            pairs = ", ".join(["(?, ?)"] * len(chunk))
            params: list[Any] = [to_ms(now)]
            for run_id, attempt in chunk:
                params += [run_id, attempt]
            rows = conn.execute(
                "UPDATE runs SET heartbeat_at = ? WHERE status = 'STARTED' AND NOT released"
                f" AND (run_id, attempt) IN (VALUES {pairs}) RETURNING run_id",
                params,
            ).fetchall()
            owned.update(row["run_id"] for row in rows)
        replies = {run_id: Lease(owned=True, status=RunStatus.STARTED) for run_id in owned}
        for run_id in leases:
            if run_id not in owned:
                replies[run_id] = self._read_lease(run_id, leases[run_id])
        return replies

    @_guarded
    @_writes()
    def set_progress(self, run_id: str, attempt: int, progress: Progress, *, now: datetime) -> Lease:
        conn = self._conn()
        cur = conn.execute(
            "UPDATE runs SET progress = :progress, heartbeat_at = :now, updated_at = :now"
            f" WHERE {self._FENCE}",
            {"progress": progress.model_dump_json(), "now": to_ms(now), "run_id": run_id, "attempt": attempt},
        )
        return Lease(owned=True, status=RunStatus.STARTED) if cur.rowcount else self._read_lease(run_id, attempt)

    @_guarded
    @_writes()
    def release(self, run_id: str, attempt: int, *, error: ErrorInfo, now: datetime) -> bool:
        cur = self._conn().execute(
            "UPDATE runs SET released = 1, heartbeat_at = :now, updated_at = :now, error = :error,"
            f" {_append(_STARTED, 'attempt', ':reason')}"
            f" WHERE {self._FENCE}",
            {
                "now": to_ms(now),
                "error": error.model_dump_json(),
                "reason": f"released for retry: {error.type}",
                "run_id": run_id,
                "attempt": attempt,
            },
        )
        return cur.rowcount == 1

    def finish(
        self,
        run_id: str,
        attempt: int,
        *,
        status: RunStatus,
        now: datetime,
        result: RunResult | None = None,
        error: ErrorInfo | None = None,
        reason: str = "",
    ) -> Run | None:
        status = finish_status(status)
        row = self._finish(run_id, attempt, status=status, now=now, result=result, error=error, reason=reason)
        return None if row is None else self._run(row)

    @_guarded
    @_writes()
    def _finish(
        self,
        run_id: str,
        attempt: int,
        *,
        status: RunStatus,
        now: datetime,
        result: RunResult | None,
        error: ErrorInfo | None,
        reason: str,
    ) -> sqlite3.Row | None:
        row: sqlite3.Row | None = (
            self._conn()
            .execute(
                "UPDATE runs SET status = :status, finished_at = :now, updated_at = :now,"
                " result = :result, error = :error,"
                f" {_append(':status', 'attempt', ':reason')}"
                f" WHERE {self._FENCE} RETURNING {_RUN_COLUMNS}",
                {
                    "status": str(status),
                    "now": to_ms(now),
                    "result": _json(result),
                    "error": _json(error),
                    "reason": reason or status.lower(),
                    "run_id": run_id,
                    "attempt": attempt,
                },
            )
            .fetchone()
        )
        return row

    @_guarded
    @_writes(durable=True)
    def cancel(self, run_id: str, *, now: datetime, reason: str = "cancelled") -> Run | None:
        sources = allowed_sources(RunStatus.REVOKED)
        row = (
            self._conn()
            .execute(
                "UPDATE runs SET status = 'REVOKED', finished_at = :now, updated_at = :now,"
                " released = 0, outbox_at = NULL, error = :error,"
                f" {_append(_REVOKED, 'attempt', ':reason')}"
                f" WHERE run_id = :run_id AND status IN ({', '.join(repr(str(s)) for s in sources)})"
                f" RETURNING {_RUN_COLUMNS}",
                {
                    "now": to_ms(now),
                    "error": ErrorInfo(type="revoked", message=reason).model_dump_json(),
                    "reason": reason,
                    "run_id": run_id,
                },
            )
            .fetchone()
        )
        return None if row is None else self._run(row)

    # -- sweep ------------------------------------------------------------------
    def _fail_where(self, match: str, params: dict[str, Any], error: ErrorInfo, now: datetime) -> list[str]:
        """FAILURE for the (at most :limit) runs matching ``match``, in one statement."""
        rows = (
            self._conn()
            .execute(
                "UPDATE runs SET status = 'FAILURE', finished_at = :now, updated_at = :now,"
                " error = :error, released = 0, outbox_at = NULL,"
                f" {_append(_FAILURE, 'attempt', ':reason')}"
                f" WHERE run_id IN (SELECT run_id FROM runs WHERE {match} LIMIT :limit) AND {match}"
                " RETURNING run_id",
                {**params, "now": to_ms(now), "error": error.model_dump_json(), "reason": error.type},
            )
            .fetchall()
        )
        return [row["run_id"] for row in rows]

    @_guarded
    @_writes()
    def fail_started_before(
        self, *, started_before: datetime, error: ErrorInfo, now: datetime, limit: int = DEFAULT_BATCH
    ) -> list[str]:
        return self._fail_where(
            "status = 'STARTED' AND started_at < :cutoff",
            {"cutoff": to_ms(started_before), "limit": limit},
            error,
            now,
        )

    @_guarded
    @_writes()
    def fail_lost(
        self, *, heartbeat_before: datetime, error: ErrorInfo, now: datetime, limit: int = DEFAULT_BATCH
    ) -> list[str]:
        return self._fail_where(
            "status = 'STARTED' AND heartbeat_at < :cutoff AND attempt >= :max_attempts",
            {"cutoff": to_ms(heartbeat_before), "max_attempts": self.max_attempts, "limit": limit},
            error,
            now,
        )

    @_guarded
    @_writes()
    def release_lost(
        self, *, heartbeat_before: datetime, now: datetime, limit: int = DEFAULT_BATCH
    ) -> list[RunRef]:
        match = "status = 'STARTED' AND heartbeat_at < :cutoff AND attempt < :max_attempts"
        rows = (
            self._conn()
            .execute(
                "UPDATE runs SET released = 1, heartbeat_at = :now, updated_at = :now,"
                f" {_append(_STARTED, 'attempt', ':reason')}"
                f" WHERE run_id IN (SELECT run_id FROM runs WHERE {match} LIMIT :limit) AND {match}"
                " RETURNING run_id, attempt, mode, message_id",
                {
                    "now": to_ms(now),
                    "cutoff": to_ms(heartbeat_before),
                    "max_attempts": self.max_attempts,
                    "limit": limit,
                    "reason": "lost: heartbeat stale; re-dispatched",
                },
            )
            .fetchall()
        )
        return [RunRef(**dict(row)) for row in rows]

    def _pending_before(self, column: str, cutoff: datetime, limit: int) -> list[RunRef]:
        """PENDING runs whose ``column`` (outbox_at or enqueued_at) is before the cutoff, oldest first."""
        assert column in ("outbox_at", "enqueued_at")
        rows = (
            self._conn()
            .execute(
                "SELECT run_id, attempt, mode, message_id FROM runs"
                f" WHERE status = 'PENDING' AND {column} < ? ORDER BY {column} LIMIT ?",
                (to_ms(cutoff), limit),
            )
            .fetchall()
        )
        return [RunRef(**dict(row)) for row in rows]

    @_guarded
    def list_outbox(self, *, requested_before: datetime, limit: int = DEFAULT_BATCH) -> list[RunRef]:
        return self._pending_before("outbox_at", requested_before, limit)

    @_guarded
    def list_enqueued(self, *, enqueued_before: datetime, limit: int = DEFAULT_BATCH) -> list[RunRef]:
        return self._pending_before("enqueued_at", enqueued_before, limit)

    @_guarded
    @_writes()
    def fail_pending_enqueued_before(
        self, *, enqueued_before: datetime, error: ErrorInfo, now: datetime, limit: int = DEFAULT_BATCH
    ) -> list[str]:
        return self._fail_where(
            "status = 'PENDING' AND enqueued_at < :cutoff",
            {"cutoff": to_ms(enqueued_before), "limit": limit},
            error,
            now,
        )

    # -- sources ----------------------------------------------------------------
    @staticmethod
    def _source_info(row: sqlite3.Row) -> SourceInfo:
        return SourceInfo(**{**dict(row), "created_at": from_ms(row["created_at"])})

    @_guarded
    @_writes(durable=True)
    def add_source(self, source: Source) -> tuple[SourceInfo, bool]:
        conn = self._conn()
        row = conn.execute(
            "INSERT INTO sources (source_id, title, filename, content_type, byte_size, sha256, text, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (sha256) DO NOTHING RETURNING source_id",
            (
                source.source_id,
                source.title,
                source.filename,
                source.content_type,
                source.byte_size,
                source.sha256,
                source.text,
                to_ms(source.created_at),
            ),
        ).fetchone()
        if row is not None:
            return source.info(), True
        existing = conn.execute(
            f"SELECT {_SOURCE_INFO_COLUMNS} FROM sources WHERE sha256 = ?", (source.sha256,)
        ).fetchone()
        if existing is None:  # deleted in between; try once more
            return self.add_source(source)
        return self._source_info(existing), False

    @_guarded
    def get_source(self, source_id: str) -> Source | None:
        row = (
            self._conn()
            .execute(f"SELECT {_SOURCE_INFO_COLUMNS}, text FROM sources WHERE source_id = ?", (source_id,))
            .fetchone()
        )
        return None if row is None else Source(**{**dict(row), "created_at": from_ms(row["created_at"])})

    @_guarded
    def list_sources(self, *, limit: int = 100) -> list[SourceInfo]:
        rows = (
            self._conn()
            .execute(
                f"SELECT {_SOURCE_INFO_COLUMNS} FROM sources ORDER BY created_at DESC, source_id DESC LIMIT ?",
                (limit,),
            )
            .fetchall()
        )
        return [self._source_info(row) for row in rows]

    @_guarded
    @_writes(durable=True)
    def delete_source(self, source_id: str) -> bool:
        return self._conn().execute("DELETE FROM sources WHERE source_id = ?", (source_id,)).rowcount == 1

    @_guarded
    def missing_sources(self, source_ids: Sequence[str]) -> list[str]:
        wanted = list(dict.fromkeys(source_ids))
        if not wanted:
            return []
        rows = (
            self._conn()
            .execute(f"SELECT source_id FROM sources WHERE source_id IN ({_placeholders(len(wanted))})", wanted)
            .fetchall()
        )
        found = {row["source_id"] for row in rows}
        return [source_id for source_id in source_ids if source_id not in found]

    # -- profiles ---------------------------------------------------------------
    @staticmethod
    def _table(kind: ProfileKind) -> str:
        if kind not in PROFILE_MODELS:
            raise ValueError(f"unknown profile kind {kind!r}")
        return f"{kind}_profiles"

    @_guarded
    def get_profile(self, kind: ProfileKind, name: str) -> Profile | None:
        row = self._conn().execute(f"SELECT doc FROM {self._table(kind)} WHERE name = ?", (name,)).fetchone()
        return None if row is None else PROFILE_MODELS[kind].model_validate_json(row["doc"])

    @_guarded
    def list_profiles(self, kind: ProfileKind) -> list[Profile]:
        rows = self._conn().execute(f"SELECT doc FROM {self._table(kind)} ORDER BY name").fetchall()
        return [PROFILE_MODELS[kind].model_validate_json(row["doc"]) for row in rows]

    @_guarded
    @_writes(durable=True)
    def create_profile(self, profile: Profile, *, now: datetime) -> None:
        kind = profile_kind(profile)
        try:
            self._conn().execute(
                f"INSERT INTO {self._table(kind)} (name, doc, updated_at) VALUES (?, ?, ?)",
                (profile.name, profile.model_dump_json(), to_ms(now)),
            )
        except sqlite3.IntegrityError:
            raise AlreadyExists(f"{kind} profile {profile.name!r} already exists") from None

    @_guarded
    @_writes(durable=True)
    def update_profile(self, profile: Profile, *, now: datetime) -> None:
        kind = profile_kind(profile)
        cur = self._conn().execute(
            f"UPDATE {self._table(kind)} SET doc = ?, updated_at = ? WHERE name = ?",
            (profile.model_dump_json(), to_ms(now), profile.name),
        )
        if cur.rowcount == 0:
            raise ProfileNotFound(profile.name)

    @_guarded
    @_writes(durable=True)
    def delete_profile(self, kind: ProfileKind, name: str) -> bool:
        return self._conn().execute(f"DELETE FROM {self._table(kind)} WHERE name = ?", (name,)).rowcount == 1

    @_guarded
    @_writes(durable=True)
    def seed_profiles(self, profiles: Sequence[Profile], *, now: datetime) -> list[str]:
        inserted = []
        with self._transaction() as conn:
            for profile in profiles:
                kind = profile_kind(profile)
                first_time = conn.execute(
                    "INSERT OR IGNORE INTO seeded (kind, name) VALUES (?, ?)", (kind, profile.name)
                ).rowcount
                if first_time and conn.execute(
                    f"INSERT OR IGNORE INTO {self._table(kind)} (name, doc, updated_at) VALUES (?, ?, ?)",
                    (profile.name, profile.model_dump_json(), to_ms(now)),
                ).rowcount:
                    inserted.append(profile.name)
        return inserted

    # -- monitoring -------------------------------------------------------------
    @_guarded
    def stats(self) -> StoreStats:
        rows = self._conn().execute("SELECT name, value FROM stats").fetchall()
        return StoreStats.parse({row["name"]: row["value"] for row in rows})

    @_guarded
    @_writes()
    def record_sweep(self, counts: Mapping[str, int], *, now: datetime) -> None:
        values = [*sweep_increments(counts).items(), (SWEEP_LAST_AT, to_ms(now))]
        self._conn().execute(
            f"INSERT INTO stats (name, value) VALUES {', '.join(['(?, ?)'] * len(values))}"
            " ON CONFLICT (name) DO UPDATE SET value = CASE WHEN name = ?"
            " THEN max(value, excluded.value) ELSE value + excluded.value END",
            [*(v for pair in values for v in pair), SWEEP_LAST_AT],
        )

    @_guarded
    def finished_per_minute(self, *, since: datetime) -> list[MinuteCount]:
        rows = self._conn().execute(_FINISHED_PER_MINUTE, (to_ms(since),))
        return [MinuteCount(from_ms(row["minute"] * 60000), RunStatus(row["status"]), row["n"]) for row in rows]

    # -- leases -----------------------------------------------------------------
    @_guarded
    @_writes()
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

    @_guarded
    @_writes()
    def release_lease(self, name: str, *, holder: str) -> None:
        self._conn().execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))
