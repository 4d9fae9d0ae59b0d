"""The transactional outbox: record the run, then send; a failed send is never a lost run."""

from __future__ import annotations

import time

import pytest
from dramatiq import Message

from podflow.dispatch import QueueDispatcher, create, ensure_same_request, start, submit
from podflow.errors import BrokerUnavailable, IdempotencyConflict, InvalidInput, InvalidTransition, RunNotFound
from podflow.settings import load_settings
from podflow.states import RunStatus
from podflow.store.base import Store
from podflow.worker.broker import ACTOR_NAME, QUEUE_NAME, build_broker
from tests.conftest import T0, at
from tests.execution import FakeDispatcher, request, seed
from tests.servers import free_port


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


def test_submit_records_the_outbox_and_message_id_before_it_sends(store: Store) -> None:
    dispatcher = FakeDispatcher(store=seed(store))
    submission = submit(store, dispatcher, request(), now=T0)
    assert submission.created and submission.enqueued and submission.error is None
    run_id = submission.run.run_id
    assert dispatcher.sent == [(run_id, "msg-1")]
    at_send = dispatcher.seen[0]
    assert at_send.outbox_at == T0 and at_send.message_id == "msg-1"  # recorded first
    run = store.get_run(run_id)
    assert run.status is RunStatus.PENDING and run.outbox_at is None and run.enqueued_at == T0
    assert run.mode == "queue" and store.get_run_by_message_id("msg-1").run_id == run_id


def test_a_repeated_idempotency_key_returns_the_existing_run_untouched(store: Store) -> None:
    dispatcher = FakeDispatcher(store=seed(store))
    first = submit(store, dispatcher, request(), now=T0, idempotency_key="key-1")
    again = submit(store, dispatcher, request("other"), now=at(5), idempotency_key="key-1")
    assert not again.created and again.run.run_id == first.run.run_id
    assert again.run.request_hash == request().fingerprint() != request("other").fingerprint()
    assert len(dispatcher.sent) == 1 and store.get_run(first.run.run_id).updated_at == T0


def test_a_send_that_fails_leaves_the_run_pending_in_the_outbox_and_says_why(store: Store) -> None:
    dispatcher = FakeDispatcher(store=seed(store))
    dispatcher.down = True
    submission = submit(store, dispatcher, request(), now=T0)
    assert submission.created and not submission.enqueued and "broker unreachable" in submission.error
    run = store.get_run(submission.run.run_id)
    assert run.status is RunStatus.PENDING and run.outbox_at == T0 and run.enqueued_at is None
    assert "broker unreachable" in run.enqueue_error
    assert [r.run_id for r in store.list_outbox(requested_before=at(1))] == [run.run_id]


def test_a_non_durable_dispatcher_leaves_the_outbox_marker_until_a_claim(store: Store) -> None:
    dispatcher = FakeDispatcher(mode="thread", durable=False, store=seed(store))
    submission = submit(store, dispatcher, request(), now=T0)
    assert submission.enqueued and dispatcher.sent == [(submission.run.run_id, None)]
    run = store.get_run(submission.run.run_id)
    assert run.mode == "thread" and run.message_id is None and run.outbox_at == T0
    store.claim(run.run_id, now=at(1))
    assert store.get_run(run.run_id).outbox_at is None


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


def test_the_queue_dispatcher_enqueues_the_runs_message_id(redis_url: str) -> None:
    broker = build_broker(load_settings(env_file=None, broker_url=redis_url))
    QueueDispatcher(broker=broker).send("run_abc", "msg-42")
    client = broker.client  # type: ignore[attr-defined]
    [data] = client.hvals(f"dramatiq:{QUEUE_NAME}.msgs")
    message = Message.decode(data)
    assert (message.message_id, message.actor_name, message.args) == ("msg-42", ACTOR_NAME, ("run_abc",))


def test_the_queue_dispatcher_reports_a_dead_broker_quickly() -> None:
    broker = build_broker(load_settings(env_file=None, broker_url=f"redis://127.0.0.1:{free_port()}/0"))
    began = time.monotonic()
    with pytest.raises(BrokerUnavailable, match="broker unreachable"):
        QueueDispatcher(broker=broker).send("run_abc", "msg-1")
    assert time.monotonic() - began < 5


def test_a_replayed_idempotency_key_must_carry_the_same_request(store: Store) -> None:
    dispatcher = FakeDispatcher(store=seed(store))
    run = submit(store, dispatcher, request(), now=T0, idempotency_key="key-1").run
    assert ensure_same_request(run, request()) is run
    with pytest.raises(IdempotencyConflict, match="key-1"):
        ensure_same_request(run, request("other"))
    with pytest.raises(IdempotencyConflict):
        ensure_same_request(run, request(), retry_of="run_" + "1" * 32)
