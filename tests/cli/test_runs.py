"""``podflow runs list|show|cancel|retry``, straight on the store (and the broker to retry)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from podflow.cli import main
from podflow.exitcodes import RET_FAILED_RUN, RET_UNAVAILABLE
from podflow.models import ErrorInfo, Run
from podflow.states import RunStatus
from podflow.store.sqlite import SqliteStore
from tests.conftest import T0, at
from tests.execution import request, seed
from tests.servers import free_port


@pytest.fixture
def store(podflow_env: Callable[..., Path], redis_url: str) -> Iterator[SqliteStore]:
    """The store ``podflow`` will open (queue mode on the private redis), seeded."""
    data_dir = podflow_env(PODFLOW_BROKER_URL=redis_url)
    store = seed(SqliteStore(data_dir / "podflow.sqlite3"))
    yield store
    store.close()


def add(store: SqliteStore, name: str, now=T0) -> str:
    run = Run.new(request(name), now=now)
    store.create_run(run)
    return run.run_id


def failed(store: SqliteStore, name: str = "broken") -> str:
    run_id = add(store, name)
    attempt = store.claim(run_id, now=at(1))
    error = ErrorInfo(type="ValueError", message="boom")
    store.finish(run_id, attempt, status=RunStatus.FAILURE, now=at(2), error=error)
    return run_id


def test_list_shows_runs_newest_first_filtered_and_limited(
    store: SqliteStore, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second, third = add(store, "one", at(1)), add(store, "two", at(2)), failed(store)
    assert main(["runs", "list", "--limit", "2", "--json"]) == 0
    page = json.loads(capsys.readouterr().out)
    assert [r["run_id"] for r in page["runs"]] == [second, first] and page["next_cursor"]
    assert main(["runs", "list", "--status", "failure"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["run_id", "status", "attempt", "age", "episode", "detail"]
    assert len(out) == 2 and out[1].startswith(f"{third}  FAILURE") and "ValueError: boom" in out[1]


def test_list_refuses_an_unknown_status(store: SqliteStore, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["runs", "list", "--status", "DONE"])
    assert "must be one of PENDING, STARTED, SUCCESS, FAILURE, REVOKED" in capsys.readouterr().err


def test_show_prints_the_run_with_its_history(store: SqliteStore, capsys: pytest.CaptureFixture[str]) -> None:
    run_id = failed(store)
    assert main(["runs", "show", run_id]) == 0
    out = capsys.readouterr().out
    fields = dict(line.split(maxsplit=1) for line in out.split("history:\n")[0].splitlines())
    assert fields["run_id"] == run_id and fields["error"] == "ValueError: boom"
    assert fields["finished"] == at(2).isoformat()
    history = out.split("history:\n")[1].splitlines()
    assert [line.split()[1] for line in history[1:]] == ["PENDING", "STARTED", "FAILURE"]
    assert main(["runs", "show", run_id, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "FAILURE"


def test_show_of_an_unknown_run_exits_1_with_one_line(store: SqliteStore, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "show", "run_" + "0" * 32]) == RET_FAILED_RUN
    assert capsys.readouterr().err == f"podflow: run 'run_{'0' * 32}' not found\n"


def test_cancel_revokes_a_pending_run_and_refuses_a_finished_one(
    store: SqliteStore, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = add(store, "noop")
    assert main(["runs", "cancel", run_id]) == 0
    assert capsys.readouterr().out == f"{run_id}: REVOKED\n"
    assert store.get_run(run_id).history[-1].reason == "cancelled by podflow runs cancel"
    assert main(["runs", "cancel", run_id]) == RET_FAILED_RUN
    assert capsys.readouterr().err == "podflow: cannot cancel: run is already REVOKED\n"


def test_retry_submits_a_new_run_and_enqueues_it(
    store: SqliteStore, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    original = failed(store)
    assert main(["runs", "retry", original]) == 0
    new_id, rest = capsys.readouterr().out.split(": ", 1)
    assert rest == f"PENDING (retry of {original})\n"
    new = store.get_run(new_id)
    assert new.retry_of == original and new.enqueued_at is not None and new.outbox_at is None
    assert redis.Redis.from_url(redis_url).llen("dramatiq:podcast") == 1


def test_retry_of_a_run_that_is_not_finished_badly_exits_1(
    store: SqliteStore, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["runs", "retry", add(store, "noop")]) == RET_FAILED_RUN
    assert "only FAILURE or REVOKED runs are retried" in capsys.readouterr().err


def test_retry_with_the_broker_down_records_the_run_and_exits_69(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PODFLOW_BROKER_URL", f"redis://127.0.0.1:{free_port()}/0")
    original = failed(store)
    assert main(["runs", "retry", original]) == RET_UNAVAILABLE
    new_id = capsys.readouterr().out.split(":")[0]
    new = store.get_run(new_id)
    assert new.status is RunStatus.PENDING and new.outbox_at is not None and new.enqueue_error  # the sweep sends it


def test_retry_in_thread_mode_leaves_the_run_for_the_api_process(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PODFLOW_MODE", "thread")
    assert main(["runs", "retry", failed(store)]) == 0
    new_id = capsys.readouterr().out.split(":")[0]
    new = store.get_run(new_id)
    assert new.mode == "thread" and new.outbox_at is not None and new.enqueue_error is None
