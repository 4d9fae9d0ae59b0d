"""Fill a fresh SQLite store with many runs, fast, exactly as the store writes them.

A :class:`~podflow.store.sqlite.SqliteStore` creates the file (so the schema
and indexes are the store's own). Then one run of each kind is written through
the store's public methods — the same conditional writes production makes, so
its row (timestamps, history JSON, attempt, outbox fields) is the store's —
and read back as a raw row: a *template*. Every stored run is a clone of a
template with a new ``run_id`` and ``message_id`` and all its times (history
included) shifted back by a random amount that keeps it in its class. Clones
go in with ``executemany`` in one transaction.

Kinds, relative to ``now`` (the sweep's policy: time limit 1 h, heartbeat
timeout 2 min, pending timeout 1 day, outbox grace 10 s, 3 attempts):

========================  ======================================================
settled (most runs)       SUCCESS, FAILURE, REVOKED, up to 30 days old
live, not stale           PENDING enqueued seconds ago; STARTED heart-beating
stale, one per sweep rule STARTED 2 h ago (``time_limit``); silent, attempt 3
                          (``worker_lost``); silent, attempt 1 (released,
                          ``redispatched``; its message held by the dead worker);
                          PENDING in the outbox (enqueued by the sweep);
                          PENDING enqueued 2 days ago, its message queued since
                          (``expired``); :meth:`Filled.held` names those messages
========================  ======================================================

The stale runs are *candidates*: :meth:`Filled.stage` makes the first k of
them stale and the rest settled (the same run ids, as SUCCESS), so one file
serves several stale counts and every sweep repetition starts from the same
state.
"""

from __future__ import annotations

import json
import random
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from podflow.models import ErrorInfo, Run, RunRequest, RunResult
from podflow.states import RunStatus
from podflow.store.base import name_key
from podflow.store.sqlite import SqliteStore
from podflow.sweep import SweepPolicy

__all__ = ["HEARTBEAT_TIMEOUT_S", "MAX_ATTEMPTS", "POLICY", "SETTLED_MIX", "STALE_KINDS", "Filled", "fill"]

#: the sweep policy the kinds are built around
POLICY = SweepPolicy(time_limit_s=3600, pending_timeout_s=86400, outbox_grace_s=10)
#: and the store's (a run silent this long is lost)
HEARTBEAT_TIMEOUT_S = 120.0
MAX_ATTEMPTS = 3

#: stale kinds, in the order of the sweep's rules; candidates cycle through them
STALE_KINDS = ("time_limit", "worker_lost", "redispatched", "enqueued", "expired")
#: the runs that are not stale: (kind, weight)
SETTLED_MIX = (("success", 90), ("failure", 5), ("revoked", 2), ("pending", 1), ("started", 2))

_TIME_COLUMNS = ("created_at", "updated_at", "started_at", "finished_at", "heartbeat_at", "outbox_at", "enqueued_at")
_DAY_MS = 86_400_000
#: how far back a clone of each kind may be shifted, in ms, and stay in its class
_MAX_SHIFT_MS = {
    "success": 30 * _DAY_MS,
    "failure": 30 * _DAY_MS,
    "revoked": 30 * _DAY_MS,
    "pending": 2_000,
    "started": 2_000,
    **{kind: 60_000 for kind in STALE_KINDS},
}
_REQUEST = RunRequest(
    episode_profile="tech_news", speaker_profile="dual_host", episode_name="bench", source_ids=["src_bench"]
)


def _new(store: SqliteStore, at: datetime, *, outbox: bool = True) -> str:
    """A run submitted at ``at`` (written as ``podflow.lifecycle.submit`` writes it)."""
    run = Run.new(_REQUEST, now=at)
    if outbox:
        message_id = str(uuid.uuid4())
        run = run.model_copy(update={"outbox_at": at, "message_id": message_id, "current_message_id": message_id})
    store.create_run(run)
    return run.run_id


def _claimed(store: SqliteStore, at: datetime, attempts: int = 1) -> str:
    """Enqueued at ``at``, then claimed ``attempts`` times (released between), the last at ``at + attempts s``."""
    run_id = _new(store, at)
    store.mark_enqueued(run_id, now=at)
    for attempt in range(1, attempts + 1):
        if attempt > 1:
            store.release(run_id, attempt - 1, error=ErrorInfo(type="Transient", message="retry"), now=at)
        at += timedelta(seconds=1)
        store.claim(run_id, now=at)
    return run_id


def _templates(store: SqliteStore, now: datetime) -> dict[str, str]:
    """One run of every kind, written through the store; kind -> run_id."""

    def ago(seconds: float) -> datetime:
        return now - timedelta(seconds=seconds)

    made: dict[str, str] = {}

    made["success"] = _claimed(store, ago(600))
    store.finish(made["success"], 1, status=RunStatus.SUCCESS, now=ago(590),
                 result=RunResult(transcript_path=f"podcasts/{made['success']}/transcript.json", duration_s=1.0))
    made["failure"] = _claimed(store, ago(600))
    store.finish(made["failure"], 1, status=RunStatus.FAILURE, now=ago(590),
                 error=ErrorInfo(type="ValueError", message="the generator failed"))
    made["revoked"] = _new(store, ago(600))
    store.cancel(made["revoked"], now=ago(590))
    made["pending"] = _new(store, ago(5))
    store.mark_enqueued(made["pending"], now=ago(5))
    made["started"] = _claimed(store, ago(60))
    store.heartbeat(made["started"], 1, now=ago(5))

    made["time_limit"] = _claimed(store, ago(7200))
    store.heartbeat(made["time_limit"], 1, now=ago(5))
    made["worker_lost"] = _claimed(store, ago(900), attempts=MAX_ATTEMPTS)
    made["redispatched"] = _claimed(store, ago(900))
    made["enqueued"] = _new(store, ago(60))
    made["expired"] = _new(store, ago(2 * 86400))
    store.mark_enqueued(made["expired"], now=ago(2 * 86400))
    return made


@dataclass
class _Template:
    values: list[Any]
    history: list[dict[str, Any]]


@dataclass
class Filled:
    """A filled store file. ``stage(k)`` before each sweep makes k candidates stale."""

    path: Path
    total: int
    columns: list[str]
    #: per candidate: (its stale row, the same run settled as SUCCESS)
    candidates: list[tuple[tuple[Any, ...], tuple[Any, ...]]] = field(repr=False)
    #: how many candidates are stale on disk (or were, before a sweep changed them)
    staged: int

    @property
    def capacity(self) -> int:
        return len(self.candidates)

    def stage(self, stale: int) -> dict[str, int]:
        """Rewrite the candidates: the first ``stale`` stale, the others settled.
        Returns how many of each stale kind there are now (what a sweep must find).

        Raises:
          ValueError: more stale runs asked for than the file has candidates.
        """
        if stale > self.capacity:
            raise ValueError(f"{self.path} holds {self.capacity} stale candidates, not {stale}")
        # only what a sweep may have changed, or what changes class: a large
        # rewrite before every sweep would leave the disk busy while it is timed
        dirty = max(stale, self.staged)
        rows = [pair[0] if i < stale else pair[1] for i, pair in enumerate(self.candidates[:dirty])]
        # in place, as the sweep itself writes (rows keep their place in the table
        # and indexes): repeated staging must not change the file's layout
        key = self.columns.index("run_id")
        others = [i for i in range(len(self.columns)) if i != key]
        assignments = ", ".join(f"{self.columns[i]} = ?" for i in others)
        params = [(*(row[i] for i in others), row[key]) for row in rows]
        conn = _connect(self.path)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(f"UPDATE runs SET {assignments} WHERE run_id = ?", params)
            conn.execute("COMMIT")
            _flush(conn)
        finally:
            conn.close()
        self.staged = stale
        counts = dict.fromkeys(STALE_KINDS, 0)
        for i in range(stale):
            counts[STALE_KINDS[i % len(STALE_KINDS)]] += 1
        return counts

    def held(self, stale: int) -> list[tuple[str, str]]:
        """``(run_id, message_id)`` of the messages a broker holds for the first ``stale``
        candidates: a dead worker's, unacknowledged (``redispatched``: released, not
        re-sent), and one queued for two days (``expired``). The others' were acked
        (time limit, worker lost) or never sent (the outbox)."""
        run_col, message_col = self.columns.index("run_id"), self.columns.index("current_message_id")
        kinds = ("redispatched", "expired")
        return [
            (self.candidates[i][0][run_col], self.candidates[i][0][message_col])
            for i in range(stale)
            if STALE_KINDS[i % len(STALE_KINDS)] in kinds
        ]


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")  # a benchmark fixture: durability is not the point here
    conn.execute("PRAGMA cache_size = -524288")  # 512 MiB: random run ids touch every index page
    return conn


def _flush(conn: sqlite3.Connection) -> None:
    """Checkpoint the WAL into the file and fsync it: no write-back of the fill
    may still be going on (and slowing every fsync) while a sweep is timed."""
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("PRAGMA synchronous = OFF")


def _insert_sql(columns: Sequence[str]) -> str:
    return f"INSERT INTO runs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


def _read_templates(conn: sqlite3.Connection, made: dict[str, str]) -> tuple[list[str], dict[str, _Template]]:
    cur = conn.execute("SELECT * FROM runs LIMIT 0")
    columns = [d[0] for d in cur.description]
    templates = {}
    for kind, run_id in made.items():
        row = conn.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        values = list(row)
        templates[kind] = _Template(values, json.loads(values[columns.index("history")]))
    conn.execute(f"DELETE FROM runs WHERE run_id IN ({', '.join('?' * len(made))})", list(made.values()))
    return columns, templates


#: a show name for a clone (its episode name is ``<show> #<n>``)
Shows = Callable[[random.Random], str]


def _cloner(
    columns: list[str], templates: dict[str, _Template], rng: random.Random, shows: Shows | None = None
) -> Callable[..., tuple[Any, ...]]:
    """clone(kind, run_id=None) -> a row of ``kind``, shifted back at random (and named
    after one of ``shows``, if given)."""
    run_col, message_col, history_col = (columns.index(c) for c in ("run_id", "message_id", "history"))
    name_col, key_col = columns.index("episode_name"), columns.index("name_key")
    current_col = columns.index("current_message_id")
    time_cols = [columns.index(c) for c in _TIME_COLUMNS]

    def clone(kind: str, run_id: str | None = None) -> tuple[Any, ...]:
        template = templates[kind]
        shift = rng.randrange(_MAX_SHIFT_MS[kind])
        values = template.values.copy()
        values[run_col] = run_id or f"run_{rng.getrandbits(128):032x}"
        if values[message_col] is not None:
            values[message_col] = str(uuid.UUID(int=rng.getrandbits(128)))
        if values[current_col] is not None:  # a live run is carried by its (first) message
            values[current_col] = values[message_col]
        for col in time_cols:
            if values[col] is not None:
                values[col] -= shift
        values[history_col] = json.dumps([{**h, "at": h["at"] - shift} for h in template.history])
        if shows is not None:
            values[name_col] = f"{shows(rng)} #{rng.randrange(1000)}"
            values[key_col] = name_key(values[name_col])
        return tuple(values)

    return clone


def fill(
    path: Path,
    *,
    total: int,
    stale: int,
    now: datetime,
    seed: int = 7,
    chunk: int = 50_000,
    shows: Shows | None = None,
) -> Filled:
    """Create ``path`` with ``total`` runs, ``stale`` of them stale candidates
    (staged stale: call :meth:`Filled.stage` to change how many); named after
    ``shows`` if given (else all "bench").

    Raises:
      FileExistsError: ``path`` exists (the filler only writes fresh files).
      ValueError: ``stale`` exceeds ``total``.
    """
    path = Path(path)
    if path.exists():
        raise FileExistsError(path)
    if not 0 <= stale <= total:
        raise ValueError(f"stale ({stale}) must be between 0 and total ({total})")
    store = SqliteStore(path, heartbeat_timeout_s=HEARTBEAT_TIMEOUT_S, max_attempts=MAX_ATTEMPTS)
    try:
        made = _templates(store, now)
    finally:
        store.close()
    rng = random.Random(seed)
    conn = _connect(path)
    try:
        columns, templates = _read_templates(conn, made)
        clone = _cloner(columns, templates, rng, shows)
        candidates = []
        for i in range(stale):
            row = clone(STALE_KINDS[i % len(STALE_KINDS)])
            candidates.append((row, clone("success", run_id=row[0])))
        kinds, weights = zip(*SETTLED_MIX, strict=True)

        def rows() -> Iterator[tuple[Any, ...]]:
            """Every run, the stale ones scattered at random among the others."""
            pending = [stale_row for stale_row, _ in candidates]
            for left, kind in enumerate(rng.choices(kinds, weights, k=total - stale)):
                while pending and rng.random() * (total - stale - left + len(pending)) < len(pending):
                    yield pending.pop()
                yield clone(kind)
            yield from pending

        conn.execute("BEGIN IMMEDIATE")
        # the store's own secondary indexes, rebuilt after the insert: sorting once
        # is much faster than a million random index updates
        indexes = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'runs' AND sql IS NOT NULL"
        ).fetchall()
        for name, _ in indexes:
            conn.execute(f"DROP INDEX {name}")
        batch: list[tuple[Any, ...]] = []
        for row in rows():
            batch.append(row)
            if len(batch) == chunk:
                conn.executemany(_insert_sql(columns), batch)
                batch.clear()
        conn.executemany(_insert_sql(columns), batch)
        for _, sql in indexes:
            conn.execute(sql)
        conn.execute("COMMIT")
        _flush(conn)
    finally:
        conn.close()
    return Filled(path, total, columns, candidates, staged=stale)
