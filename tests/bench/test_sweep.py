"""The sweep's statements search indexes (EXPLAIN QUERY PLAN), and the sweep rows say so."""

from __future__ import annotations

from pathlib import Path

from bench.fill import HEARTBEAT_TIMEOUT_S, POLICY, fill
from bench.sweep import explain_sweep, sweep_rows
from podflow.store.sqlite import SqliteStore
from podflow.sweep import sweep
from tests.conftest import T0
from tests.execution import FakeDispatcher


def test_every_statement_of_a_sweep_searches_an_index(tmp_path: Path) -> None:
    filled = fill(tmp_path / "runs.sqlite3", total=2000, stale=50, now=T0)
    store = SqliteStore(filled.path, heartbeat_timeout_s=HEARTBEAT_TIMEOUT_S, max_attempts=3)
    statements: list[str] = []
    conn = store._conn()
    conn.set_trace_callback(statements.append)
    broker = FakeDispatcher()
    broker.held = {message_id for _, message_id in filled.held(50)}
    try:
        sweep(store, now=T0, policy=POLICY, dispatcher=broker)
    finally:
        conn.set_trace_callback(None)
        store.close()
    plans = explain_sweep(statements, filled.path)
    verbs = sorted(plan["statement"].split()[0] for plan in plans)
    # the outbox and the runs awaiting a message, by status; 4 rules and mark_enqueued
    assert verbs == ["SELECT"] * 3 + ["UPDATE"] * 5
    assert all(plan["indexed"] for plan in plans), plans
    assert all(any(line.startswith("SEARCH runs USING") for line in plan["plan"]) for plan in plans)


def test_a_table_scan_is_reported_as_a_missed_target(tmp_path: Path) -> None:
    db = tmp_path / "scan.sqlite3"
    SqliteStore(db).close()
    plans = explain_sweep(["SELECT run_id FROM runs WHERE episode_name = 'x'"], db)
    assert plans[0]["indexed"] is False
    rows = sweep_rows({(1000, 10): [0.010, 0.012], (10_000, 10): [0.011, 0.013]}, plans)
    flat = next(row for row in rows if "stored (10 stale)" in row.figure_name)
    assert flat.met is True and flat.status == "met"
    scan = rows[-1]
    assert scan.met is False and scan.status == "MISSED" and "table scan" in scan.note
