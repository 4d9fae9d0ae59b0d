"""What a worker does with a delivery that it must not run: it puts the message back.

Four cases, all decided before or instead of a claim:

- **another store's message** (two deployments sharing one queue, e.g. two
  development stacks on the Redis at 6379): the message names the store its run
  belongs to (``STORE_OPTION``); a worker of another store never claims it and
  never acknowledges it away, but puts it back, delayed by
  :data:`FOREIGN_DELAY_S` so that two such pools cannot pass messages back and
  forth in a tight loop, for that store's own workers. A WARNING names both
  stores, once a minute per foreign store (:class:`ForeignStores`);
- **a scheduled run's message before its start** (``START_OPTION``: a re-send
  that lost its delay, a clock ahead of the sender's): put back until then;
- **a lower band's message while a higher band's waits**
  (:class:`~podflow.worker.bands.BandOrder`): put back at the head of its own
  queue, at once (:func:`~podflow.worker.messages.put_first`);
- **a deferred delivery** (:meth:`podflow.runner.Runner.execute`): the run's own
  message while an attempt that may be dead holds the run; it comes back when
  that attempt's heartbeat would be stale.

Putting back is enqueueing the same message on the delay queue before the
delivery ends (and is acknowledged): the message is held by the broker
throughout (:mod:`podflow.worker.messages`), and keeps its Redis name, its
options and its retry count. The delivery stores no result.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import dramatiq

from ..errors import BrokerUnavailable
from .bands import BandOrder
from .broker import START_OPTION, broker_errors
from .messages import is_redis, put_first

__all__ = ["FOREIGN_DELAY_S", "ForeignStores", "early_by_s", "put_back", "yield_to_higher_band"]

log = logging.getLogger(__name__)

#: how long a message of another store waits before any worker sees it again
FOREIGN_DELAY_S = 1.0
#: at most one warning per foreign store in this long
WARN_EVERY_S = 60.0


def put_back(broker: dramatiq.Broker, message: Any, *, delay_s: float) -> None:
    """Enqueue ``message`` (the current delivery) again after ``delay_s``; this
    delivery then stores no result.

    Raises:
      BrokerUnavailable: nothing was put back (the delivery fails, and Dramatiq
        retries it: the message stays held meanwhile).
    """
    with broker_errors(f"put message {message.message_id} back"):
        broker.enqueue(message, delay=max(1, int(delay_s * 1000)))
    message.options["store_results"] = False  # this delivery ran nothing: no result to store


def early_by_s(message: Any, *, now_s: float) -> float:
    """How many seconds before its run's scheduled start ``message`` came (0: not early)."""
    start_ms = message.options.get(START_OPTION)
    if not isinstance(start_ms, int | float):
        return 0.0
    return max(0.0, start_ms / 1000 - now_s)


def yield_to_higher_band(broker: dramatiq.Broker, message: Any, bands: BandOrder) -> bool:
    """Put ``message`` back at the head of its queue when a higher band's message
    waits (:meth:`BandOrder.should_yield`); whether it was. The delivery then
    stores no result. A broker that cannot be asked is no reason to wait: False.
    """
    try:
        with broker_errors(f"yield message {message.message_id}"):
            if not is_redis(broker) or not bands.should_yield(broker, message):
                return False
            put_first(broker, message)
    except BrokerUnavailable as exc:
        log.warning("band order not kept for message %s: %s", message.message_id, exc)
        return False
    message.options["store_results"] = False
    log.debug("message %s yields to a higher band", message.message_id)
    return True


class ForeignStores:
    """Says, at most once per ``every_s`` per foreign store, that messages of another
    store reach this worker. Thread-safe; ``clock`` is monotonic seconds."""

    def __init__(self, *, every_s: float = WARN_EVERY_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s = every_s
        self._clock = clock
        self._lock = threading.Lock()
        self._warned: dict[str, float] = {}
        #: messages put back per foreign store, since the process started
        self.counts: dict[str, int] = {}

    def seen(self, message_id: str, *, theirs: str, ours: str, queue: str) -> bool:
        """Count a message of store ``theirs`` reaching a worker of store ``ours``;
        whether this one was warned about."""
        now = self._clock()
        with self._lock:
            self.counts[theirs] = self.counts.get(theirs, 0) + 1
            last = self._warned.get(theirs)
            if last is not None and now - last < self.every_s:
                log.debug("message %s of store %s put back for its own workers", message_id, theirs)
                return False
            self._warned[theirs] = now
            count = self.counts[theirs]
        log.warning(
            "message %s belongs to store %s, not to this worker's store %s: put back for that store's own workers "
            "(%d so far). Two deployments share queue %r on one broker; give each its own PODFLOW_QUEUE",
            message_id,
            theirs,
            ours,
            count,
            queue,
        )
        return True
