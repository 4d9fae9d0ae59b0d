"""The bulk filler writes rows the store reads back, and that the sweep handles exactly."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from bench.fill import HEARTBEAT_TIMEOUT_S, POLICY, STALE_KINDS, fill
from podflow.states import RunStatus
from podflow.store.sqlite import SqliteStore
from podflow.sweep import sweep
from tests.conftest import T0
from tests.execution import FakeDispatcher

TOTAL, STALE = 400, 30


@pytest.fixture
def filled(tmp_path: Path):
    return fill(tmp_path / "runs.sqlite3", total=TOTAL, stale=STALE, now=T0)


@pytest.fixture
def store(filled):
    store = SqliteStore(filled.path, heartbeat_timeout_s=HEARTBEAT_TIMEOUT_S, max_attempts=3)
    yield store
    store.close()


def _all_runs(store: SqliteStore) -> list:
    runs, cursor = [], None
    while True:
        page = store.list_runs(limit=200, cursor=cursor)
        runs += page.runs
        if page.next_cursor is None:
            return runs
        cursor = page.next_cursor


def test_every_filled_row_reads_back_as_a_valid_run(filled, store: SqliteStore) -> None:
    runs = _all_runs(store)  # each row parsed into the Run model, history included
    assert len(runs) == TOTAL == sum(store.count_by_status().values())
    assert len({run.run_id for run in runs}) == TOTAL
    assert all(run.history and run.history[0].reason == "created" for run in runs)
    assert all(run.history[-1].status is run.status for run in runs)
    statuses = Counter(run.status for run in runs)
    assert statuses[RunStatus.SUCCESS] > TOTAL / 2 and statuses[RunStatus.STARTED] > 0
    one = runs[0]
    assert store.get_run(one.run_id) == one
    assert store.get_run_by_message_id(one.message_id).run_id == one.run_id


def test_the_sweep_touches_exactly_the_staged_stale_runs(filled, store: SqliteStore) -> None:
    for stale in (STALE, 10, 0):
        expected = filled.stage(stale)
        assert sum(expected.values()) == stale
        broker = FakeDispatcher()
        broker.held = {message_id for _, message_id in filled.held(stale)}
        assert None not in broker.held and len(broker.held) == 2 * stale // len(STALE_KINDS)
        report = sweep(store, now=T0, policy=POLICY, dispatcher=broker)
        assert {kind: getattr(report, kind) for kind in STALE_KINDS} == expected and report.requeued == 0
        assert sweep(store, now=T0, policy=POLICY, dispatcher=broker).total == 0
        assert sum(store.count_by_status().values()) == TOTAL


def test_staging_restores_the_candidates_rows_as_filled(filled) -> None:
    def rows() -> list[tuple]:
        with sqlite3.connect(filled.path) as conn:
            return conn.execute("SELECT * FROM runs ORDER BY run_id").fetchall()

    before = rows()
    filled.stage(5)
    filled.stage(STALE)
    assert rows() == before
    history = json.loads(before[0][filled.columns.index("history")])
    assert {"status", "at", "attempt", "reason"} <= set(history[0])


def test_the_filler_writes_only_fresh_files_and_a_sane_stale_count(tmp_path: Path, filled) -> None:
    with pytest.raises(FileExistsError):
        fill(filled.path, total=10, stale=1, now=T0)
    with pytest.raises(ValueError):
        fill(tmp_path / "other.sqlite3", total=10, stale=11, now=T0)
    with pytest.raises(ValueError):
        filled.stage(STALE + 1)


def test_runs_filled_after_shows_are_found_by_their_show_s_name(tmp_path: Path) -> None:
    from bench.bigstore import _show
    from podflow.store.base import RunFilter

    filled = fill(tmp_path / "named.sqlite3", total=TOTAL, stale=0, now=T0, shows=_show)
    store = SqliteStore(filled.path, heartbeat_timeout_s=HEARTBEAT_TIMEOUT_S, max_attempts=3)
    try:
        runs = _all_runs(store)
        shown = [r for r in runs if r.episode_name.startswith("Show 07 #")]
        assert len(runs) == TOTAL and 0 < len(shown) < TOTAL / 10
        found = store.list_runs(limit=TOTAL, where=RunFilter(search="show 07 #")).runs
        assert [r.run_id for r in found] == [r.run_id for r in shown]  # both newest first
    finally:
        store.close()
