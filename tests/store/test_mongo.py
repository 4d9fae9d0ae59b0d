"""MongoDB-specific behaviour (on mongomock): the counters document, and fields added since."""

from __future__ import annotations

import logging

import mongomock
import pytest
from pymongo.errors import AutoReconnect

from podflow.models import ErrorInfo
from podflow.states import RunStatus
from podflow.store.mongo import MongoStore
from tests.conftest import at, make_run


def _store(client: mongomock.MongoClient) -> MongoStore:
    return MongoStore(client=client, database="podflow_test", heartbeat_timeout_s=60, max_attempts=3)


def test_a_database_without_counters_gets_them_counted_from_its_runs_on_open() -> None:
    client = mongomock.MongoClient(tz_aware=True)
    store = _store(client)
    done, _ = store.create_run(make_run())
    attempt = store.claim(done.run_id, now=at(0))
    store.finish(done.run_id, attempt, status=RunStatus.FAILURE, now=at(20), error=ErrorInfo(type="boom", message="m"))
    store.create_run(make_run())
    before = store.stats()
    store.stats_collection.delete_many({})  # as a database from before the counters
    reopened = _store(client)
    assert reopened.stats() == before
    assert before.created == 2 and before.failed == {"boom": 1} and before.durations[RunStatus.FAILURE].sum_s == 20.0


def test_a_failed_counter_update_never_fails_the_transition(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = _store(mongomock.MongoClient(tz_aware=True))
    run, _ = store.create_run(make_run())

    def down(*args: object, **kwargs: object) -> None:
        raise AutoReconnect("connection reset")

    monkeypatch.setattr(store.stats_collection, "update_one", down)
    with caplog.at_level(logging.WARNING, logger="podflow.store.mongo"):
        revoked = store.cancel(run.run_id, now=at(1))
    assert revoked is not None and revoked.status is RunStatus.REVOKED
    assert "counters not updated (finished:REVOKED)" in caplog.text
    assert store.stats().finished[RunStatus.REVOKED] == 0  # best effort: that increment is lost


def test_runs_stored_before_attempts_counted_count_every_attempt_made_on_open() -> None:
    client = mongomock.MongoClient(tz_aware=True)
    store = _store(client)
    run, _ = store.create_run(make_run())
    for attempt in (1, 2):  # attempt 1 released for a retry, attempt 2 holds it
        assert store.claim(run.run_id, now=at(attempt)) == attempt
        if attempt == 1:
            assert store.release(run.run_id, 1, error=ErrorInfo(type="boom", message="m"), now=at(1))
    store.release(run.run_id, 2, error=ErrorInfo(type="boom", message="m"), now=at(3))
    store.runs.update_many({}, {"$unset": {"attempts_counted": ""}})  # as a database from before the field
    reopened = _store(client)
    assert reopened.get_run(run.run_id).attempts_counted == 2
    assert reopened.claim(run.run_id, now=at(4)) == 3  # the third and last of max_attempts
    assert reopened.release(run.run_id, 3, error=ErrorInfo(type="boom", message="m"), now=at(5))
    assert reopened.claim(run.run_id, now=at(6)) is None
