"""Benchmark 4 on PostgreSQL: the cost of one sweep, against runs stored and runs stale.

For each stored count a database of its own (dropped afterwards) is filled in
SQL with ``generate_series``: all runs ended but as many candidates as the
largest stale count of that point, STARTED. Before each sweep, ``stale`` of
the candidates are staged with a heartbeat older than the timeout and attempts
left (the others beat just now), their messages held by the private Redis as
a dead worker leaves them; the sweep releases each (its message delivers it
again: nothing is re-sent) through a real ``QueueDispatcher``, and must touch
exactly those. The triggers are off while filling (the counters are not what
is measured); the table is vacuumed after each staging, as autovacuum would
between two sweeps five minutes apart. The tests check with ``EXPLAIN`` that each sweep statement
reads an index (tests/store/test_postgres.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable
from datetime import timedelta

import psycopg
import redis

from podflow.dispatch.queue import QueueDispatcher
from podflow.settings import load_settings
from podflow.store.postgres import PostgresStore
from podflow.sweep import SweepPolicy, sweep
from podflow.timeutil import utcnow
from podflow.worker.broker import build_broker
from tests.postgres import scratch_database

from . import sweep as sqlite_sweep
from .report import Row
from .scale import Scale
from .systems import BenchError

__all__ = ["measure"]

POLICY = SweepPolicy(time_limit_s=3600, pending_timeout_s=86400)

_FILL = """
INSERT INTO runs (run_id, status, episode_profile, speaker_profile, episode_name, source_ids, mode, attempt,
    attempts_counted, created_at, updated_at, started_at, finished_at, heartbeat_at, message_id, enqueued_at, history,
    current_message_id)
SELECT 'run_' || md5(i::text), CASE WHEN i <= %(candidates)s THEN 'STARTED' ELSE 'SUCCESS' END,
    'tech_news', 'dual_host', 'bench', '["src_1"]'::jsonb, 'queue', 1, 1,
    %(t0)s - (i * interval '1 ms'), %(t0)s, %(started)s, CASE WHEN i <= %(candidates)s THEN NULL ELSE %(t0)s END,
    %(t0)s, i::text, %(started)s, '[]'::jsonb, CASE WHEN i <= %(candidates)s THEN i::text END
FROM generate_series(1, %(total)s) AS i
"""
#: the first ``stale`` candidates lost, the others alive
_STAGE = """
UPDATE runs SET released = false,
    heartbeat_at = CASE WHEN message_id::integer <= %(stale)s THEN %(stale_at)s ELSE %(now)s END
WHERE status = 'STARTED'
"""


def _sweep_point(conn: psycopg.Connection[tuple[object, ...]], store: PostgresStore, dispatcher: QueueDispatcher,
                 client: redis.Redis, stale: int, reps: int) -> list[float]:
    now = utcnow()
    seconds = []
    for rep in range(reps + 1):  # the first, untimed, warms the caches
        conn.execute(_STAGE, {"stale": stale, "stale_at": now - timedelta(seconds=600), "now": now})
        # what autovacuum does between sweeps in production: restaging leaves dead rows
        conn.execute("VACUUM runs")
        client.flushdb()
        for i in range(1, stale + 1):  # each lost run's message, as its dead worker left it: held
            dispatcher.send("run_" + hashlib.md5(str(i).encode()).hexdigest(), str(i))
        began = time.perf_counter()
        report = sweep(store, now=now, policy=POLICY, dispatcher=dispatcher)
        elapsed = time.perf_counter() - began
        if report.redispatched != stale or report.total != stale:
            raise BenchError(f"the sweep touched {report.as_dict()}, not the {stale} staged runs")
        if rep:
            seconds.append(elapsed)
    return seconds


def measure(scale: Scale, redis_url: str, log: Callable[[str], None]) -> tuple[list[Row], dict[str, object]]:
    by_total: dict[int, int] = {}
    for total, stale in scale.sweep_points:
        by_total[total] = max(stale, by_total.get(total, 0))
    seconds: dict[tuple[int, int], list[float]] = {}
    client = redis.Redis.from_url(redis_url)
    dispatcher = QueueDispatcher(broker=build_broker(load_settings(env_file=None, broker_url=redis_url)))
    try:
        for total, candidates in by_total.items():
            with scratch_database("sweep") as url:
                store = PostgresStore(url, heartbeat_timeout_s=120.0, max_attempts=3)
                try:
                    with psycopg.connect(url, autocommit=True) as conn:
                        began, now = time.perf_counter(), utcnow()
                        conn.execute("ALTER TABLE runs DISABLE TRIGGER USER")
                        conn.execute(_FILL, {"candidates": candidates, "total": total, "t0": now,
                                             "started": now - timedelta(seconds=600)})
                        conn.execute("ALTER TABLE runs ENABLE TRIGGER USER")
                        conn.execute("VACUUM ANALYZE runs")
                        log(f"sweep (PostgreSQL): filled {total:,} runs ({candidates:,} candidates) in "
                            f"{time.perf_counter() - began:.1f} s")
                        for point_total, stale in scale.sweep_points:
                            if point_total == total:
                                seconds[(total, stale)] = _sweep_point(
                                    conn, store, dispatcher, client, stale, scale.sweep_reps
                                )
                                log(f"sweep (PostgreSQL): {total:,} stored, {stale:,} stale: "
                                    f"{sorted(seconds[(total, stale)])}")
                finally:
                    store.close()
    finally:
        client.flushdb()
        client.close()
    named = "Sweep cost (PostgreSQL)"
    rows = [dataclasses.replace(row, benchmark=named) for row in sqlite_sweep.sweep_rows(seconds, [])]
    return rows, {"sweep_postgres_seconds": {f"{t}/{s}": v for (t, s), v in seconds.items()}}
