"""What a no-op run costs the store, counted statement by statement (not timed), on each SQL backend.

Issue 18's targets: to submit, one durable write (the run and its outbox marker in
one insert, which also checks the profiles and sources it names) plus a share of
one batched confirmation; to execute, one claim that returns everything the
runner needs and one finish. Reads: none, once a process has met the profiles.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from podflow.lifecycle import submit
from podflow.store.base import Store
from podflow.timeutil import utcnow
from tests.conftest import open_test_store
from tests.execution import request, seed
from tests.statements import NullDispatcher, counting, noop_runs

RUNS = 20


@pytest.fixture(params=["sqlite", "postgres"])
def sql_store(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> Iterator[Store]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else ""
    store = open_test_store(request.param, tmp_path, postgres_url=url)
    yield seed(store)
    store.close()
    if request.param == "postgres":
        from tests.postgres import truncate

        truncate(url)


def test_a_noop_run_costs_one_insert_and_a_share_of_a_confirmation_to_submit(sql_store: Store, tmp_path: Path) -> None:
    counted = noop_runs(sql_store, tmp_path, runs=RUNS)["submit"]
    assert counted.reads == 0, counted
    assert counted.writes <= RUNS + 1, counted  # an insert each, and one confirmation for them all
    assert sum(s.startswith("INSERT INTO runs") for s in counted.texts) == RUNS


def test_a_noop_run_costs_one_claim_and_one_finish_to_execute(sql_store: Store, tmp_path: Path) -> None:
    counted = noop_runs(sql_store, tmp_path, runs=RUNS)["execute"]
    assert (counted.reads, counted.writes) == (0, 2 * RUNS), counted


def test_a_process_reads_the_profiles_a_request_names_once(sql_store: Store, tmp_path: Path) -> None:
    counted = noop_runs(sql_store, tmp_path, runs=RUNS, warm=False)["submit"]
    assert counted.reads <= 3, counted  # the two profiles and the sources, for the first submit only
    assert counted.writes <= RUNS + 1, counted


def test_a_submit_with_an_idempotency_key_confirms_its_send_at_once(sql_store: Store) -> None:
    dispatcher = NullDispatcher()
    submit(sql_store, dispatcher, request("warm-up"), now=utcnow())
    with counting(sql_store) as counted:
        run = submit(sql_store, dispatcher, request("keyed"), now=utcnow(), idempotency_key="k-1").run
    assert (counted.reads, counted.writes) == (0, 2), counted
    assert sql_store.get_run(run.run_id).enqueued_at is not None  # a replay finds the hand-over done
