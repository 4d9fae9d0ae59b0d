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
message) clears the marker with ``mark_enqueued``. A non-durable one (thread
mode's in-memory queue, :class:`OutboxDispatcher`) leaves it in place until a
claim clears it: a restart finds the run.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from ..errors import BrokerUnavailable, StoreError
from ..logs import run_fields
from ..models import Mode, Priority, RunRef
from ..store.base import Store
from . import Dispatcher

__all__ = ["OutboxDispatcher", "Resent", "deliver", "resend"]

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


def deliver(
    store: Store,
    dispatcher: Dispatcher,
    run_id: str,
    message_id: str | None,
    *,
    now: datetime,
    priority: Priority = "normal",
    start_at: datetime | None = None,
) -> str | None:
    """Send a run whose start is recorded in the outbox, in its ``priority`` band
    and, scheduled, delayed until ``start_at``; record how it went.

    Returns None when sent, else the error (also recorded on the run). Store
    errors after a successful send are only logged: the sweep re-sends, and a
    duplicate delivery is harmless.
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
    if dispatcher.durable:
        try:
            store.mark_enqueued(run_id, now=now)
        except StoreError as exc:
            log.warning(
                "run %s: sent, but not marked enqueued (the sweep re-sends): %s",
                run_id,
                exc,
                extra=run_fields(run_id, message_id=message_id),
            )
    return None


#: what became of a :func:`resend`
Resent = Literal["sent", "unsent", "gone"]


def resend(store: Store, dispatcher: Dispatcher, ref: RunRef, *, now: datetime, reason: str) -> Resent:
    """Send a run whose message is gone again, under a new message id recorded
    first (``Store.redispatch``, with ``reason`` in its history), in its own band
    and, scheduled, still delayed until its start: ``sent``;
    ``unsent`` when the broker refused it (the run waits in the outbox, or for the
    next sweep); ``gone`` when the run no longer waits for a message (claimed,
    ended or deleted meanwhile), and nothing was sent.

    Raises:
      StoreUnavailable: nothing was recorded or sent.
    """
    message_id = dispatcher.new_message_id()
    if not store.redispatch(ref.run_id, message_id=message_id, now=now, reason=reason):
        return "gone"
    sent = deliver(store, dispatcher, ref.run_id, message_id, now=now, priority=ref.priority, start_at=ref.start_at)
    return "sent" if sent is None else "unsent"
