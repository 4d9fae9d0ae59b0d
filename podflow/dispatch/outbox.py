"""Record a run, then hand it to whoever executes it: a transactional outbox.

A run to start is written with ``outbox_at`` (start requested) and its
``message_id`` *before* anything is sent. Then the message is sent; once the
broker has accepted it, ``mark_enqueued`` clears the outbox marker. If the
send fails (broker down), the run stays PENDING in the outbox, the error is
recorded with ``mark_enqueue_failed``, the caller is told — and the sweep
sends it later (``podflow.sweep``). An accepted run is never lost, and a run
sent twice is harmless: every delivery goes through ``claim``.

A run whose message the broker lost goes the same way again (:func:`resend`):
a new current message id is recorded with the run back in the outbox
(``Store.redispatch``), then it is delivered. A crash between the two leaves a
run whose current message the broker does not hold, which the sweep finds.

A durable dispatcher (the queue: a send returns once the broker has the
message) clears the marker with ``mark_enqueued``: at once, or, given
:class:`EnqueueMarks` (the API's submits), with many others in one statement a
moment later. A non-durable one (thread mode's in-memory queue,
:class:`OutboxDispatcher`) leaves it in place until a claim clears it: a
restart finds the run.

A run scheduled further ahead than the schedule horizon (PODFLOW_SCHEDULE_HORIZON)
is not sent at all at first: its ``outbox_at`` is set to the horizon before its
start (:func:`hand_over_at`), and the sweep's outbox rule, which only looks at
runs whose ``outbox_at`` has passed, sends it then, delayed until its start. So
the broker (whose Redis consumers hold every delayed message in a worker's
memory, a bounded number per queue) only ever holds the next horizon's worth.

Either way a confirmation may never be written (the process dies first, the
store refuses it): the run is then still in the outbox, where the sweep finds
it after PODFLOW_OUTBOX_GRACE and marks it if the broker holds its message, or
sends it again (a duplicate delivery is harmless); its claim clears the marker
too. Nothing relies on the confirmation but the sweep's own bookkeeping.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Literal

from ..errors import BrokerUnavailable, StoreError
from ..logs import run_fields
from ..models import Mode, Priority, RunRef
from ..store.base import Store
from ..timeutil import seconds, utcnow
from . import Dispatcher

__all__ = ["EnqueueMarks", "OutboxDispatcher", "Resent", "deliver", "hand_over_at", "resend"]

log = logging.getLogger(__name__)


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

    def send(self, run_id: str, message_id: str | None, **options: object) -> None:
        return None

    def missing(self, refs: Sequence[RunRef]) -> None:
        return None

    def requeue_orphans(self) -> None:
        return None


class EnqueueMarks:
    """Enqueue confirmations written in batches: one ``Store.mark_enqueued_many``
    for the sends of ``delay_s`` (or of ``batch`` sends, whichever comes first),
    by a thread of its own, started with the first confirmation.

    A confirmation that is never written leaves its run in the outbox, which the
    sweep recovers (see the module docstring). Until it is written, a replay of
    the request that made the run finds it "in flight" (``lifecycle.in_flight``):
    submits with an Idempotency-Key confirm at once. ``close()`` writes what is
    left; confirmations after it are written at once.
    """

    def __init__(
        self,
        store: Store,
        *,
        delay_s: float = 0.05,
        batch: int = 500,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.delay_s = delay_s
        self.batch = batch
        self._clock = clock
        self._cond = threading.Condition()
        self._pending: dict[str, str | None] = {}
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._closed = False

    def add(self, run_id: str, message_id: str | None) -> None:
        """Confirm that ``message_id``, ``run_id``'s message, is with the broker (soon)."""
        with self._cond:
            if not self._closed:
                self._pending[run_id] = message_id
                if self._thread is None or self._pid != os.getpid():  # first use, or a forked child
                    self._pid = os.getpid()
                    self._thread = threading.Thread(target=self._loop, name="podflow-enqueue-marks", daemon=True)
                    self._thread.start()
                if len(self._pending) in (1, self.batch):  # the batch's clock starts, or it is full: not every send
                    self._cond.notify()
                return
        _mark(self.store, {run_id: message_id}, now=self._clock())

    def flush(self) -> int:
        """Write the confirmations gathered so far, now; how many runs were marked."""
        with self._cond:
            sent, self._pending = self._pending, {}
        return _mark(self.store, sent, now=self._clock()) if sent else 0

    def close(self) -> None:
        """Write what is left and stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
            thread = self._thread if self._pid == os.getpid() else None
        if thread is not None:
            thread.join()
        self.flush()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                deadline = time.monotonic() + self.delay_s
                while len(self._pending) < self.batch and not self._closed:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                closing = self._closed
            self.flush()
            if closing:
                return


def _mark(store: Store, sent: dict[str, str | None], *, now: datetime) -> int:
    """Record sends the broker accepted; a store error is only logged (the sweep recovers)."""
    try:
        return store.mark_enqueued_many(sent, now=now)
    except StoreError as exc:
        first = next(iter(sent))
        log.warning(
            "%d run(s) sent, but not marked enqueued (the sweep marks or re-sends them): %s",
            len(sent),
            exc,
            extra=run_fields(first, message_id=sent[first]),
        )
        return 0


def hand_over_at(start_at: datetime | None, *, now: datetime, horizon_s: float | None) -> datetime:
    """When a run starting at ``start_at`` goes to the broker (its ``outbox_at``):
    ``now``, or, scheduled more than ``horizon_s`` ahead, ``horizon_s`` before its
    start (the sweep sends it then). None ``horizon_s``: always now."""
    if start_at is None or horizon_s is None:
        return now
    return max(now, start_at - seconds(horizon_s))


def deliver(
    store: Store,
    dispatcher: Dispatcher,
    run_id: str,
    message_id: str | None,
    *,
    now: datetime,
    marks: EnqueueMarks | None = None,
    priority: Priority = "normal",
    start_at: datetime | None = None,
) -> str | None:
    """Send a run whose start is recorded in the outbox, in its ``priority`` band
    and, scheduled, delayed until ``start_at``; record how it went.

    Returns None when sent, else the error (also recorded on the run). The
    confirmation of a durable send is written at once, or by ``marks`` in its next
    batch; a store error there is only logged: the sweep marks or re-sends the
    run, and a duplicate delivery is harmless.
    """
    try:
        dispatcher.send(run_id, message_id, store_id=store.store_id, priority=priority, start_at=start_at, now=now)
    except BrokerUnavailable as exc:
        try:
            store.mark_enqueue_failed(run_id, error=str(exc), now=now)
        except StoreError as store_exc:
            about = run_fields(run_id, message_id=message_id)
            log.warning("run %s: enqueue failure not recorded: %s", run_id, store_exc, extra=about)
        return str(exc)
    if not dispatcher.durable:
        return None
    if marks is not None:
        marks.add(run_id, message_id)
    else:
        _mark(store, {run_id: message_id}, now=now)
    return None


#: what became of a :func:`resend`
Resent = Literal["sent", "unsent", "held", "gone"]


def resend(
    store: Store, dispatcher: Dispatcher, ref: RunRef, *, now: datetime, reason: str, horizon_s: float | None = None
) -> Resent:
    """Send a run whose message is gone again, under a new message id recorded
    first (``Store.redispatch``, with ``reason`` in its history), in its own band
    and, scheduled, still delayed until its start: ``sent``;
    ``unsent`` when the broker refused it (the run waits in the outbox, or for the
    next sweep); ``held`` when it is scheduled further ahead than ``horizon_s``:
    recorded in the outbox until then (:func:`hand_over_at`), nothing sent;
    ``gone`` when the run no longer waits for a message (claimed, ended or deleted
    meanwhile), and nothing was sent.

    Raises:
      StoreUnavailable: nothing was recorded or sent.
    """
    message_id = dispatcher.new_message_id()
    outbox_at = hand_over_at(ref.start_at, now=now, horizon_s=horizon_s)
    if not store.redispatch(ref.run_id, message_id=message_id, now=now, reason=reason, outbox_at=outbox_at):
        return "gone"
    if outbox_at > now:
        return "held"
    sent = deliver(store, dispatcher, ref.run_id, message_id, now=now, priority=ref.priority, start_at=ref.start_at)
    return "sent" if sent is None else "unsent"
