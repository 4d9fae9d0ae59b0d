"""How many messages a worker holds, and how often an idle one asks for more.

Dramatiq reads its prefetch and idle timeout from environment variables at
import time; :class:`QueuePrefetch` sets them per worker instead, from what a
podcast run needs (``build_broker`` adds it to the middleware).
"""

from __future__ import annotations

from typing import Any

import dramatiq
import dramatiq.worker
from dramatiq.common import dq_name
from dramatiq.middleware import Middleware

__all__ = ["IDLE_POLL_MS", "SLOW_POLL_MS", "QueuePrefetch"]

#: how long an idle consumer waits at most before asking the broker again (ms)
IDLE_POLL_MS = 100
#: the same, for a queue whose messages wait anyway: a delay queue (a retry's
#: backoff, a message put back, a scheduled run) and the low band
SLOW_POLL_MS = 1000
_DRAMATIQ_WORKER_TIMEOUT_MS = 1000


class QueuePrefetch(Middleware):
    """Prefetch one message per worker thread (Dramatiq's default is two), and
    poll an idle queue every 100 ms at most (Dramatiq's default backs off to 1 s),
    except the ``slow_queues`` and every delay queue, which back off to a second.

    A podcast run lasts up to an hour: a worker holding a second message while
    its threads are busy makes that run wait although another host is idle.
    An idle worker backing off to a second adds up to a second between submit
    and start, so the queues a run starts from are polled often. But an idle
    poll is a Redis script call (about a millisecond of a worker's CPU on a
    small virtual machine), and a worker consumes six queues (three bands and
    their delay queues): polling them all every 100 ms, and waking every
    worker thread as often, kept an idle 2-process worker at 14 % of a core. A
    delayed message waits for its time anyway and a low-band run yields to the
    others, so a second more there costs nothing; the worker threads keep
    Dramatiq's one-second wait (it only bounds how soon they notice a stop).
    A ``dramatiq_queue_prefetch`` or ``dramatiq_worker_timeout`` environment
    variable set to another value than Dramatiq's default still wins (for
    every queue).

    Parameters:
      slow_queues: queues (besides the delay queues) polled every second at most.
    """

    def __init__(self, *, slow_queues: frozenset[str] = frozenset()) -> None:
        self.slow_queues = slow_queues
        self._poll_ms: int | None = None  # None: the user's worker timeout, for every queue

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        # consumers are created after this hook (when the worker middleware is
        # added), and read worker.queue_prefetch then
        if not dramatiq.worker.QUEUE_PREFETCH:
            worker.queue_prefetch = worker.worker_threads
        if worker.worker_timeout == _DRAMATIQ_WORKER_TIMEOUT_MS:  # Dramatiq's default, not the user's
            self._poll_ms = IDLE_POLL_MS

    def after_consumer_thread_boot(self, broker: dramatiq.Broker, thread: Any) -> None:
        # emitted by each consumer thread before it first asks its queue for messages
        if self._poll_ms is None:
            return
        queue = thread.queue_name
        slow = queue in self.slow_queues or queue.endswith(dq_name(""))
        thread.worker_timeout = SLOW_POLL_MS if slow else self._poll_ms
