"""SQLite-specific behaviour: several processes sharing one file, migrations, durability."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from podflow.errors import StoreError
from podflow.states import RunStatus
from podflow.store.sqlite import MIGRATIONS, SqliteStore
from podflow.timeutil import to_ms
from tests.conftest import T0, at, make_run
from tests.store.races import eight_processes_claim_one_run, eight_processes_race_finish_and_cancel


@pytest.mark.slow
def test_eight_processes_claiming_one_pending_run_let_exactly_one_attempt_win(tmp_path: Path) -> None:
    eight_processes_claim_one_run(("sqlite", str(tmp_path / "race.sqlite3")))


@pytest.mark.slow
def test_eight_processes_racing_finish_and_cancel_leave_exactly_one_terminal_state(tmp_path: Path) -> None:
    eight_processes_race_finish_and_cancel(("sqlite", str(tmp_path / "race.sqlite3")))


def test_runs_survive_closing_and_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "podflow.sqlite3"
    store = SqliteStore(path)
    run, _ = store.create_run(make_run())
    store.close()
    reopened = SqliteStore(path)
    assert reopened.get_run(run.run_id) == run
    reopened.close()


def test_the_file_uses_wal_and_records_its_schema_version(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "podflow.sqlite3")
    assert store.schema_version() == len(MIGRATIONS)
    conn = sqlite3.connect(tmp_path / "podflow.sqlite3")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    store.close()


def test_an_older_file_is_migrated_forward_on_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "podflow.sqlite3"
    SqliteStore(path).close()  # at version len(MIGRATIONS)
    added = ["CREATE TABLE extra (x INTEGER)"]
    monkeypatch.setattr("podflow.store.sqlite.migrations.MIGRATIONS", [*MIGRATIONS, added])
    store = SqliteStore(path)
    assert store.schema_version() == len(MIGRATIONS) + 1
    store._conn().execute("INSERT INTO extra VALUES (1)")
    store.close()


def test_a_file_from_a_newer_podflow_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "podflow.sqlite3"
    SqliteStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this podflow"):
        SqliteStore(path)


def test_an_unwritable_location_is_reported_as_unavailable(tmp_path: Path) -> None:
    from podflow.errors import StoreUnavailable

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreUnavailable):
        SqliteStore(blocker / "sub" / "podflow.sqlite3")


def test_each_thread_gets_its_own_connection(tmp_path: Path) -> None:
    import threading

    store = SqliteStore(tmp_path / "podflow.sqlite3")
    run, _ = store.create_run(make_run(T0))
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(id(store._conn()))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(seen)) == 3
    assert store.get_run(run.run_id) is not None
    store.close()


def _version_1_file(path: Path, runs: list) -> None:
    """A database as podflow wrote it before the counters (schema version 1)."""
    from podflow.store.sqlite.rows import RUN_COLUMNS, run_values

    conn = sqlite3.connect(path)
    for statement in MIGRATIONS[0]:
        conn.execute(statement)
    columns = RUN_COLUMNS.partition(", current_message_id")[0]  # schema 5 added it, and 6 the webhook's
    for run in runs:
        conn.execute(f"INSERT INTO runs ({columns}) VALUES ({', '.join('?' * 26)})", run_values(run)[:26])
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()


def test_a_version_1_file_gets_counters_counted_from_its_runs_then_kept_by_triggers(tmp_path: Path) -> None:
    from podflow.models import ErrorInfo

    path = tmp_path / "podflow.sqlite3"
    ended = {"started_at": at(0), "finished_at": at(90)}
    _version_1_file(
        path,
        [
            make_run(status=RunStatus.SUCCESS, **ended),
            make_run(status=RunStatus.FAILURE, error=ErrorInfo(type="worker_lost", message="m"), **ended),
            make_run(status=RunStatus.REVOKED, finished_at=at(3), message_id="m-revoked"),  # cancelled unstarted
            make_run(message_id="m-pending", enqueued_at=at(1), episode_name="Ältere Folge"),
            make_run(status=RunStatus.STARTED, attempt=2, started_at=at(0), heartbeat_at=at(0)),
        ],
    )
    store = SqliteStore(path)
    assert store.schema_version() == len(MIGRATIONS) == 8
    # schema 4 folded the names of the runs already there: search finds them
    from podflow.store.base import RunFilter

    assert [r.episode_name for r in store.list_runs(where=RunFilter(search="ält")).runs] == ["Ältere Folge"]
    # schema 5: a live run's current message is its first; an ended run's is of no use
    current = {str(r.status): r.current_message_id for r in store.list_runs().runs if r.message_id}
    assert current == {"PENDING": "m-pending", "REVOKED": None}
    # schema 7: every run stored before priorities is normal, and unscheduled
    assert {(r.priority, r.start_at) for r in store.list_runs().runs} == {("normal", None)}
    # schema 8: every attempt made so far counts toward max_attempts, as it did
    assert {str(r.status): r.attempts_counted for r in store.list_runs().runs}["STARTED"] == 2
    assert {r.attempts_counted for r in store.list_runs().runs if r.status is not RunStatus.STARTED} == {0}
    assert len(store.store_id) == 16 and SqliteStore(path).store_id == store.store_id  # made once
    stats = store.stats()
    assert stats.created == 5
    assert stats.finished == {RunStatus.SUCCESS: 1, RunStatus.FAILURE: 1, RunStatus.REVOKED: 1}
    assert stats.failed == {"worker_lost": 1}
    assert stats.durations[RunStatus.SUCCESS].count == 1 and stats.durations[RunStatus.SUCCESS].sum_s == 90.0
    assert dict(stats.durations[RunStatus.FAILURE].buckets)[120.0] == 1
    assert stats.durations[RunStatus.REVOKED].count == 0
    pending = store.list_runs(status=RunStatus.PENDING).runs[0]
    store.cancel(pending.run_id, now=at(5))
    assert store.stats().finished[RunStatus.REVOKED] == 2
    store.close()


def test_the_counters_change_in_the_statement_that_ends_the_run(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "podflow.sqlite3")
    run, _ = store.create_run(make_run())
    conn = store._conn()
    conn.execute("BEGIN")
    conn.execute("UPDATE runs SET status = 'REVOKED', finished_at = 1 WHERE run_id = ?", (run.run_id,))
    conn.execute("ROLLBACK")  # the run's change and the counter's are one
    assert store.stats().finished[RunStatus.REVOKED] == 0
    store.close()


def test_runs_finished_per_minute_are_read_from_the_finished_at_index(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "podflow.sqlite3")
    from podflow.store.sqlite.telemetry import FINISHED_PER_MINUTE

    plan = store._conn().execute(f"EXPLAIN QUERY PLAN {FINISHED_PER_MINUTE}", (0,)).fetchall()
    assert any("USING INDEX runs_finished" in row["detail"] for row in plan), [row["detail"] for row in plan]
    store.close()


def test_profile_timestamps_are_the_callers_now_not_the_databases_clock(tmp_path: Path) -> None:
    from podflow.profiles import BUNDLED_EPISODE_PROFILES

    path = tmp_path / "profiles.sqlite3"
    store = SqliteStore(path, heartbeat_timeout_s=60, max_attempts=3)
    first, second = BUNDLED_EPISODE_PROFILES[:2]
    store.seed_profiles([first], now=T0)
    store.create_profile(second, now=at(5))
    store.update_profile(first.model_copy(update={"description": "edited"}), now=at(9))
    store.close()
    with sqlite3.connect(path) as conn:
        rows = dict(conn.execute("SELECT name, updated_at FROM episode_profiles").fetchall())
    assert rows == {first.name: to_ms(at(9)), second.name: to_ms(at(5))}


@pytest.mark.parametrize(
    ("where", "leg", "index"),
    [
        ({}, None, "runs_created"),
        ({"status": "FAILURE"}, None, "runs_status_created"),
        ({"search": "episode 12"}, "name", "runs_name"),
        ({"search": "run_00"}, "id", "sqlite_autoindex_runs_1"),
        ({"episode_profile": "p7"}, None, "runs_episode_profile"),
        ({"speaker_profile": "s"}, None, "runs_speaker_profile"),
        ({"retry_of": "run_x"}, None, "runs_retry_of"),
    ],
)
@pytest.mark.parametrize("deep", [False, True], ids=["first page", "cursor page"])
def test_each_listing_query_searches_an_index(
    tmp_path: Path, where: dict[str, str], leg: str | None, index: str, deep: bool
) -> None:
    from podflow.store import listing, sql
    from podflow.store.base import RunFilter
    from podflow.store.sqlite.rows import RUN_COLUMNS

    store = SqliteStore(tmp_path / "podflow.sqlite3")
    for i in range(300):
        store.create_run(make_run(at(i), episode_name=f"Episode {i}", episode_profile=f"p{i % 50}"))
    store._conn().execute("ANALYZE")
    filt = RunFilter(**where)  # type: ignore[arg-type]
    after = (at(150), "run_" + "8" * 32) if deep else None
    statement = listing.listing_sql(filt, after, sql.SQLITE, RUN_COLUMNS, leg=leg)  # type: ignore[arg-type]
    params = listing.listing_params(filt, after, sql.SQLITE, 51, leg=leg)  # type: ignore[arg-type]
    plan = " | ".join(row["detail"] for row in store._conn().execute(f"EXPLAIN QUERY PLAN {statement}", params))
    if leg is not None:  # and the probe that chose that plan reads the same index alone
        probe = " | ".join(row["detail"] for row in store._conn().execute(
            f"EXPLAIN QUERY PLAN {listing.probe_sql(leg, sql.SQLITE)}", listing._leg_params(filt, leg)))  # type: ignore[arg-type]  # fmt: skip
        assert f"USING COVERING INDEX {index}" in probe, probe
    store.close()
    assert f"USING INDEX {index}" in plan or f"USING COVERING INDEX {index}" in plan, plan
    if index != "runs_created":
        assert "runs_created" not in plan, plan
    assert not re.search(r"SCAN runs($| \|)", plan), plan  # a table scan (SCAN ... USING INDEX walks an index)
    if leg is None and index != "runs_retry_of":  # in the index's order (a run has few retries)
        assert "TEMP B-TREE" not in plan, plan
    if deep and leg is None and index != "runs_retry_of":  # the cursor is a range of the index, not a filter
        assert "(created_at,run_id)<(?,?)" in plan, plan


def test_due_webhooks_are_claimed_through_their_partial_index(tmp_path: Path) -> None:
    from podflow.store import sql
    from podflow.store import transitions as t
    from podflow.store.sqlite.rows import RUN_COLUMNS

    store = SqliteStore(tmp_path / "podflow.sqlite3")
    for i in range(300):  # ended runs, a few of them with a webhook still due
        due = at(i) if i % 50 == 0 else None
        store.create_run(make_run(at(i), status=RunStatus.SUCCESS, callback_url="http://h/", webhook_due_at=due))
    store._conn().execute("ANALYZE")
    statement = sql.update_sql(t.WEBHOOK_CLAIM, sql.SQLITE, RUN_COLUMNS)
    params = sql.encode(t.WEBHOOK_CLAIM, sql.SQLITE, {"due_before": at(400), "lease_until": at(440)}, 8)
    plan = " | ".join(row["detail"] for row in store._conn().execute(f"EXPLAIN QUERY PLAN {statement}", params))
    store.close()
    assert "runs_webhook_due" in plan and not re.search(r"SCAN runs($| )", plan), plan


@pytest.mark.parametrize("leg", ["name", "id"])
def test_a_common_search_walks_the_listing_order_instead_of_sorting_its_matches(tmp_path: Path, leg: str) -> None:
    from podflow.store import listing, sql
    from podflow.store.base import RunFilter
    from podflow.store.sqlite.rows import RUN_COLUMNS

    store = SqliteStore(tmp_path / "podflow.sqlite3")
    store.create_run(make_run(T0))
    filt = RunFilter(search="run_" if leg == "id" else "episode")
    statement = listing.listing_sql(filt, None, sql.SQLITE, RUN_COLUMNS, leg=leg, walk=True)  # type: ignore[arg-type]
    params = listing.listing_params(filt, None, sql.SQLITE, 51, leg=leg)  # type: ignore[arg-type]
    plan = " | ".join(row["detail"] for row in store._conn().execute(f"EXPLAIN QUERY PLAN {statement}", params))
    store.close()
    assert "USING INDEX runs_created" in plan and "TEMP B-TREE" not in plan, plan


def test_retention_reads_the_finished_index(tmp_path: Path) -> None:
    from podflow.store import sql

    store = SqliteStore(tmp_path / "podflow.sqlite3")  # no ANALYZE: a store as it runs, without statistics
    for i in range(50):
        run, _ = store.create_run(make_run(at(i)))
        store.cancel(run.run_id, now=at(i))
    plan = " | ".join(row["detail"] for row in store._conn().execute(
        f"EXPLAIN QUERY PLAN {sql.ended_before_sql(sql.SQLITE)}", {"before": 0, "limit": 1000}))  # fmt: skip
    store.close()
    assert "USING INDEX runs_finished" in plan and "TEMP B-TREE" not in plan, plan
