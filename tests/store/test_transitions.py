"""The transition table: every edge of states.TRANSITIONS, taken or refused, on every backend."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from podflow.models import ErrorInfo, Progress, RunResult, WebhookDelivery
from podflow.states import TERMINAL, TRANSITIONS, RunStatus, can_transition
from podflow.store import transitions as t
from podflow.store.base import Store
from tests.conftest import T0, at, make_run

ERROR = ErrorInfo(type="edge", message="walking the table")
DONE = RunResult()
#: far past every cutoff and heartbeat timeout of a run prepared at T0
LATE = at(10_000)
MAX_ATTEMPTS = 3  # the store fixture's
HOOK = "http://127.0.0.1:9/hook"
DELIVERED = WebhookDelivery(outcome="delivered", last_attempt_at=LATE, last_status=204, delivered_at=LATE)
LEASE_UNTIL = at(10_040)

Apply = Callable[[Store, str, int], bool]

#: each write through the public Store API, on (store, run_id, attempt): True if it changed the run
APPLY: dict[str, Apply] = {
    "claim": lambda s, r, a: s.claim(r, now=LATE) is not None,
    "release": lambda s, r, a: s.release(r, a, error=ERROR, now=LATE),
    "release:stopped": lambda s, r, a: s.release(r, a, error=None, now=LATE, counted=False),
    "finish:SUCCESS": lambda s, r, a: s.finish(r, a, status=RunStatus.SUCCESS, now=LATE, result=DONE) is not None,
    "finish:FAILURE": lambda s, r, a: s.finish(r, a, status=RunStatus.FAILURE, now=LATE, error=ERROR) is not None,
    "cancel": lambda s, r, a: s.cancel(r, now=LATE, reason="edge") is not None,
    "time_limit": lambda s, r, a: r in s.fail_started_before(started_before=LATE, error=ERROR, now=LATE),
    "worker_lost": lambda s, r, a: r in s.fail_lost(heartbeat_before=LATE, error=ERROR, now=LATE),
    "release_lost": lambda s, r, a: r in {ref.run_id for ref in s.release_lost(heartbeat_before=LATE, now=LATE)},
    "expired": lambda s, r, a: r in s.fail_pending_enqueued_before(enqueued_before=LATE, error=ERROR, now=LATE),
    "redispatch": lambda s, r, a: s.redispatch(r, message_id="msg-new", now=LATE, reason="edge"),
    "heartbeat": lambda s, r, a: s.heartbeat(r, a, now=LATE).owned,
    "progress": lambda s, r, a: s.set_progress(r, a, Progress(stage="edge", percent=50), now=LATE).owned,
    "webhook_claim": lambda s, r, a: r in {x.run_id for x in s.claim_webhooks(now=LATE, lease_until=LEASE_UNTIL)},
    "webhook_outcome": lambda s, r, a: s.record_webhook(r, 1, delivery=DELIVERED, next_at=None),
}


def prepared(store: Store, status: RunStatus, write: t.Write, **fields: object) -> tuple[str, int]:
    """A run in ``status`` that meets every part of ``write``'s precondition but the status:
    started, beating and enqueued at T0 (stale by LATE), attempts left unless the write
    needs none, and ``fields``. Returns the run and its attempt."""
    attempt = 0 if status is RunStatus.PENDING else (MAX_ATTEMPTS if write is t.WORKER_LOST else 1)
    run = make_run(
        T0,
        status=status,
        attempt=attempt,
        started_at=None if status is RunStatus.PENDING else T0,
        heartbeat_at=None if status is RunStatus.PENDING else T0,
        enqueued_at=T0,
        finished_at=T0 if status in TERMINAL else None,
        **fields,
    )
    store.create_run(run)
    return run.run_id, attempt


def test_the_table_takes_exactly_the_edges_of_the_state_machine() -> None:
    taken = {(source, w.target) for w in t.WRITES if w.target is not None for source in w.sources}
    allowed = {(source, target) for source, targets in TRANSITIONS.items() for target in targets}
    assert taken == allowed
    assert set(APPLY) == set(t.BY_NAME)  # the walk below covers every write


@pytest.mark.parametrize(("source", "target"), list(itertools.product(RunStatus, RunStatus)), ids=str)
def test_every_edge_is_taken_or_refused_as_the_state_machine_says(
    store: Store, source: RunStatus, target: RunStatus
) -> None:
    taken = []
    for write in (w for w in t.WRITES if w.target is target):
        run_id, attempt = prepared(store, source, write)
        before = store.get_run(run_id)
        assert before is not None
        changed = APPLY[write.name](store, run_id, attempt)
        after = store.get_run(run_id)
        assert after is not None
        assert changed == (source in write.sources), write.name
        if changed:
            taken.append(write.name)
            assert after.status is target
            assert after.history[-1].status is target and after.history[-1].at == LATE
            assert len(after.history) == len(before.history) + 1
        else:
            assert after == before, f"{write.name} refused but wrote"
    assert bool(taken) == can_transition(source, target)


@pytest.mark.parametrize("source", list(RunStatus), ids=str)
@pytest.mark.parametrize("write", [t.HEARTBEAT, t.PROGRESS], ids=lambda w: w.name)
def test_fenced_writes_without_a_status_change_only_touch_a_held_started_run(
    store: Store, source: RunStatus, write: t.Write
) -> None:
    run_id, attempt = prepared(store, source, write)
    before = store.get_run(run_id)
    changed = APPLY[write.name](store, run_id, attempt)
    after = store.get_run(run_id)
    assert changed == (source is RunStatus.STARTED)
    assert after is not None and before is not None
    if changed:
        assert after.status is source and after.heartbeat_at == LATE and after.history == before.history
    else:
        assert after == before


@pytest.mark.parametrize("source", list(RunStatus), ids=str)
@pytest.mark.parametrize("released", [False, True], ids=["held", "released"])
@pytest.mark.parametrize("in_outbox", [False, True], ids=["enqueued", "in-outbox"])
def test_redispatch_only_touches_a_run_waiting_for_its_message(
    store: Store, source: RunStatus, released: bool, in_outbox: bool
) -> None:
    run_id, _ = prepared(store, source, t.REDISPATCH, released=released, outbox_at=T0 if in_outbox else None)
    before = store.get_run(run_id)
    changed = APPLY["redispatch"](store, run_id, 1)
    after = store.get_run(run_id)
    assert before is not None and after is not None
    waiting = (source is RunStatus.PENDING and not in_outbox) or (source is RunStatus.STARTED and released)
    assert changed == waiting
    if changed:
        assert after.status is source and after.current_message_id == "msg-new"
        assert after.outbox_at == LATE and after.enqueued_at is None and after.message_id == before.message_id
        assert after.history[-1].status is source and after.history[-1].reason == "edge"
        assert len(after.history) == len(before.history) + 1
    else:
        assert after == before


@pytest.mark.parametrize("write", [w for w in t.WRITES if w.ends_run], ids=lambda w: w.name)
@pytest.mark.parametrize("hook", [HOOK, None], ids=["with-callback", "without"])
def test_the_write_that_ends_a_run_owes_its_webhook_in_the_same_write(
    store: Store, write: t.Write, hook: str | None
) -> None:
    run_id, attempt = prepared(store, write.sources[0], write, callback_url=hook)
    assert APPLY[write.name](store, run_id, attempt)
    after = store.get_run(run_id)
    assert after is not None and after.status is write.target
    assert after.webhook_due_at == (LATE if hook else None) and after.webhook_attempts == 0


@pytest.mark.parametrize("source", list(RunStatus), ids=str)
@pytest.mark.parametrize("write", [t.WEBHOOK_CLAIM, t.WEBHOOK_OUTCOME], ids=lambda w: w.name)
def test_webhook_writes_only_touch_an_ended_run_whose_delivery_is_due_or_held(
    store: Store, source: RunStatus, write: t.Write
) -> None:
    attempts = 1 if write is t.WEBHOOK_OUTCOME else 0
    run_id, _ = prepared(store, source, write, callback_url=HOOK, webhook_due_at=T0, webhook_attempts=attempts)
    before = store.get_run(run_id)
    changed = APPLY[write.name](store, run_id, 1)
    after = store.get_run(run_id)
    assert before is not None and after is not None
    assert changed == (source in TERMINAL)
    if not changed:
        assert after == before
    elif write is t.WEBHOOK_CLAIM:
        assert after.webhook_due_at == LEASE_UNTIL and after.webhook_attempts == 1
    else:
        assert after.webhook_due_at is None and after.webhook == DELIVERED
    if changed:  # neither is a status change: no history, nothing else touched
        assert after.model_copy(update={"webhook_due_at": None, "webhook_attempts": 0, "webhook": None}) == (
            before.model_copy(update={"webhook_due_at": None, "webhook_attempts": 0, "webhook": None})
        )
