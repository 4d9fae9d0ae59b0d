"""Benchmark 4 on PostgreSQL: the cost of one sweep with 1M runs stored.

A database of its own (dropped afterwards) is filled in SQL with
``generate_series``: ``total`` runs, all but ``stale`` of them ended, and the
stale ones STARTED with a heartbeat older than the timeout and attempts left
(the sweep releases each and re-dispatches it through a real
``QueueDispatcher`` on the private Redis), the triggers off while filling (the
counters are not what is measured). Before each timed sweep the candidates
are staged again; a sweep must touch exactly them. The tests check with
``EXPLAIN`` that each sweep statement reads an index
(tests/store/test_postgres.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

import psycopg
import redis

from podflow.broker import build_broker
from podflow.dispatch import QueueDispatcher
from podflow.settings import load_settings
from podflow.store.postgres import PostgresStore
from podflow.sweep import SweepPolicy, sweep
from podflow.timeutil import utcnow
from tests.postgres import scratch_database

from .report import Row
from .scale import Scale
from .stats import Figure, format_value
from .systems import BenchError

__all__ = ["measure"]

POLICY = SweepPolicy(time_limit_s=3600, heartbeat_timeout_s=120, pending_timeout_s=86400)

_FILL = """
INSERT INTO runs (run_id, status, episode_profile, speaker_profile, episode_name, source_ids, mode, attempt,
    created_at, updated_at, started_at, finished_at, heartbeat_at, message_id, enqueued_at, history)
SELECT 'run_' || md5(i::text), CASE WHEN i <= %(stale)s THEN 'STARTED' ELSE 'SUCCESS' END,
    'tech_news', 'dual_host', 'bench', '["src_1"]'::jsonb, 'queue', 1,
    %(t0)s - (i * interval '1 ms'), %(t0)s, %(started)s, CASE WHEN i <= %(stale)s THEN NULL ELSE %(t0)s END,
    %(started)s, 'msg-' || i, %(started)s, '[]'::jsonb
FROM generate_series(1, %(total)s) AS i
"""
_STAGE = (
    "UPDATE runs SET released = false, heartbeat_at = %(stale_at)s WHERE status = 'STARTED'"
)


def measure(scale: Scale, redis_url: str, log: Callable[[str], None]) -> tuple[list[Row], dict[str, object]]:
    total, stale = max(scale.sweep_points)
    seconds: list[float] = []
    now = utcnow()
    client = redis.Redis.from_url(redis_url)
    dispatcher = QueueDispatcher(broker=build_broker(load_settings(env_file=None, broker_url=redis_url)))
    try:
        with scratch_database("sweep") as url:
            store = PostgresStore(url, heartbeat_timeout_s=POLICY.heartbeat_timeout_s, max_attempts=3)
            try:
                began = time.perf_counter()
                started = now - timedelta(seconds=600)
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute("ALTER TABLE runs DISABLE TRIGGER USER")
                    conn.execute(_FILL, {"stale": stale, "total": total, "t0": now, "started": started})
                    conn.execute("ALTER TABLE runs ENABLE TRIGGER USER")
                    conn.execute("VACUUM ANALYZE runs")
                    log(f"sweep (PostgreSQL): filled {total:,} runs ({stale:,} stale) in "
                        f"{time.perf_counter() - began:.1f} s")
                    for rep in range(scale.sweep_reps + 1):  # the first, untimed, warms the caches
                        conn.execute(_STAGE, {"stale_at": started})
                        client.flushdb()
                        t0 = time.perf_counter()
                        report = sweep(store, now=now, policy=POLICY, dispatcher=dispatcher)
                        elapsed = time.perf_counter() - t0
                        if report.redispatched != stale or report.total != stale:
                            raise BenchError(f"the sweep touched {report.as_dict()}, not the {stale} staged runs")
                        if rep:
                            seconds.append(elapsed)
                    log(f"sweep (PostgreSQL): {total:,} stored, {stale:,} stale: {sorted(seconds)}")
            finally:
                store.close()
    finally:
        client.flushdb()
        client.close()
    label = f"{format_value(total)} stored, {format_value(stale)} stale"
    rows = [
        Row("Sweep cost (PostgreSQL)", f"one sweep, {label}", "ms", Figure.of(seconds).scaled(1000)),
        Row("Sweep cost (PostgreSQL)", f"per stale run, {label}", "ms",
            Figure.of(v / stale for v in seconds).scaled(1000)),
    ]
    return rows, {"sweep_postgres_seconds": {f"{total}/{stale}": seconds}}
