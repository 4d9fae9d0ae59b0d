"""The use-cases on runs, as the API and CLI call them: submit, create, start, cancel, retry, delete."""

from __future__ import annotations

from pathlib import Path

import pytest

from podflow import lifecycle
from podflow.errors import IdempotencyConflict, InvalidInput, InvalidTransition, ResultNotFound, RunNotFound
from podflow.lifecycle import create, ensure_same_request, start, submit
from podflow.models import ErrorInfo, Run, RunResult
from podflow.paths import checkpoint_dir, run_dir
from podflow.states import RunStatus
from podflow.store.base import Store
from tests.conftest import T0, at, make_request, make_run
from tests.execution import FakeDispatcher, request, seed

ABSENT = "run_" + "0" * 32


def test_cancel_revokes_a_pending_or_started_run_and_refuses_a_terminal_one(store: Store) -> None:
    dispatcher = FakeDispatcher(store=seed(store))
    pending = submit(store, dispatcher, request(), now=T0).run.run_id
    assert lifecycle.cancel(store, pending, now=at(1)).status is RunStatus.REVOKED
    started = submit(store, dispatcher, request(), now=T0).run.run_id
    store.claim(started, now=at(1))
    assert lifecycle.cancel(store, started, now=at(2), reason="user asked").history[-1].reason == "user asked"
    with pytest.raises(InvalidTransition, match="already REVOKED") as err:
        lifecycle.cancel(store, started, now=at(3))
    assert err.value.status == "REVOKED" and err.value.run_id == started
    with pytest.raises(RunNotFound):
        lifecycle.cancel(store, ABSENT, now=at(3))


def test_retry_submits_a_new_run_for_a_failed_or_revoked_one(store: Store) -> None:
    dispatcher = FakeDispatcher(store=seed(store))
    original = submit(store, dispatcher, request("broken"), now=T0).run.run_id
    attempt = store.claim(original, now=at(1))
    error = ErrorInfo(type="ValueError", message="x")
    store.finish(original, attempt, status=RunStatus.FAILURE, now=at(2), error=error)
    retried = lifecycle.retry(store, dispatcher, original, now=at(3))
    assert retried.created and retried.enqueued
    assert retried.run.retry_of == original and retried.run.run_id != original
    assert retried.run.request == request("broken") and store.get_run(original).status is RunStatus.FAILURE
    with pytest.raises(InvalidTransition, match="PENDING"):
        lifecycle.retry(store, dispatcher, retried.run.run_id, now=at(4))
    lifecycle.cancel(store, retried.run.run_id, now=at(5))
    assert lifecycle.retry(store, dispatcher, retried.run.run_id, now=at(6)).run.retry_of == retried.run.run_id
    with pytest.raises(RunNotFound):
        lifecycle.retry(store, dispatcher, ABSENT, now=at(6))


def test_delete_removes_the_record_and_files_but_refuses_a_started_run(store: Store, tmp_path: Path) -> None:
    dispatcher = FakeDispatcher(store=seed(store))
    run_id = submit(store, dispatcher, request(), now=T0).run.run_id
    store.claim(run_id, now=at(1))
    files, kept = run_dir(tmp_path, run_id), checkpoint_dir(tmp_path, run_id)
    for directory in (files, kept):
        directory.mkdir(parents=True)
        (directory / "episode.wav").write_bytes(b"RIFF")
    with pytest.raises(InvalidTransition, match="STARTED"):
        lifecycle.delete(store, run_id, data_dir=tmp_path)
    assert files.exists() and kept.exists()
    lifecycle.cancel(store, run_id, now=at(2))
    lifecycle.delete(store, run_id, data_dir=tmp_path)
    assert store.get_run(run_id) is None and not files.exists() and not kept.exists()
    with pytest.raises(RunNotFound):
        lifecycle.delete(store, run_id, data_dir=tmp_path)


def test_a_result_file_is_found_only_for_a_success_run_that_has_it_inside_the_data_dir(tmp_path: Path) -> None:
    files = run_dir(tmp_path, "run_x")
    files.mkdir(parents=True)
    (files / "episode.wav").write_bytes(b"RIFF")
    (tmp_path.parent / "secret.txt").write_text("not yours")
    result = RunResult(
        audio_path="podcasts/run_x/episode.wav",
        transcript_path="../secret.txt",
        outline_path="podcasts/run_x/gone.json",
    )
    done = make_run(status=RunStatus.SUCCESS, result=result)
    assert lifecycle.result_file(done, "audio", data_dir=tmp_path) == (files / "episode.wav").resolve()
    for name, why in [("transcript", "missing"), ("outline", "missing")]:
        with pytest.raises(ResultNotFound, match=why):
            lifecycle.result_file(done, name, data_dir=tmp_path)
    with pytest.raises(ResultNotFound, match="the run is STARTED"):
        lifecycle.result_file(make_run(status=RunStatus.STARTED, result=result), "audio", data_dir=tmp_path)
    with pytest.raises(ResultNotFound, match="produced none"):
        lifecycle.result_file(make_run(status=RunStatus.SUCCESS, result=RunResult()), "audio", data_dir=tmp_path)


def test_submit_refuses_an_unknown_profile_or_source_and_stores_nothing(store: Store) -> None:
    seed(store)
    dispatcher = FakeDispatcher()
    for field, bad in [
        ("episode_profile", request().model_copy(update={"episode_profile": "nope"})),
        ("speaker_profile", request().model_copy(update={"speaker_profile": "nope"})),
        ("source_ids", request().model_copy(update={"source_ids": ["src_missing"]})),
    ]:
        with pytest.raises(InvalidInput) as err:
            submit(store, dispatcher, bad, now=T0)
        assert err.value.field == field
    assert store.list_runs().runs == [] and dispatcher.sent == []


def test_a_repeated_idempotency_key_returns_the_existing_run_untouched(store: Store) -> None:
    dispatcher = FakeDispatcher(store=seed(store))
    first = submit(store, dispatcher, request(), now=T0, idempotency_key="key-1")
    again = submit(store, dispatcher, request("other"), now=at(5), idempotency_key="key-1")
    assert not again.created and again.run.run_id == first.run.run_id
    assert again.run.request_hash == request().fingerprint() != request("other").fingerprint()
    assert len(dispatcher.sent) == 1 and store.get_run(first.run.run_id).updated_at == T0


def test_a_replay_after_its_start_at_passed_returns_the_scheduled_run(store: Store) -> None:
    dispatcher = FakeDispatcher(store=seed(store))
    scheduled = request().model_copy(update={"start_at": at(60)})
    first = submit(store, dispatcher, scheduled, now=T0, idempotency_key="key-s")
    again = submit(store, dispatcher, scheduled, now=at(120), idempotency_key="key-s")  # start_at is past now
    assert not again.created and again.enqueued and again.run.run_id == first.run.run_id
    assert len(dispatcher.sent) == 1
    draft, _ = create(store, dispatcher, scheduled, now=T0, idempotency_key="key-d")
    replayed = create(store, dispatcher, scheduled, now=at(120), idempotency_key="key-d")
    assert replayed == (store.get_run(draft.run_id), False)
    for key in (None, "key-new"):  # no run made with the key: the start is refused, as for any request
        with pytest.raises(InvalidInput) as err:
            submit(store, dispatcher, scheduled, now=at(120), idempotency_key=key)
        assert err.value.field == "start_at"
    assert len(store.list_runs().runs) == 2


def test_a_draft_starts_once(store: Store) -> None:
    dispatcher = FakeDispatcher(store=seed(store))
    draft, created = create(store, dispatcher, request(), now=T0)
    assert created and draft.outbox_at is None and dispatcher.sent == []
    started = start(store, dispatcher, draft.run_id, now=at(1))
    assert started.enqueued and dispatcher.sent == [(draft.run_id, "msg-1")]
    with pytest.raises(InvalidTransition, match="already started"):
        start(store, dispatcher, draft.run_id, now=at(2))
    store.claim(draft.run_id, now=at(3))
    with pytest.raises(InvalidTransition, match="STARTED"):
        start(store, dispatcher, draft.run_id, now=at(4))
    with pytest.raises(RunNotFound):
        start(store, dispatcher, "run_" + "0" * 32, now=at(4))
    with pytest.raises(InvalidInput):
        create(store, dispatcher, request().model_copy(update={"source_ids": ["src_x"]}), now=T0)


def test_a_replayed_idempotency_key_must_carry_the_same_request(store: Store) -> None:
    dispatcher = FakeDispatcher(store=seed(store))
    run = submit(store, dispatcher, request(), now=T0, idempotency_key="key-1").run
    assert ensure_same_request(run, request()) is run
    with pytest.raises(IdempotencyConflict, match="key-1"):
        ensure_same_request(run, request("other"))
    with pytest.raises(IdempotencyConflict):
        ensure_same_request(run, request(), retry_of="run_" + "1" * 32)


def test_a_start_must_be_in_the_future_and_within_the_schedule_horizon() -> None:
    from podflow.lifecycle import check_schedule

    check_schedule(make_request(), now=T0, max_ahead_s=60)  # unscheduled
    check_schedule(make_request(start_at=at(60)), now=T0, max_ahead_s=60)  # at the horizon
    check_schedule(make_request(start_at=at(10**6)), now=T0, max_ahead_s=None)  # no horizon
    for when, why in ((at(0), "in the future"), (at(-1), "in the future"), (at(61), "at most 60 s ahead")):
        with pytest.raises(InvalidInput, match=why) as refused:
            check_schedule(make_request(start_at=when), now=T0, max_ahead_s=60)
        assert refused.value.field == "start_at"


def test_a_retry_keeps_the_priority_but_not_the_start() -> None:
    run = Run.new(make_request(priority="low", start_at=at(60)), now=T0)
    assert (run.priority, run.start_at) == ("low", at(60))
    assert (run.request.priority, run.request.start_at) == ("low", None)


def test_a_run_scheduled_beyond_the_horizon_is_held_in_the_store_not_sent(store: Store) -> None:
    dispatcher = FakeDispatcher(store=seed(store))
    far = request().model_copy(update={"start_at": at(7200)})
    held = submit(store, dispatcher, far, now=T0, idempotency_key="key-far", schedule_horizon_s=3600)
    assert held.created and held.held and held.enqueued and held.error is None
    assert dispatcher.sent == []  # the sweep sends it at the horizon before its start
    stored = store.get_run(held.run.run_id)
    assert (stored.outbox_at, stored.enqueued_at, stored.current_message_id) == (at(3600), None, "msg-1")
    # a replay of its request is answered at once: held by the store is no request in flight
    again = submit(store, dispatcher, far, now=at(5), idempotency_key="key-far", schedule_horizon_s=3600)
    assert lifecycle.replay(again, far, now=at(5)).run_id == held.run.run_id
    # within the horizon it is sent at once, delayed until its start
    within = request().model_copy(update={"start_at": at(600)})
    soon = submit(store, dispatcher, within, now=T0, schedule_horizon_s=3600)
    assert not soon.held and [run_id for run_id, _ in dispatcher.sent] == [soon.run.run_id]
    assert dispatcher.timings == [("normal", at(600))]
    # a draft scheduled that far is held once started, the same way
    draft, _ = create(store, dispatcher, far, now=T0)
    started = start(store, dispatcher, draft.run_id, now=at(1), schedule_horizon_s=3600)
    assert started.held and store.get_run(draft.run_id).outbox_at == at(3600) and len(dispatcher.sent) == 1
    with pytest.raises(InvalidTransition, match="already started"):
        start(store, dispatcher, draft.run_id, now=at(2), schedule_horizon_s=3600)
