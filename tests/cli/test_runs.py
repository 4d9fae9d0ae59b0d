"""``podflow runs list|show|cancel|retry``, straight on the store (and the broker to retry)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from podflow.cli import main
from podflow.exitcodes import RET_FAILED_RUN, RET_REVOKED, RET_TIMEOUT, RET_UNAVAILABLE
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
    assert fields["finished"] == at(2).isoformat() and fields["attempt"] == "1"  # all counted: no note
    history = out.split("history:\n")[1].splitlines()
    assert [line.split()[1] for line in history[1:]] == ["PENDING", "STARTED", "FAILURE"]
    assert main(["runs", "show", run_id, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "FAILURE"


def test_show_says_how_many_attempts_count_when_a_stopped_worker_gave_one_back(
    store: SqliteStore, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = add(store, "restarted")
    assert store.claim(run_id, now=at(1)) == 1
    assert store.release(run_id, 1, error=None, now=at(2), reason="released: the worker stopped", counted=False)
    assert store.claim(run_id, now=at(3)) == 2
    assert main(["runs", "show", run_id]) == 0
    fields = dict(line.split(maxsplit=1) for line in capsys.readouterr().out.split("history:\n")[0].splitlines())
    assert fields["attempt"] == "2 (1 counted toward PODFLOW_MAX_ATTEMPTS)"
    assert main(["runs", "show", run_id, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["attempt"], shown["attempts_counted"]) == (2, 1)


def test_show_prints_the_webhook_delivery(store: SqliteStore, capsys: pytest.CaptureFixture[str]) -> None:
    from podflow.models import WebhookDelivery

    run = Run.new(request("hooked"), now=T0).model_copy(update={"callback_url": "http://127.0.0.1:9/h"})
    store.create_run(run)
    attempt = store.claim(run.run_id, now=at(1))
    store.finish(run.run_id, attempt, status=RunStatus.SUCCESS, now=at(2))
    store.claim_webhooks(now=at(3), lease_until=at(40))
    failure = WebhookDelivery(outcome="retrying", last_attempt_at=at(4), last_error="timed out after 10 s")
    store.record_webhook(run.run_id, 1, delivery=failure, next_at=at(9))
    assert main(["runs", "show", run.run_id]) == 0
    fields = dict(line.split(maxsplit=1) for line in capsys.readouterr().out.split("history:\n")[0].splitlines())
    assert fields["webhook"] == (
        f"http://127.0.0.1:9/h: pending, 1 attempt, last timed out after 10 s, next {at(9).isoformat()}"
    )


def test_list_and_show_say_when_a_scheduled_run_starts_and_its_band(
    store: SqliteStore, capsys: pytest.CaptureFixture[str]
) -> None:
    start_at = at(3600)
    scheduled = Run.new(request("weekly").model_copy(update={"priority": "high", "start_at": start_at}), now=T0)
    store.create_run(scheduled)
    later = Run.new(request("batch").model_copy(update={"start_at": start_at}), now=at(1))  # normal: no band shown
    store.create_run(later)
    plain = add(store, "now", at(2))
    assert main(["runs", "list"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows[scheduled.run_id].endswith(f"[high] scheduled for {start_at.isoformat()}")
    assert rows[later.run_id].endswith(f"  scheduled for {start_at.isoformat()}") and "[" not in rows[later.run_id]
    assert "scheduled" not in rows[plain] and "[" not in rows[plain]
    assert main(["runs", "show", scheduled.run_id]) == 0
    fields = dict(line.split(maxsplit=1) for line in capsys.readouterr().out.split("history:\n")[0].splitlines())
    assert (fields["status"], fields["priority"], fields["scheduled"]) == ("PENDING", "high", start_at.isoformat())
    assert main(["runs", "show", plain]) == 0
    assert "scheduled" not in capsys.readouterr().out.split("history:\n")[0]
    # once it has started, it is no longer shown as waiting for its time
    attempt = store.claim(scheduled.run_id, now=at(3601))
    assert attempt == 1 and main(["runs", "list", "--status", "started"]) == 0
    (row,) = capsys.readouterr().out.splitlines()[1:]
    assert row.startswith(scheduled.run_id) and "scheduled for" not in row


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


def test_list_filters_by_search_profile_and_creation_time(
    store: SqliteStore, capsys: pytest.CaptureFixture[str]
) -> None:
    weekly, _ = add(store, "Weekly digest", at(1)), add(store, "other", at(2))
    assert main(["runs", "list", "--search", "weekly", "--json"]) == 0
    assert [r["run_id"] for r in json.loads(capsys.readouterr().out)["runs"]] == [weekly]
    assert main(["runs", "list", "--before", at(2).isoformat(), "--json"]) == 0
    assert [r["run_id"] for r in json.loads(capsys.readouterr().out)["runs"]] == [weekly]
    with pytest.raises(SystemExit):
        main(["runs", "list", "--since", "yesterday"])


def test_bulk_retry_counts_asks_and_retries_each_run_once(
    store: SqliteStore, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = [failed(store) for _ in range(3)]
    lost = failed(store, "noop")
    assert main(["runs", "retry", "--status", "failure", "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert "4 run(s) match" in err and all(run_id in out for run_id in [*broken, lost])
    assert len(store.list_runs(limit=100).runs) == 4  # a dry run changes nothing
    # without a terminal, only --yes confirms
    assert main(["runs", "retry", "--status", "FAILURE", "--error-type", "ValueError"]) == 0
    assert "pass --yes" in capsys.readouterr().err and len(store.list_runs(limit=100).runs) == 4
    assert main(["runs", "retry", "--status", "FAILURE", "--since", "3650d", "--yes"]) == 0
    out, err = capsys.readouterr()
    assert out.count("(retry of ") == 4 and "retried 4; 0 retried before" in err
    retries = [r for r in store.list_runs(limit=100).runs if r.retry_of]
    assert sorted(r.retry_of for r in retries) == sorted([*broken, lost])
    # the same command again: each run was retried once already
    assert main(["runs", "retry", "--status", "FAILURE", "--yes"]) == 0
    assert "retried 0; 4 retried before by this command (skipped)" in capsys.readouterr().err
    assert len(store.list_runs(limit=100).runs) == 8
    assert main(["runs", "retry", "--status", "PENDING", "--yes"]) == RET_FAILED_RUN
    assert main(["runs", "retry"]) == RET_FAILED_RUN


def test_bulk_delete_needs_a_status_confirms_and_spares_running_runs(
    store: SqliteStore, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    old = [add(store, "noop", at(i)) for i in range(2)]
    for run_id in old:
        store.cancel(run_id, now=at(5))
    recent = add(store, "noop", at(10))
    store.cancel(recent, now=at(11))
    running = add(store, "noop", at(1))
    store.claim(running, now=at(2))
    cutoff = at(10).isoformat()
    assert main(["runs", "delete", "--before", cutoff]) == RET_FAILED_RUN  # no --status
    assert "needs --status" in capsys.readouterr().err
    assert main(["runs", "delete", "--status", "STARTED", "--yes"]) == RET_FAILED_RUN
    # on a terminal, it asks; "n" changes nothing, "y" deletes
    for answer, left in (("n\n", 4), ("y\n", 2)):
        stdin = io.StringIO(answer)
        stdin.isatty = lambda: True  # type: ignore[method-assign]
        monkeypatch.setattr("sys.stdin", stdin)
        assert main(["runs", "delete", "--status", "revoked", "--before", cutoff]) == 0
        assert f"{len(old)} run(s) match" in capsys.readouterr().err
        assert len(store.list_runs(limit=100).runs) == left
    assert {r.run_id for r in store.list_runs(limit=100).runs} == {recent, running}
    assert main(["runs", "delete", recent]) == 0 and store.get_run(recent) is None
    assert main(["runs", "delete", running]) == RET_FAILED_RUN  # cancel it first


def test_wait_exits_by_the_final_status(store: SqliteStore, capsys: pytest.CaptureFixture[str]) -> None:
    done = failed(store)
    assert main(["runs", "wait", done]) == RET_FAILED_RUN
    assert capsys.readouterr().out == f"{done}: FAILURE (ValueError: boom)\n"
    pending = add(store, "noop")
    store.cancel(pending, now=at(3))
    assert main(["runs", "wait", pending]) == RET_REVOKED
    waiting = add(store, "noop")
    assert main(["runs", "wait", waiting, "--timeout", "0.3", "--interval", "0.1"]) == RET_TIMEOUT
    assert "still PENDING after 0.3 s" in capsys.readouterr().err
    attempt = store.claim(waiting, now=at(4))
    store.finish(waiting, attempt, status=RunStatus.SUCCESS, now=at(5))
    assert main(["runs", "wait", waiting]) == 0
    assert main(["runs", "wait", "run_" + "0" * 32]) == RET_FAILED_RUN
