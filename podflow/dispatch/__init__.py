"""Record a run, then hand it to whoever executes it: a transactional outbox.

A run to start is written with ``outbox_at`` (start requested) and its
``message_id`` *before* anything is sent. Then the message is sent; once the
broker has accepted it, ``mark_enqueued`` clears the outbox marker. If the
send fails (broker down), the run stays PENDING in the outbox, the error is
recorded with ``mark_enqueue_failed``, the caller is told — and the sweep
sends it later (``podflow.sweep``). An accepted run is never lost, and a run
sent twice is harmless: every delivery goes through ``claim``.

Two dispatchers:

- :class:`QueueDispatcher` (PODFLOW_MODE=queue) enqueues a Dramatiq message for
  ``generate_podcast`` carrying the run's recorded ``message_id``;
- :class:`podflow.threadmode.ThreadExecutor` (PODFLOW_MODE=thread) hands the
  run to its in-process pool. Its queue is not durable, so it leaves the
  outbox marker in place until a claim clears it: a restart finds the run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import dramatiq
from dramatiq.message import generate_unique_id

from ..errors import BrokerUnavailable, IdempotencyConflict, InvalidTransition, RunNotFound, StoreError
from ..generation.request import validate_request
from ..models import Mode, Run, RunRequest
from ..store.base import Store
from ..timeutil import utcnow
from ..worker.broker import ACTOR_NAME, QUEUE_NAME, broker_errors

__all__ = [
    "Dispatcher",
    "OutboxDispatcher",
    "QueueDispatcher",
    "Submission",
    "create",
    "deliver",
    "ensure_same_request",
    "redispatch",
    "start",
    "submit",
]

log = logging.getLogger(__name__)


class Dispatcher(Protocol):
    """Something that executes runs somewhere.

    ``durable``: a successful ``send`` means the run is safely queued (a
    broker), so the outbox marker may be cleared.
    """

    mode: Mode
    durable: bool

    def new_message_id(self) -> str | None:
        """A fresh message id (None when the dispatcher has no messages)."""

    def send(self, run_id: str, message_id: str | None) -> None:
        """Raises BrokerUnavailable when nothing was sent."""

    def holds_nothing(self) -> bool | None:
        """True when no message of its queue is anywhere in the broker (ready,
        delayed or fetched by a worker); None when it cannot tell.

        Raises:
          BrokerUnavailable
        """


class QueueDispatcher:
    """Sends runs to the Dramatiq workers through ``broker``."""

    mode: Mode = "queue"
    durable = True

    def __init__(self, *, broker: dramatiq.Broker, queue_name: str = QUEUE_NAME) -> None:
        self.broker = broker
        self.queue_name = queue_name

    def new_message_id(self) -> str:
        return generate_unique_id()

    def message(self, run_id: str, message_id: str | None) -> dramatiq.Message[Any]:
        """The message for ``run_id``; with a result backend, ``.get_result(backend=...)`` works on it."""
        return dramatiq.Message(
            queue_name=self.queue_name,
            actor_name=ACTOR_NAME,
            args=(run_id,),
            kwargs={},
            options={},
            message_id=message_id or generate_unique_id(),
        )

    def send(self, run_id: str, message_id: str | None) -> None:
        with broker_errors(f"enqueue run {run_id}"):
            self.broker.enqueue(self.message(run_id, message_id))

    def holds_nothing(self) -> bool | None:
        """From one snapshot of the queue's counts; None on RabbitMQ, which does
        not say how many messages its consumers hold unacknowledged."""
        from ..monitoring.snapshot import inspect_broker

        counts = inspect_broker(self.broker, now=utcnow(), queues=(self.queue_name,)).queues[0]
        if counts.unacked is None:
            return None
        return counts.ready + counts.delayed + counts.unacked == 0


class OutboxDispatcher:
    """Sends nothing: the run stays in the outbox for the process that executes
    its mode. A tool outside the API process in thread mode (``podflow runs
    retry``) records the start this way; the API's thread-mode executor sends
    it at its next sweep."""

    durable = False

    def __init__(self, *, mode: Mode = "thread") -> None:
        self.mode = mode

    def new_message_id(self) -> None:
        return None

    def send(self, run_id: str, message_id: str | None) -> None:
        return None

    def holds_nothing(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class Submission:
    """What became of a submit or start.

    ``created`` is False when an idempotency key returned an existing run
    (compare ``run.request_hash``). ``enqueued`` is False when the send failed:
    the run is PENDING in the outbox and ``error`` says why; the sweep sends it.
    For an existing run it says whether a failed send is on record.
    """

    run: Run
    created: bool
    enqueued: bool
    error: str | None = None


def deliver(store: Store, dispatcher: Dispatcher, run_id: str, message_id: str | None, *, now: datetime) -> str | None:
    """Send a run whose start is recorded in the outbox, and record how it went.

    Returns None when sent, else the error (also recorded on the run). Store
    errors after a successful send are only logged: the sweep re-sends, and a
    duplicate delivery is harmless.
    """
    try:
        dispatcher.send(run_id, message_id)
    except BrokerUnavailable as exc:
        try:
            store.mark_enqueue_failed(run_id, error=str(exc), now=now)
        except StoreError as store_exc:
            log.warning("run %s: enqueue failure not recorded: %s", run_id, store_exc)
        return str(exc)
    if dispatcher.durable:
        try:
            store.mark_enqueued(run_id, now=now)
        except StoreError as exc:
            log.warning("run %s: sent, but not marked enqueued (the sweep re-sends): %s", run_id, exc)
    return None


def _new_run(dispatcher: Dispatcher, request: RunRequest, **fields: Any) -> Run:
    return Run.new(request, mode=dispatcher.mode, **fields)


def submit(
    store: Store,
    dispatcher: Dispatcher,
    request: RunRequest,
    *,
    now: datetime,
    idempotency_key: str | None = None,
    retry_of: str | None = None,
) -> Submission:
    """Validate, record and start a run.

    An existing run with the same ``idempotency_key`` is returned untouched
    (``created=False``); the caller compares ``request_hash`` to refuse a
    different body.

    Raises:
      InvalidInput: an unknown profile or source (``field`` names it); nothing
        was stored or sent.
      StoreUnavailable: nothing was stored.
    """
    validate_request(store, request)
    run = _new_run(dispatcher, request, now=now, idempotency_key=idempotency_key, retry_of=retry_of)
    run = run.model_copy(update={"outbox_at": run.created_at, "message_id": dispatcher.new_message_id()})
    stored, created = store.create_run(run)
    if not created:
        return Submission(stored, created=False, enqueued=stored.enqueue_error is None, error=stored.enqueue_error)
    error = deliver(store, dispatcher, stored.run_id, stored.message_id, now=now)
    return Submission(stored, created=True, enqueued=error is None, error=error)


def create(
    store: Store,
    dispatcher: Dispatcher,
    request: RunRequest,
    *,
    now: datetime,
    idempotency_key: str | None = None,
) -> tuple[Run, bool]:
    """Validate and record a draft run, not started (``POST /runs``). ``(run, created)``.

    Raises:
      InvalidInput: an unknown profile or source.
    """
    validate_request(store, request)
    return store.create_run(_new_run(dispatcher, request, now=now, idempotency_key=idempotency_key))


def ensure_same_request(run: Run, request: RunRequest, *, retry_of: str | None = None) -> Run:
    """Check that ``run``, found by its idempotency key, was made for this very
    request (and, for a retry, of the same run); returns it.

    Raises:
      IdempotencyConflict: the key was used before for a different request.
    """
    if run.request_hash != request.fingerprint() or run.retry_of != retry_of:
        raise IdempotencyConflict(
            f"Idempotency-Key {run.idempotency_key!r} was already used for a different request (run {run.run_id})"
        )
    return run


def start(store: Store, dispatcher: Dispatcher, run_id: str, *, now: datetime) -> Submission:
    """Start a draft run.

    Raises:
      RunNotFound: no such run.
      InvalidTransition: the run is not PENDING, or its start was already requested.
    """
    run = store.request_start(run_id, message_id=dispatcher.new_message_id(), now=now)
    if run is None:
        current = store.get_run(run_id)
        if current is None:
            raise RunNotFound(run_id)
        why = f"run is {current.status}" if current.status != "PENDING" else "run was already started"
        raise InvalidTransition(f"cannot start: {why}", run_id=run_id, status=str(current.status))
    error = deliver(store, dispatcher, run.run_id, run.message_id, now=now)
    return Submission(run, created=False, enqueued=error is None, error=error)


def redispatch(dispatcher: Dispatcher, run_id: str) -> None:
    """Send a released (lost) run again, under a new message id: the original
    message may still be delivered later (the broker requeues a dead worker's
    messages), and each delivery's result must keep its own key.

    Raises:
      BrokerUnavailable
    """
    dispatcher.send(run_id, dispatcher.new_message_id())
