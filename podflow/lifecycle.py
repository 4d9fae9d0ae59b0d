"""The use-cases on runs the API and the CLI call: submit, create, start, cancel, retry, delete, result files.

Each status change is one store write (the state machine decides, see
:mod:`podflow.states`); these functions validate the request, hand started
runs to a :class:`~podflow.dispatch.Dispatcher` through the outbox
(:func:`podflow.dispatch.outbox.deliver`), turn a refusal into the right error
and tidy up files. Time is the ``now`` argument.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from .deletion import delete_ended, remove_files
from .dispatch import Dispatcher
from .dispatch.outbox import EnqueueMarks, deliver, hand_over_at
from .errors import (
    IdempotencyConflict,
    InvalidInput,
    InvalidTransition,
    NamesMissing,
    RequestInFlight,
    ResultNotFound,
    RunNotFound,
)
from .generation.request import forget_profiles, profiles_known, validate_request
from .models import Run, RunRequest
from .paths import RESULT_FILES
from .states import RunStatus, is_terminal
from .store.base import Store
from .timeutil import seconds
from .webhooks.targets import NO_WEBHOOKS, WebhookTargets

__all__ = [
    "RETRYABLE",
    "Submission",
    "cancel",
    "check_schedule",
    "create",
    "delete",
    "ensure_same_request",
    "in_flight",
    "replay",
    "get_run",
    "result_file",
    "retry",
    "start",
    "submit",
]

#: statuses a run may be retried from (as a new run)
RETRYABLE = frozenset({RunStatus.FAILURE, RunStatus.REVOKED})
#: a checked insert that keeps finding a name gone (a profile deleted and made again
#: over and over) gives up after this many tries
_NAME_CHECKS = 3


@dataclass(frozen=True, slots=True)
class Submission:
    """What became of a submit or start.

    ``created`` is False when an idempotency key returned an existing run
    (compare ``run.request_hash``). ``enqueued`` is False when the send failed:
    the run is PENDING in the outbox and ``error`` says why; the sweep sends it.
    For an existing run it says whether a failed send is on record. ``held``: a
    run scheduled beyond the schedule horizon, recorded but not sent yet (nothing
    failed: ``enqueued`` is True); the sweep sends it the horizon before its start.
    """

    run: Run
    created: bool
    enqueued: bool
    error: str | None = None
    held: bool = False


def get_run(store: Store, run_id: str) -> Run:
    """The run ``run_id``.

    Raises:
      RunNotFound
    """
    run = store.get_run(run_id)
    if run is None:
        raise RunNotFound(run_id)
    return run


def _new_run(dispatcher: Dispatcher, request: RunRequest, webhooks: WebhookTargets, **fields: Any) -> Run:
    """A new run for ``request``, its webhook's URL decided now (the request's, else the default)."""
    callback_url = webhooks.resolve(request.callback_url)
    run = Run.new(request, mode=dispatcher.mode, **fields)
    return run if callback_url == run.callback_url else run.model_copy(update={"callback_url": callback_url})


def _record(store: Store, request: RunRequest, run: Run) -> tuple[Run, bool]:
    """Insert ``run`` (made for ``request``) if the profiles and sources it names
    exist, which the insert itself checks; the profiles are read first only when
    this process has not found them readable yet, or the insert found one gone
    (then :func:`validate_request` says which).

    Raises:
      InvalidInput: an unknown or unreadable profile, or an unknown source.
    """
    for _ in range(_NAME_CHECKS):
        if not profiles_known(store, request):
            validate_request(store, request)
        try:
            return store.create_run(run, check_names=True)
        except NamesMissing as exc:
            forget_profiles(store, request)
            missing = exc
    raise missing


def _deliver(
    store: Store, dispatcher: Dispatcher, run: Run, *, now: datetime, marks: EnqueueMarks | None = None
) -> str | None:
    return deliver(
        store,
        dispatcher,
        run.run_id,
        run.message_id,
        now=now,
        marks=marks,
        priority=run.priority,
        start_at=run.start_at,
    )


def check_schedule(request: RunRequest, *, now: datetime, max_ahead_s: float | None) -> None:
    """Refuse a ``start_at`` that is not in the future, or further ahead than
    ``max_ahead_s`` (PODFLOW_MAX_SCHEDULE_AHEAD; None: no limit).

    Raises:
      InvalidInput: naming ``start_at``.
    """
    if request.start_at is None:
        return
    if request.start_at <= now:
        raise InvalidInput(f"must be in the future (it is {now.isoformat()} now)", field="start_at")
    if max_ahead_s is not None and request.start_at > now + seconds(max_ahead_s):
        raise InvalidInput(f"must be at most {max_ahead_s:g} s ahead (PODFLOW_MAX_SCHEDULE_AHEAD)", field="start_at")


def _existing(run: Run) -> Submission:
    """The submission of a run an earlier request with the same Idempotency-Key made."""
    return Submission(run, created=False, enqueued=run.enqueue_error is None, error=run.enqueue_error)


def _replay_of(
    store: Store, request: RunRequest, *, now: datetime, max_ahead_s: float | None, idempotency_key: str | None
) -> Run | None:
    """:func:`check_schedule`; but the run ``idempotency_key`` already made, if any,
    when the check refuses: a replay's ``start_at`` was checked when the run was
    made, and may be past by now (the caller compares the bodies as for any replay).
    Such a replay is answered without the checks a new run gets (its callback host,
    its profiles), as the stored run passed them when it was made.

    Raises:
      InvalidInput: naming ``start_at``, and the key made no run.
    """
    try:
        check_schedule(request, now=now, max_ahead_s=max_ahead_s)
    except InvalidInput:
        replayed = store.get_run_by_idempotency_key(idempotency_key) if idempotency_key else None
        if replayed is None:
            raise
        return replayed
    return None


def submit(
    store: Store,
    dispatcher: Dispatcher,
    request: RunRequest,
    *,
    now: datetime,
    idempotency_key: str | None = None,
    retry_of: str | None = None,
    marks: EnqueueMarks | None = None,
    webhooks: WebhookTargets = NO_WEBHOOKS,
    max_schedule_ahead_s: float | None = None,
    schedule_horizon_s: float | None = None,
) -> Submission:
    """Validate, record and start a run: one insert (the run in the outbox, which
    also checks what it names), the send (overlapping the insert's disk flush,
    :meth:`Store.deferred_sync`: a message may reach a worker before its run is
    on disk, never before it is committed), and the send's confirmation, which
    ``marks`` writes in its next batch (a submit with an ``idempotency_key``
    confirms at once, so that a replay finds its hand-over done). Its completion
    webhook goes where ``webhooks`` says. A scheduled run (``start_at``) is sent
    now with a delay until then (the store keeps it PENDING; the sweep sends it
    again if the broker loses it); one scheduled more than ``schedule_horizon_s``
    ahead (PODFLOW_SCHEDULE_HORIZON; None: none is held) is only recorded, held in
    the outbox until the horizon before its start, when the sweep sends it
    (``held``; :func:`podflow.dispatch.outbox.hand_over_at`).

    An existing run with the same ``idempotency_key`` is returned untouched
    (``created=False``), even once its ``start_at`` has passed; the caller
    compares ``request_hash`` to refuse a different body.

    Raises:
      InvalidInput: an unknown profile or source, a callback_url whose host is
        not allowed, a ``start_at`` in the past or more than
        ``max_schedule_ahead_s`` ahead (``field`` names it); nothing was stored or sent.
      StoreUnavailable: nothing was stored.
    """
    replayed = _replay_of(store, request, now=now, max_ahead_s=max_schedule_ahead_s, idempotency_key=idempotency_key)
    if replayed is not None:
        return _existing(replayed)
    run = _new_run(dispatcher, request, webhooks, now=now, idempotency_key=idempotency_key, retry_of=retry_of)
    message_id = dispatcher.new_message_id()
    outbox_at = hand_over_at(run.start_at, now=run.created_at, horizon_s=schedule_horizon_s)
    run = run.model_copy(update={"outbox_at": outbox_at, "message_id": message_id, "current_message_id": message_id})
    # the insert's disk flush overlaps the send; submit returns once both are done
    with store.deferred_sync():
        stored, created = _record(store, request, run)
        if not created:
            return _existing(stored)
        if outbox_at > run.created_at:  # held until its time: the insert is all, the sweep sends it
            return Submission(stored, created=True, enqueued=True, held=True)
        marks = None if idempotency_key else marks
        error = _deliver(store, dispatcher, stored, now=now, marks=marks)
    return Submission(stored, created=True, enqueued=error is None, error=error)


def create(
    store: Store,
    dispatcher: Dispatcher,
    request: RunRequest,
    *,
    now: datetime,
    idempotency_key: str | None = None,
    webhooks: WebhookTargets = NO_WEBHOOKS,
    max_schedule_ahead_s: float | None = None,
) -> tuple[Run, bool]:
    """Validate and record a draft run, not started (``POST /runs``). ``(run, created)``.
    A ``start_at`` holds it when started (a start after that time starts it at once).

    Raises:
      InvalidInput: an unknown profile or source, a callback_url whose host is not
        allowed, or ``start_at`` (see :func:`submit`).
    """
    replayed = _replay_of(store, request, now=now, max_ahead_s=max_schedule_ahead_s, idempotency_key=idempotency_key)
    if replayed is not None:
        return replayed, False
    return _record(store, request, _new_run(dispatcher, request, webhooks, now=now, idempotency_key=idempotency_key))


def ensure_same_request(run: Run, request: RunRequest, *, retry_of: str | None = None) -> Run:
    """Check that ``run``, found by its idempotency key, was made for this very
    request (and, for a retry, of the same run); returns it.

    Raises:
      IdempotencyConflict: the key was used before for a different request.
    """
    if not request.matches(run.request_hash) or run.retry_of != retry_of:
        raise IdempotencyConflict(
            f"Idempotency-Key {run.idempotency_key!r} was already used for a different request (run {run.run_id})"
        )
    return run


def in_flight(run: Run, *, now: datetime) -> bool:
    """Whether the request that made ``run`` may still be running: recorded and
    asked to start, its hand-over to the broker due (not held until its schedule)
    and neither confirmed nor failed."""
    return (
        run.status is RunStatus.PENDING
        and run.outbox_at is not None
        and run.outbox_at <= now
        and run.enqueued_at is None
        and run.enqueue_error is None
    )


def replay(submission: Submission, request: RunRequest, *, now: datetime, retry_of: str | None = None) -> Run:
    """The run an Idempotency-Key's earlier request made, for a request sent again.

    Raises:
      IdempotencyConflict: the key was used for a different request.
      RequestInFlight: the earlier request has not finished handing its run over.
    """
    run = ensure_same_request(submission.run, request, retry_of=retry_of)
    if in_flight(run, now=now):
        raise RequestInFlight(
            f"a request with Idempotency-Key {run.idempotency_key!r} is still in flight (run {run.run_id});"
            " try again shortly",
            run_id=run.run_id,
        )
    return run


def start(
    store: Store, dispatcher: Dispatcher, run_id: str, *, now: datetime, schedule_horizon_s: float | None = None
) -> Submission:
    """Start a draft run; one scheduled beyond ``schedule_horizon_s`` is held
    until the horizon before its start, as by :func:`submit`.

    Raises:
      RunNotFound: no such run.
      InvalidTransition: the run is not PENDING, or its start was already requested.
    """
    draft = get_run(store, run_id)  # its start_at (a draft's request never changes)
    outbox_at = hand_over_at(draft.start_at, now=now, horizon_s=schedule_horizon_s)
    run = store.request_start(run_id, message_id=dispatcher.new_message_id(), now=now, outbox_at=outbox_at)
    if run is None:
        current = get_run(store, run_id)
        why = f"run is {current.status}" if current.status != "PENDING" else "run was already started"
        raise InvalidTransition(f"cannot start: {why}", run_id=run_id, status=str(current.status))
    if outbox_at > now:
        return Submission(run, created=False, enqueued=True, held=True)
    error = _deliver(store, dispatcher, run, now=now)
    return Submission(run, created=False, enqueued=error is None, error=error)


def cancel(store: Store, run_id: str, *, now: datetime, reason: str = "cancelled") -> Run:
    """PENDING or STARTED → REVOKED at once. A running generation is interrupted
    by its worker's heartbeat within two heartbeat intervals.

    Raises:
      RunNotFound
      InvalidTransition: the run is already terminal.
    """
    revoked = store.cancel(run_id, now=now, reason=reason)
    if revoked is None:
        run = get_run(store, run_id)
        raise InvalidTransition(f"cannot cancel: run is already {run.status}", run_id=run_id, status=str(run.status))
    return revoked


def retry(
    store: Store,
    dispatcher: Dispatcher,
    run_id: str,
    *,
    now: datetime,
    idempotency_key: str | None = None,
    marks: EnqueueMarks | None = None,
    webhooks: WebhookTargets = NO_WEBHOOKS,
) -> Submission:
    """Submit a new run with the same request as a FAILURE or REVOKED one
    (``retry_of`` names the original, which is left as it is). The new run
    reuses the original's checkpoints whose inputs are unchanged (its result's
    ``reused_from_retried`` says how many).

    Raises:
      RunNotFound
      InvalidTransition: the run is not FAILURE or REVOKED.
      InvalidInput: a profile or source it names no longer exists.
    """
    run = get_run(store, run_id)
    if run.status not in RETRYABLE:
        raise InvalidTransition(
            f"cannot retry: run is {run.status} (only FAILURE or REVOKED runs are retried)",
            run_id=run_id,
            status=str(run.status),
        )
    # the same priority; a retry of a scheduled run is not scheduled: it starts now
    return submit(
        store,
        dispatcher,
        run.request,
        now=now,
        idempotency_key=idempotency_key,
        retry_of=run_id,
        marks=marks,
        webhooks=webhooks,
    )


def delete(store: Store, run_id: str, *, data_dir: Path) -> None:
    """Delete the run's record, its files under ``podcasts/<run_id>/`` and its
    checkpoints (in the order :mod:`podflow.deletion` explains).

    Raises:
      RunNotFound
      InvalidTransition: the run is STARTED (cancel it first).
    """
    run = get_run(store, run_id)
    if is_terminal(run.status):
        if not delete_ended(store, [run_id], data_dir=data_dir):
            raise RunNotFound(run_id)  # deleted meanwhile
        return
    if run.status is RunStatus.STARTED or not store.delete_run(run_id):
        current = store.get_run(run_id)
        if current is None:
            raise RunNotFound(run_id)
        raise InvalidTransition(
            f"cannot delete: run is {current.status}; cancel it first", run_id=run_id, status=str(current.status)
        )
    remove_files(data_dir, run_id)


def result_file(run: Run, name: str, *, data_dir: Path) -> Path:
    """The absolute path of a SUCCESS run's result file ``name`` (a key of :data:`~podflow.paths.RESULT_FILES`).

    The stored path is relative to ``data_dir``; one that resolves outside it
    (a tampered record, a symlink) is refused as if absent.

    Raises:
      ResultNotFound: the run is not SUCCESS, produced no such file, or the
        file is missing from disk.
    """
    if run.status is not RunStatus.SUCCESS or run.result is None:
        raise ResultNotFound(run.run_id, name, f"the run is {run.status}")
    relative: str | None = getattr(run.result, RESULT_FILES[name])
    if not relative:
        raise ResultNotFound(run.run_id, name, "the generator produced none")
    root = Path(data_dir).resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise ResultNotFound(run.run_id, name, "the file is missing from the data directory")
    return path
