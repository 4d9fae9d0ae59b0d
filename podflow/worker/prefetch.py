"""How many messages a worker holds, and how often an idle one asks for more.

Dramatiq reads its prefetch and idle timeout from environment variables at
import time; :class:`QueuePrefetch` sets them per worker instead, from what a
podcast run needs (``build_broker`` adds it to the middleware).
"""

from __future__ import annotations

import dramatiq
import dramatiq.worker
from dramatiq.middleware import Middleware

__all__ = ["IDLE_POLL_MS", "QueuePrefetch"]

#: how long an idle consumer waits at most before asking the broker again (ms)
IDLE_POLL_MS = 100
_DRAMATIQ_WORKER_TIMEOUT_MS = 1000


class QueuePrefetch(Middleware):
    """Prefetch one message per worker thread (Dramatiq's default is two), and
    poll an idle queue every 100 ms at most (Dramatiq's default backs off to 1 s).

    A podcast run lasts up to an hour: a worker holding a second message while
    its threads are busy makes that run wait although another host is idle.
    An idle worker backing off to a second adds up to a second between submit
    and start; ten small Redis calls a second per idle consumer cost nothing.
    A ``dramatiq_queue_prefetch`` or ``dramatiq_worker_timeout`` environment
    variable set to another value than Dramatiq's default still wins.
    """

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        # consumers are created after this hook (when the worker middleware is
        # added), and read worker.queue_prefetch and worker.worker_timeout then
        if not dramatiq.worker.QUEUE_PREFETCH:
            worker.queue_prefetch = worker.worker_threads
        if worker.worker_timeout == _DRAMATIQ_WORKER_TIMEOUT_MS:  # Dramatiq's default, not the user's
            worker.worker_timeout = IDLE_POLL_MS
