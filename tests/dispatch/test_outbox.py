"""The transactional outbox: record the run, then send; a failed send is never a lost run."""

from __future__ import annotations

import pytest

from podflow.dispatch.outbox import EnqueueMarks
from podflow.errors import StoreUnavailable
from podflow.lifecycle import submit
from podflow.states import RunStatus
from podflow.store.base import Store
from podflow.sweep import SweepPolicy, sweep
from tests.conftest import T0, at
from tests.execution import FakeDispatcher, request, seed, wait_for


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


# -- confirmations in batches -------------------------------------------------------


def test_enqueue_marks_confirm_many_sends_with_one_write(store: Store) -> None:
    dispatcher = FakeDispatcher(store=seed(store))
    marks = EnqueueMarks(store, delay_s=3600, batch=100, clock=lambda: at(1))
    try:
        runs = [submit(store, dispatcher, request(), now=T0, marks=marks).run.run_id for _ in range(3)]
        assert all(store.get_run(r).outbox_at == T0 for r in runs)  # sent, not yet confirmed
        assert marks.flush() == 3
        assert all(store.get_run(r).enqueued_at == at(1) and store.get_run(r).outbox_at is None for r in runs)
        keyed = submit(store, dispatcher, request(), now=T0, marks=marks, idempotency_key="k").run.run_id
        assert store.get_run(keyed).enqueued_at == T0  # at once: a replay must find its hand-over done
        last = submit(store, dispatcher, request(), now=T0, marks=marks).run.run_id
    finally:
        marks.close()  # writes what is left
    assert store.get_run(last).outbox_at is None
    after = submit(store, dispatcher, request(), now=T0, marks=marks).run.run_id
    assert store.get_run(after).outbox_at is None  # closed: confirmed at once


def test_enqueue_marks_write_their_batch_after_the_delay_or_when_full(store: Store) -> None:
    dispatcher = FakeDispatcher(store=seed(store))
    marks = EnqueueMarks(store, delay_s=0.02, batch=1000)
    full = EnqueueMarks(store, delay_s=3600, batch=2)
    try:
        first = submit(store, dispatcher, request(), now=T0, marks=marks).run.run_id
        wait_for(lambda: store.get_run(first).outbox_at is None, what="the delayed batch")
        pair = [submit(store, dispatcher, request(), now=T0, marks=full).run.run_id for _ in range(2)]
        wait_for(lambda: all(store.get_run(r).outbox_at is None for r in pair), what="the full batch")
    finally:
        marks.close()
        full.close()


def test_a_confirmation_never_written_leaves_the_run_to_the_sweep_which_finds_its_message(store: Store) -> None:
    dispatcher = FakeDispatcher(store=seed(store))
    marks = EnqueueMarks(store, delay_s=3600, batch=100)
    run_id = submit(store, dispatcher, request(), now=T0, marks=marks).run.run_id
    # the process dies before the batch is written: nothing is flushed
    policy = SweepPolicy(time_limit_s=3600, pending_timeout_s=86400, outbox_grace_s=10)
    assert sweep(store, now=at(5), policy=policy, dispatcher=dispatcher).enqueued == 0  # within the grace
    report = sweep(store, now=at(11), policy=policy, dispatcher=dispatcher)
    assert report.enqueued == 1 and dispatcher.sent == [(run_id, "msg-1")]  # held by the broker: not sent again
    run = store.get_run(run_id)
    assert run.outbox_at is None and run.enqueued_at == at(11)
    dispatcher.held = None  # a broker that cannot tell (RabbitMQ): the sweep sends it again instead
    other = submit(store, dispatcher, request(), now=at(20), marks=marks).run.run_id
    sweep(store, now=at(31), policy=policy, dispatcher=dispatcher)
    assert dispatcher.sent[-1] == (other, "msg-2") and len(dispatcher.sent) == 3
    assert store.get_run(other).outbox_at is None


def test_a_store_error_writing_confirmations_is_logged_not_raised(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    dispatcher = FakeDispatcher(store=seed(store))
    marks = EnqueueMarks(store, delay_s=3600, batch=100)
    run_id = submit(store, dispatcher, request(), now=T0, marks=marks).run.run_id

    def refuse(*_: object, **__: object) -> int:
        raise StoreUnavailable("store down")

    store.mark_enqueued_many = refuse  # type: ignore[method-assign]
    try:
        assert marks.flush() == 0
    finally:
        del store.mark_enqueued_many  # type: ignore[attr-defined]
        marks.close()
    assert "1 run(s) sent, but not marked enqueued" in caplog.text
    assert store.get_run(run_id).outbox_at == T0  # left for the sweep
