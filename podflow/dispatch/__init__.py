"""Who executes runs: the :class:`Dispatcher` protocol, and its three implementations.

==================================  ===========================================
:mod:`podflow.dispatch.queue`       PODFLOW_MODE=queue: a Dramatiq message for
                                    ``generate_podcast``, to the workers
:mod:`podflow.dispatch.thread`      PODFLOW_MODE=thread: the API process's own
                                    pool, no broker
:mod:`podflow.dispatch.outbox`      sends nothing: the run waits in the outbox
                                    for the process that executes its mode; and
                                    :func:`~podflow.dispatch.outbox.deliver`,
                                    the transactional outbox every send goes through
==================================  ===========================================

The use-cases that dispatch (submit, start, retry) are in :mod:`podflow.lifecycle`;
the sweep re-sends what a crash or an outage left unsent. Importing this
package imports no broker: only ``queue`` needs Dramatiq.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from ..models import Mode, Priority, RunRef

__all__ = ["Dispatcher"]


class Dispatcher(Protocol):
    """Something that executes runs somewhere.

    ``durable``: a successful ``send`` means the run is safely queued (a
    broker), so the outbox marker may be cleared.
    """

    mode: Mode
    durable: bool

    def new_message_id(self) -> str | None:
        """A fresh message id (None when the dispatcher has no messages)."""

    def send(
        self,
        run_id: str,
        message_id: str | None,
        *,
        store_id: str | None = None,
        priority: Priority = "normal",
        start_at: datetime | None = None,
        now: datetime | None = None,
    ) -> None:
        """Send the run under ``message_id``, naming the store it belongs to, in
        its ``priority`` band. A scheduled run (``start_at`` after ``now``) is
        delivered no earlier than ``start_at``: held by the transport until then
        (a broker delay, a timer), and refused by the worker if it comes early.

        Raises:
          BrokerUnavailable: nothing was sent.
        """

    def missing(self, refs: Sequence[RunRef]) -> set[str] | None:
        """The run_ids among ``refs`` whose current message (``current_message_id``)
        this dispatcher holds nowhere any more: not ready, not delayed for a retry,
        not fetched by a worker (live or dead). None when it cannot tell.

        Raises:
          BrokerUnavailable
        """

    def requeue_orphans(self) -> None:
        """Give messages held by workers the broker counts dead back to their queue
        now, where the broker leaves that to chance (a no-op elsewhere).

        Raises:
          BrokerUnavailable
        """
