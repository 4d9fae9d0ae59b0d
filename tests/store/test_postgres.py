"""PostgreSQL-specific behaviour on a real server: processes sharing one database,
migrations under an advisory lock, exact counters, the sweep's indexes."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from podflow.errors import StoreError, StoreUnavailable
from podflow.models import ErrorInfo
from podflow.states import RunStatus
from podflow.store import listing, sql
from podflow.store import transitions as t
from podflow.store.base import RunFilter
from podflow.store.postgres import MIGRATIONS, PostgresStore
from podflow.store.postgres.rows import RUN_COLUMNS
from podflow.store.postgres.runs import LIST_OUTBOX, WALK
from podflow.store.postgres.telemetry import FINISHED_PER_MINUTE
from tests.conftest import T0, at, make_run
from tests.postgres import scratch_database, truncate
from tests.store.races import eight_processes_claim_one_run, eight_processes_race_finish_and_cancel


@pytest.fixture
def url(postgres_url: str) -> Iterator[str]:
    """This module's database, emptied after each test."""
    yield postgres_url
    truncate(postgres_url)


@pytest.fixture
def store(url: str) -> Iterator[PostgresStore]:
    store = PostgresStore(url, heartbeat_timeout_s=60, max_attempts=3, pool_size=2)
    yield store
    store.close()


def test_the_checked_insert_casts_each_run_column_to_its_type(store: PostgresStore, url: str) -> None:
    # a SELECT list does not take the target column's type as VALUES does: a column
    # added to runs that is not text needs its cast in postgres/runs.py's _TYPES
    from podflow.store.postgres.runs import _TYPES

    with psycopg.connect(url) as conn:
        types = dict(conn.execute(
            "SELECT column_name, udt_name FROM information_schema.columns WHERE table_name = 'runs'"
        ).fetchall())  # fmt: skip
    spelled = {"int4": "integer", "bool": "boolean", "jsonb": "jsonb", "timestamptz": "timestamptz", "text": "text"}
    for column in (c.strip() for c in RUN_COLUMNS.split(",")):
        assert _TYPES.get(column, "text") == spelled[types[column]], column


@pytest.mark.slow
def test_eight_processes_claiming_one_pending_run_let_exactly_one_attempt_win(url: str) -> None:
    eight_processes_claim_one_run(("postgres", url))


@pytest.mark.slow
def test_eight_processes_racing_finish_and_cancel_leave_exactly_one_terminal_state(url: str) -> None:
    eight_processes_race_finish_and_cancel(("postgres", url))


def _open(url: str, barrier: Any, results: Any) -> None:
    barrier.wait()
    try:
        store = PostgresStore(url, pool_size=1)
        results.put((store.schema_version(), store.store_id))
        store.close()
    except Exception as exc:  # reported to the parent, which fails the test
        results.put(repr(exc))


@pytest.mark.slow
def test_processes_starting_at_once_on_a_new_database_migrate_it_exactly_once() -> None:
    with scratch_database("migrate") as fresh:
        ctx = multiprocessing.get_context("spawn")
        barrier, results = ctx.Barrier(6), ctx.Queue()
        procs = [ctx.Process(target=_open, args=(fresh, barrier, results)) for _ in range(6)]
        for p in procs:
            p.start()
        outcomes = [results.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(timeout=30)
        assert [version for version, _ in outcomes] == [len(MIGRATIONS)] * 6
        assert len({store_id for _, store_id in outcomes}) == 1  # one identity, made once
        with psycopg.connect(fresh) as conn:
            rows = conn.execute("SELECT key, value FROM meta ORDER BY key").fetchall()
            assert rows == [("schema_version", str(len(MIGRATIONS))), ("store_id", outcomes[0][1])]


def test_a_database_from_a_newer_podflow_is_refused(url: str) -> None:
    PostgresStore(url).close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE meta SET value = %s WHERE key = 'schema_version'", (str(len(MIGRATIONS) + 1),))
    try:
        with pytest.raises(StoreError, match="newer than this podflow"):
            PostgresStore(url)
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("UPDATE meta SET value = %s WHERE key = 'schema_version'", (str(len(MIGRATIONS)),))


def test_an_unreachable_server_is_unavailable_at_open() -> None:
    with pytest.raises(StoreUnavailable, match="PostgreSQL unavailable"):
        PostgresStore("postgresql://postgres@127.0.0.1:1/none", connect_timeout_s=1)


def test_the_counters_change_in_the_transaction_that_ends_the_run(store: PostgresStore, url: str) -> None:
    run, _ = store.create_run(make_run())
    with psycopg.connect(url) as conn:  # one transaction, rolled back
        conn.execute("UPDATE runs SET status = 'REVOKED', finished_at = now() WHERE run_id = %s", (run.run_id,))
        inside = dict(conn.execute("SELECT name, value FROM stats").fetchall())
        conn.rollback()
    assert inside["finished:REVOKED"] == 1
    assert store.stats().finished[RunStatus.REVOKED] == 0 and store.stats().created == 1


def _fill(url: str, live: int = 200, ended: int = 20_000) -> None:
    """A table the planner takes seriously: mostly ended runs, a few live ones of each kind."""
    values = (
        "'run_' || md5(i::text || %(tag)s), %(status)s, 'p' || (i %% 50), 's', 'episode ' || i, 'episode ' || i,"
        " '[]'::jsonb, 'queue', 1,"
        " %(t0)s + i * interval '1 ms', %(t0)s, %(started)s, %(finished)s, %(started)s,"
        " %(outbox)s, %(enqueued)s, '[]'::jsonb"
    )
    insert = (
        "INSERT INTO runs (run_id, status, episode_profile, speaker_profile, episode_name, name_key, source_ids, mode,"
        " attempt, created_at, updated_at, started_at, finished_at, heartbeat_at, outbox_at, enqueued_at, history)"
        f" SELECT {values} FROM generate_series(1, %(n)s) AS i"
    )
    with psycopg.connect(url, autocommit=True) as conn:
        for tag, status, n, started, finished, outbox, enqueued in [
            ("ended", "SUCCESS", ended, T0, at(60), None, T0),
            ("started", "STARTED", live, T0, None, None, T0),
            ("outbox", "PENDING", live, None, None, T0, None),
            ("enqueued", "PENDING", live, None, None, None, T0),
        ]:
            conn.execute(
                insert,
                {"tag": tag, "status": status, "n": n, "t0": T0, "started": started, "finished": finished,
                 "outbox": outbox, "enqueued": enqueued},
            )
        conn.execute("ANALYZE runs")


#: every statement the sweep runs, with its parameters
_SWEEP = {
    write.name: (
        sql.update_sql(write, sql.POSTGRES, RUN_COLUMNS),
        sql.encode(
            write,
            sql.POSTGRES,
            {"cutoff": at(30), "now": at(100), "error": ErrorInfo(type="x", message="y"), "reason": "r",
             "max_attempts": 3},
            limit=1000,
        ),
    )
    for write in (t.TIME_LIMIT, t.WORKER_LOST, t.RELEASE_LOST, t.EXPIRED)
} | {
    "list_outbox": (LIST_OUTBOX, {"cutoff": at(30), "limit": 1000}),
    "finished_per_minute": (FINISHED_PER_MINUTE, {"since": at(3600)}),
} | {
    f"list_awaiting:{status}": (
        sql.page_sql(t.AWAITING[status], t.AWAITING_SINCE[status], sql.POSTGRES),
        sql.page_params(t.AWAITING[status], sql.POSTGRES, {"cutoff": at(30)}, (T0, ""), 1000),
    )
    for status in t.AWAITING
}


@pytest.fixture(scope="module")
def filled() -> Iterator[str]:
    """A database of its own, filled once for every plan below."""
    with scratch_database("plans") as url:
        PostgresStore(url).close()
        _fill(url)
        yield url


@pytest.mark.parametrize("name", list(_SWEEP))
def test_each_sweep_statement_reads_an_index_not_the_table(filled: str, name: str) -> None:
    statement, params = _SWEEP[name]
    with psycopg.connect(filled) as conn:  # EXPLAIN only plans; the rollback undoes nothing
        plan = "\n".join(row[0] for row in conn.execute(f"EXPLAIN {statement}", params).fetchall())
        conn.rollback()
    assert "Index" in plan and "Seq Scan on runs" not in plan, plan
    # a bulk write looks its batch up once, never rescans it per candidate row
    assert "Nested Loop" not in plan, plan


_LISTINGS = {
    "first page": (RunFilter(), None, "runs_created"),
    "status": (RunFilter(status=RunStatus.FAILURE), None, "runs_status_created"),
    "search by name": (RunFilter(search="Episode 1234"), "name", "runs_name"),
    "search by id": (RunFilter(search="run_00"), "id", "runs_id_prefix"),
    "episode profile": (RunFilter(episode_profile="p7"), None, "runs_episode_profile"),
    "retries of a run": (RunFilter(retry_of="run_x"), None, "runs_retry_of"),
    "failed, by error type": (RunFilter(status=RunStatus.FAILURE, error_type="worker_lost"), None,
                              "runs_status_created"),
}


def _reads(index: str, plan: str) -> bool:
    """Whether ``plan`` reads ``index`` (an index scan, or a bitmap one)."""
    return f"using {index}" in plan or f"Index Scan on {index}" in plan


@pytest.mark.parametrize("deep", [False, True], ids=["first page", "cursor page"])
@pytest.mark.parametrize("name", list(_LISTINGS))
def test_each_listing_query_reads_an_index_not_the_table(filled: str, name: str, deep: bool) -> None:
    where, leg, index = _LISTINGS[name]
    after = (at(10), "run_" + "8" * 32) if deep else None
    statement = listing.listing_sql(where, after, sql.POSTGRES, RUN_COLUMNS, leg=leg)
    params = listing.listing_params(where, after, sql.POSTGRES, 51, leg=leg)
    with psycopg.connect(filled) as conn:
        plan = "\n".join(row[0] for row in conn.execute(f"EXPLAIN {statement}", params).fetchall())
        if leg is not None:  # and the probe that chose that plan reads that index alone
            probe_params = listing._leg_params(where, leg)
            probe = "\n".join(row[0] for row in conn.execute(
                f"EXPLAIN {listing.probe_sql(leg, sql.POSTGRES)}", probe_params).fetchall())  # fmt: skip
            assert _reads(index, probe) and "Seq Scan" not in probe, probe
    assert _reads(index, plan) and "Seq Scan on runs" not in plan, plan
    if deep and leg is None and index != "runs_retry_of":
        # the cursor is a range of the index (a filter would read every newer run)
        assert "Index Cond: " in plan and "ROW(created_at, run_id) <" in plan.split("Index Cond: ", 1)[1], plan
    if index != "runs_created":  # an index of the filter, not the listing order's read through with a filter
        assert "runs_created" not in plan, plan


@pytest.mark.parametrize("leg", ["name", "id"])
def test_a_common_search_walks_the_listing_order_instead_of_sorting_its_matches(filled: str, leg: str) -> None:
    where = RunFilter(search="episode" if leg == "name" else "run_")
    statement = listing.listing_sql(where, None, sql.POSTGRES, RUN_COLUMNS, leg=leg, walk=True)  # type: ignore[arg-type]
    with psycopg.connect(filled) as conn:  # in the store's transaction for it
        conn.execute(WALK)
        plan = "\n".join(row[0] for row in conn.execute(
            f"EXPLAIN {statement}", listing.listing_params(where, None, sql.POSTGRES, 51, leg=leg)).fetchall())  # type: ignore[arg-type]  # fmt: skip
    assert _reads("runs_created", plan) and "Sort" not in plan, plan


def test_retention_reads_the_finished_index(filled: str) -> None:
    with psycopg.connect(filled) as conn:
        plan = "\n".join(row[0] for row in conn.execute(
            f"EXPLAIN {sql.ended_before_sql(sql.POSTGRES)}", {"before": at(30), "limit": 1000}).fetchall())  # fmt: skip
    assert _reads("runs_finished", plan) and "Seq Scan" not in plan, plan


def test_a_version_1_database_gets_its_runs_name_keys_from_the_migration() -> None:
    with scratch_database("schema1") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL)")
            for statement in MIGRATIONS[0]:
                conn.execute(statement)  # type: ignore[arg-type]
            conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
            run = make_run(episode_name="Ältere Folge", status=RunStatus.STARTED, attempt=2, started_at=at(0))
            from podflow.store.postgres.rows import run_values

            listed = RUN_COLUMNS.partition(", current_message_id")[0]  # schema 3 added it, and 4 the webhook's
            columns = listed.replace(" ", "").split(",")
            values = {c: v for c, v in run_values(run).items() if c in columns}
            conn.execute(f"INSERT INTO runs ({listed}) VALUES ({', '.join(f'%({c})s' for c in columns)})", values)
        store = PostgresStore(url, pool_size=1)
        try:
            assert store.schema_version() == len(MIGRATIONS) == 6
            assert [r.run_id for r in store.list_runs(where=RunFilter(search="ält")).runs] == [run.run_id]
            # schema 6: every attempt made so far counts toward max_attempts, as it did
            assert store.get_run(run.run_id).attempts_counted == 2
        finally:
            store.close()
