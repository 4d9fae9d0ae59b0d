"""Benchmark 4: the cost of one sweep, against runs stored and runs stale.

For each (stored, stale) point a store file is filled (:mod:`bench.fill`; one
file per stored count, the stale count is staged before each sweep). What is
timed is one ``podflow.sweep.sweep(store, now=..., policy=..., dispatcher=...)``
call on a warm file, with a real ``QueueDispatcher`` on the private Redis holding
the stale runs' messages (a dead worker's, one queued for days): the failing
rules' bulk updates, the release of lost runs, the sending of the outbox (one
broker send and one store write each), and the lost-message check (the runs
waiting for a message, read in pages; the queue's message names, read once).
Every sweep must touch exactly the staged stale runs, or the benchmark fails.

The time per stale run shows what a sweep costs; the ratio of two points with
the same stale count and 10x the stored runs shows it does not grow with the
store ("flat": at most 1.5x). The statements a sweep runs are captured with
SQLite's trace callback and ``EXPLAIN QUERY PLAN``-ed: each must search an
index, never scan the table.
"""

from __future__ import annotations

import re
import sqlite3
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import redis

from podflow.dispatch.queue import QueueDispatcher
from podflow.settings import load_settings
from podflow.store.sqlite import SqliteStore
from podflow.sweep import SweepReport, sweep
from podflow.timeutil import utcnow
from podflow.worker.broker import build_broker

from .fill import HEARTBEAT_TIMEOUT_S, MAX_ATTEMPTS, POLICY, Filled, fill
from .report import Row
from .scale import Scale
from .stats import Figure, format_value
from .systems import BenchError

__all__ = ["FLAT_TARGET", "explain_sweep", "measure", "sweep_rows"]

#: a sweep over 10x the stored runs (same stale count) may take at most this much longer
FLAT_TARGET = 1.5
_LITERALS = re.compile(r"'(?:[^']|'')*'|\b\d+\b")
_TABLE_SCAN = re.compile(r"^SCAN runs\b")
_QUERIES = ("SELECT", "UPDATE", "DELETE")


@dataclass
class _Bench:
    filled: Filled
    store: SqliteStore
    dispatcher: QueueDispatcher
    redis: redis.Redis
    #: the time of the fill, and of every sweep: the staged runs stay exactly as stale
    now: datetime

    def sweep_once(self, stale: int, *, trace: Callable[[str], None] | None = None) -> float:
        expected = self.filled.stage(stale)
        self.redis.flushdb()  # the sweep's messages from the last repetition
        for run_id, message_id in self.filled.held(stale):  # what the broker holds for the stale runs
            self.dispatcher.send(run_id, message_id)
        conn = self.store._conn()  # the store's own connection: the only way to see its statements
        conn.set_trace_callback(trace)
        try:
            began = time.perf_counter()
            report = sweep(self.store, now=self.now, policy=POLICY, dispatcher=self.dispatcher)
            seconds = time.perf_counter() - began
        finally:
            conn.set_trace_callback(None)
        _check(report, expected, self.filled)
        return seconds


def _check(report: SweepReport, expected: dict[str, int], filled: Filled) -> None:
    got = {kind: getattr(report, kind) for kind in expected}
    if got != expected or report.send_errors:
        raise BenchError(f"sweep of {filled.path} touched {report.as_dict()}, expected {expected}")


def _label(shape: str) -> str:
    """A statement's verb and its WHERE clause: what tells the sweep's statements apart."""
    head, where, tail = shape.partition(" WHERE ")
    label = f"{' '.join(head.split()[:3])} … WHERE {tail}" if where else shape
    return label if len(label) <= 200 else label[:199] + "…"


def explain_sweep(statements: Sequence[str], path: Path) -> list[dict[str, Any]]:
    """``EXPLAIN QUERY PLAN`` of each distinct statement (by shape) that reads or writes ``runs``."""
    seen: set[str] = set()
    plans = []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        for sql in statements:
            shape = _LITERALS.sub("?", sql)
            if shape in seen or " runs" not in sql or not sql.lstrip().upper().startswith(_QUERIES):
                continue
            seen.add(shape)
            lines = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}")]
            plans.append({
                "statement": _label(shape),
                "plan": lines,
                "indexed": not any(_TABLE_SCAN.match(line) for line in lines),
            })
    finally:
        conn.close()
    return plans


def measure(
    scale: Scale, work_dir: Path, redis_url: str, log: Callable[[str], None]
) -> tuple[list[Row], dict[str, object]]:
    by_total: dict[int, int] = {}
    for total, stale in scale.sweep_points:
        by_total[total] = max(stale, by_total.get(total, 0))
    seconds: dict[tuple[int, int], list[float]] = {}
    plans: list[dict[str, Any]] = []
    now = utcnow()
    client = redis.Redis.from_url(redis_url)
    dispatcher = QueueDispatcher(broker=build_broker(load_settings(env_file=None, broker_url=redis_url)))
    try:
        for total, capacity in by_total.items():
            began = time.perf_counter()
            filled = fill(work_dir / f"sweep-{total}.sqlite3", total=total, stale=capacity, now=now)
            log(f"sweep: filled {total:,} runs ({capacity:,} stale candidates) in {time.perf_counter() - began:.1f} s")
            store = SqliteStore(filled.path, heartbeat_timeout_s=HEARTBEAT_TIMEOUT_S, max_attempts=MAX_ATTEMPTS)
            bench = _Bench(filled, store, dispatcher, client, now)
            try:
                for point in scale.sweep_points:
                    if point[0] != total:
                        continue
                    # untimed: warms the page cache, the broker's scripts, the connections, and
                    # lets the disk absorb a restaging of many candidates (1M runs: 10k -> 1k)
                    bench.sweep_once(point[1])
                    seconds[point] = [bench.sweep_once(point[1]) for _ in range(scale.sweep_reps)]
                    log(f"sweep: {total:,} stored, {point[1]:,} stale: {sorted(seconds[point])}")
                if not plans:
                    statements: list[str] = []
                    bench.sweep_once(capacity, trace=statements.append)
                    plans = explain_sweep(statements, filled.path)
            finally:
                store.close()
            filled.path.unlink()
            for suffix in ("-wal", "-shm"):
                Path(f"{filled.path}{suffix}").unlink(missing_ok=True)
    finally:
        client.flushdb()
        client.close()
    return sweep_rows(seconds, plans), {"sweep_seconds": {f"{t}/{s}": v for (t, s), v in seconds.items()},
                                   "sweep_query_plans": plans}


def sweep_rows(seconds: dict[tuple[int, int], list[float]], plans: list[dict[str, Any]]) -> list[Row]:
    """The figures of each (stored, stale) point, the flatness ratio, and the plans' verdict."""
    rows = []
    for (total, stale), values in seconds.items():
        label = f"{format_value(total)} stored, {format_value(stale)} stale"
        rows.append(Row("Sweep cost", f"one sweep, {label}", "ms", Figure.of(values).scaled(1000)))
        per_run = Figure.of(v / stale for v in values).scaled(1000)
        rows.append(Row("Sweep cost", f"per stale run, {label}", "ms", per_run))
    by_stale: dict[int, list[int]] = {}
    for total, stale in seconds:
        by_stale.setdefault(stale, []).append(total)
    for stale, totals in by_stale.items():
        if len(totals) < 2:
            continue
        small, large = (seconds[(t, stale)] for t in (min(totals), max(totals)))
        # the ratio of the medians, between the most and least favourable pairs
        ratio = Figure(
            statistics.median(large) / statistics.median(small),
            min(large) / max(small),
            max(large) / min(small),
            min(len(large), len(small)),
        )
        rows.append(Row("Sweep cost", f"time at {format_value(max(totals))} / {format_value(min(totals))} stored "
                        f"({format_value(stale)} stale)", "x", ratio, f"<= {FLAT_TARGET} (flat)",
                        met=ratio.median <= FLAT_TARGET))
    if plans:
        scans = [p["statement"] for p in plans if not p["indexed"]]
        rows.append(Row("Sweep cost", f"sweep statements searching an index ({len(plans)} distinct)", "statements",
                        Figure.of([len(plans) - len(scans)]), f"all {len(plans)}", met=not scans,
                        note="see the query plans" if not scans else f"table scan: {scans[0]}"))
    return rows
