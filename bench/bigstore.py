"""Benchmark: big stores stay fast -- the run listing and retention with 1M runs stored.

One store per database is filled once (SQLite: :func:`bench.fill.fill`, the
store's own rows cloned; PostgreSQL: ``generate_series`` in a database of its
own, dropped after), its runs named ``Show NN #n`` after 100 shows. Then:

- **Listing**: ``Store.list_runs`` -- what ``GET /runs`` runs, without the HTTP
  layer -- for the first page (50 runs), a page 10,000 runs deep in the cursor,
  FAILURE runs only, a search by a show's name (1 % of the runs: common, so read
  in the listing's order), by one episode's name (rare: its index range, sorted)
  and by a run id's first 12 characters. Each is timed ``samples`` times,
  alternating; p50 and p99 are reported against a p99 target.
- **Retention**: the sweep's retention rule (``podflow.sweep.sweep`` with
  ``retention_s``, no dispatcher) deleting the oldest k ended runs, for the two
  k of the scale (1,000 and 10,000 at 1M): the cost per deleted run at the
  larger k over the smaller shows whether the cost follows the deletions
  ("proportional": at most 1.5x). The cutoff is the k-th oldest ``finished_at``,
  so each sweep deletes exactly k (checked); a sweep that finds nothing to delete
  is the baseline, and the cost per deleted run is the time over it. The runs
  have no files on disk: what is timed is the store's part.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import psycopg

from podflow.states import RunStatus
from podflow.store.base import RunFilter, Store, encode_cursor
from podflow.store.postgres import PostgresStore
from podflow.store.sqlite import SqliteStore
from podflow.sweep import sweep
from podflow.timeutil import from_ms, utcnow
from tests.postgres import scratch_database

from .fill import HEARTBEAT_TIMEOUT_S, MAX_ATTEMPTS, POLICY, fill
from .report import Row
from .scale import Scale
from .stats import Figure, format_value, percentile
from .systems import BenchError

__all__ = ["LISTING_P99_MS", "PROPORTIONAL_TARGET", "measure"]

#: every listing query's p99 at the scale's store size, in ms
LISTING_P99_MS = 50.0
#: the cost per deleted run at the larger deletion over the smaller may be at most this
PROPORTIONAL_TARGET = 1.5
SHOWS = 100
#: how deep the cursor page is
DEEP = 10_000


def _show(rng: object) -> str:
    return f"Show {rng.randrange(SHOWS):02d}"  # type: ignore[attr-defined]


def _queries(store: Store, deep_cursor: str, run_id: str) -> dict[str, Callable[[], object]]:
    return {
        "first page": lambda: store.list_runs(limit=50),
        f"page {format_value(DEEP)} runs deep": lambda: store.list_runs(limit=50, cursor=deep_cursor),
        "status FAILURE": lambda: store.list_runs(limit=50, status=RunStatus.FAILURE),
        "search a show's name (1 %)": lambda: store.list_runs(limit=50, where=RunFilter(search="show 42")),
        "search one episode's name": lambda: store.list_runs(limit=50, where=RunFilter(search="Show 42 #123")),
        "search a run id's prefix": lambda: store.list_runs(limit=50, where=RunFilter(search=run_id[:12])),
    }


def _listing(store: Store, deep: tuple[datetime, str], samples: int) -> dict[str, list[float]]:
    run_id = store.list_runs(limit=1).runs[0].run_id
    queries = _queries(store, encode_cursor(*deep), run_id)
    timings: dict[str, list[float]] = {name: [] for name in queries}
    for query in queries.values():  # warm
        query()
    for _ in range(samples):
        for name, query in queries.items():
            began = time.perf_counter()
            query()
            timings[name].append(time.perf_counter() - began)
    return timings


def _retention(store: Store, oldest: Callable[[int], datetime], counts: tuple[int, ...], now: datetime,
               work_dir: Path, reps: int) -> dict[int, list[float]]:
    """Delete the oldest k ended runs, ``reps`` times for each k; seconds per sweep
    (k = 0: a sweep with retention on that finds nothing to delete, the baseline)."""
    seconds: dict[int, list[float]] = {}
    for _ in range(reps):
        policy = replace(POLICY, data_dir=work_dir, retention_s=(now - oldest(1)).total_seconds() + 1)
        began = time.perf_counter()
        if sweep(store, now=now, policy=policy).deleted:
            raise BenchError("the baseline sweep deleted runs")
        seconds.setdefault(0, []).append(time.perf_counter() - began)
    for k in counts:
        for _ in range(reps):
            cutoff = oldest(k) + timedelta(milliseconds=1)
            policy = replace(POLICY, data_dir=work_dir, retention_s=(now - cutoff).total_seconds(), retention_cap=k)
            began = time.perf_counter()
            report = sweep(store, now=now, policy=policy)
            seconds.setdefault(k, []).append(time.perf_counter() - began)
            if report.deleted != k:
                raise BenchError(f"the retention sweep deleted {report.deleted} runs, not {k}")
    return seconds


def _rows(db: str, total: int, timings: dict[str, list[float]], deletions: dict[int, list[float]]) -> list[Row]:
    name = f"Big store ({db}, {format_value(total)} runs)"
    rows = []
    for query, values in timings.items():
        p50, p99 = percentile(values, 50) * 1000, percentile(values, 99) * 1000
        rows.append(Row(name, f"{query}: p50", "ms", Figure(p50, min(values) * 1000, max(values) * 1000, len(values))))
        rows.append(Row(name, f"{query}: p99", "ms", Figure(p99, p99, p99, len(values)), f"< {LISTING_P99_MS:g}",
                        met=p99 < LISTING_P99_MS))
    # what each deletion adds to a sweep: the time over the baseline's median, per run
    base = statistics.median(deletions[0])
    per_run = {k: [(s - base) / k for s in values] for k, values in deletions.items() if k}
    for k, values in deletions.items():
        rows.append(Row(name, f"retention sweep deleting {format_value(k)}", "ms", Figure.of(values).scaled(1000)))
    for k, values in per_run.items():
        rows.append(Row(name, f"retention: per deleted run (deleting {format_value(k)})", "ms",
                        Figure.of(values).scaled(1000)))
    if len(per_run) >= 2:
        small, large = min(per_run), max(per_run)
        ratio = statistics.median(per_run[large]) / statistics.median(per_run[small])
        rows.append(Row(name, f"cost per deleted run, {format_value(large)} / {format_value(small)}", "x",
                        Figure(ratio, ratio, ratio, min(len(per_run[small]), len(per_run[large]))),
                        f"<= {PROPORTIONAL_TARGET} (proportional)", met=ratio <= PROPORTIONAL_TARGET))
    return rows


def _sqlite(scale: Scale, work_dir: Path, log: Callable[[str], None]) -> tuple[list[Row], dict[str, object]]:
    path, now = work_dir / "bigstore.sqlite3", utcnow()
    began = time.perf_counter()
    fill(path, total=scale.bigstore_runs, stale=0, now=now, shows=_show)
    log(f"big store (SQLite): filled {scale.bigstore_runs:,} runs in {time.perf_counter() - began:.1f} s")
    store = SqliteStore(path, heartbeat_timeout_s=HEARTBEAT_TIMEOUT_S, max_attempts=MAX_ATTEMPTS)
    try:
        conn = store._conn()  # the bench's own reads, for the cursor and the cutoffs
        row = conn.execute("SELECT created_at, run_id FROM runs ORDER BY created_at DESC, run_id DESC"
                           " LIMIT 1 OFFSET ?", (DEEP,)).fetchone()  # fmt: skip
        timings = _listing(store, (from_ms(row[0]), row[1]), scale.bigstore_samples)

        def oldest(k: int) -> datetime:
            return from_ms(conn.execute("SELECT finished_at FROM runs WHERE finished_at IS NOT NULL"
                                        " ORDER BY finished_at LIMIT 1 OFFSET ?", (k - 1,)).fetchone()[0])  # fmt: skip

        deletions = _retention(store, oldest, scale.bigstore_deletions, now, work_dir / "data", scale.bigstore_reps)
    finally:
        store.close()
        for suffix in ("", "-wal", "-shm", ".lock"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    log(f"big store (SQLite): listing p99 {[f'{percentile(v, 99) * 1000:.1f}' for v in timings.values()]} ms; "
        f"retention {deletions}")
    return _rows("SQLite", scale.bigstore_runs, timings, deletions), {"bigstore_sqlite": {
        "listing_s": timings, "retention_s": {str(k): v for k, v in deletions.items()}}}


#: mostly SUCCESS, 5 % FAILURE, 2 % REVOKED, 2 % STARTED, 1 % PENDING; ended ones over 30 days,
#: live ones in the last 2 s (no sweep rule but retention finds anything); named after 100 shows
_PG_FILL = """
INSERT INTO runs (run_id, status, episode_profile, speaker_profile, episode_name, name_key, source_ids, mode,
    attempt, created_at, updated_at, started_at, finished_at, heartbeat_at, message_id, enqueued_at, history,
    error, current_message_id)
SELECT 'run_' || md5(i::text), status, 'tech_news', 'dual_host', name, lower(name), '["src_1"]'::jsonb,
    'queue', 1, created, created, created, CASE WHEN ended THEN created + interval '10 s' END, created,
    i::text, created, '[]'::jsonb,
    CASE WHEN status = 'FAILURE' THEN '{"type": "ValueError", "message": "x"}'::jsonb END,
    CASE WHEN NOT ended THEN i::text END
FROM (
    SELECT i, t,
        'Show ' || lpad(floor(random() * 100)::int::text, 2, '0') || ' #' || floor(random() * 1000)::int AS name,
        CASE WHEN r < 0.90 THEN 'SUCCESS' WHEN r < 0.95 THEN 'FAILURE' WHEN r < 0.97 THEN 'REVOKED'
             WHEN r < 0.99 THEN 'STARTED' ELSE 'PENDING' END AS status
    FROM (SELECT i, random() AS r, random() AS t FROM generate_series(1, %(total)s) AS i) AS g
) AS a,
LATERAL (SELECT status IN ('SUCCESS', 'FAILURE', 'REVOKED') AS ended) AS e,
LATERAL (SELECT %(now)s::timestamptz - t * CASE WHEN ended THEN interval '30 days' ELSE interval '2 s' END
         AS created) AS c
"""


def _postgres(scale: Scale, work_dir: Path, log: Callable[[str], None]) -> tuple[list[Row], dict[str, object]]:
    now = utcnow()
    with scratch_database("bigstore") as url:
        store = PostgresStore(url, heartbeat_timeout_s=HEARTBEAT_TIMEOUT_S, max_attempts=MAX_ATTEMPTS)
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                began = time.perf_counter()
                conn.execute("ALTER TABLE runs DISABLE TRIGGER USER")  # the counters are not what is measured
                conn.execute(_PG_FILL, {"total": scale.bigstore_runs, "now": now})
                conn.execute("ALTER TABLE runs ENABLE TRIGGER USER")
                conn.execute("VACUUM ANALYZE runs")
                seconds = time.perf_counter() - began
                log(f"big store (PostgreSQL): filled {scale.bigstore_runs:,} runs in {seconds:.1f} s")
                deep = conn.execute("SELECT created_at, run_id FROM runs ORDER BY created_at DESC, run_id DESC"
                                    " LIMIT 1 OFFSET %s", (DEEP,)).fetchone()  # fmt: skip
                assert deep is not None
                timings = _listing(store, (deep[0], deep[1]), scale.bigstore_samples)

                def oldest(k: int) -> datetime:
                    row = conn.execute("SELECT finished_at FROM runs WHERE finished_at IS NOT NULL"
                                       " ORDER BY finished_at LIMIT 1 OFFSET %s", (k - 1,)).fetchone()  # fmt: skip
                    assert row is not None
                    value: datetime = row[0]
                    return value

                deletions = _retention(store, oldest, scale.bigstore_deletions, now, work_dir / "data",
                                       scale.bigstore_reps)  # fmt: skip
        finally:
            store.close()
    log(f"big store (PostgreSQL): listing p99 {[f'{percentile(v, 99) * 1000:.1f}' for v in timings.values()]} ms; "
        f"retention {deletions}")
    return _rows("PostgreSQL", scale.bigstore_runs, timings, deletions), {"bigstore_postgres": {
        "listing_s": timings, "retention_s": {str(k): v for k, v in deletions.items()}}}


def measure(scale: Scale, work_dir: Path, log: Callable[[str], None]) -> tuple[list[Row], dict[str, object]]:
    """Both databases; PostgreSQL is skipped (one row saying why) when no server answers."""
    rows, details = _sqlite(scale, work_dir, log)
    try:
        pg_rows, pg_details = _postgres(scale, work_dir, log)
    except RuntimeError as exc:  # scratch_database: no server
        return [*rows, Row("Big store (PostgreSQL)", "—", note=f"not measured: {exc}")], details
    return [*rows, *pg_rows], {**details, **pg_details}
