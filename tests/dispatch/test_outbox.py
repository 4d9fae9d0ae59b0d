"""The transactional outbox: record the run, then send; a failed send is never a lost run."""

from __future__ import annotations

from podflow.lifecycle import submit
from podflow.states import RunStatus
from podflow.store.base import Store
from tests.conftest import T0, at
from tests.execution import FakeDispatcher, request, seed


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
