"""``python -m bench.bands``: how long a high run waits behind a backlog, and how late a scheduled run starts.

One real worker (``dramatiq podflow.actors``, one process, one thread) on a
private redis-server, the SQLite store, the test generators:

- **priority**: N normal runs of ``slow:S`` queued, then one high and one more
  normal run: each one's wait, from its submit to its claim (history STARTED).
  Ideal for the high run: what is left of the run executing (< S) plus a poll.
- **schedule**: K runs scheduled T seconds ahead, sent at once with a broker
  delay: each one's lateness, from ``start_at`` to its claim.

Figures are reported, never asserted (a shared 2-core machine: see the load).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from podflow.lifecycle import submit
from podflow.models import Run
from podflow.states import RunStatus
from podflow.store.base import Store
from podflow.timeutil import utcnow
from tests.execution import finished, one_thread_worker, request, wait_for
from tests.servers import RedisServer


def _claimed(run: Run) -> float:
    at = next(h.at for h in run.history if h.status is RunStatus.STARTED)
    return at.timestamp()


def main(backlog: int = 20, slow_s: float = 0.5, scheduled: int = 10, ahead_s: float = 2.0) -> None:
    with tempfile.TemporaryDirectory(prefix="podflow-bench-bands-") as tmp:
        data = Path(tmp)
        redis_server = RedisServer(data / "redis").start()
        try:
            with one_thread_worker(data, redis_server.url) as (store, dispatcher, _):
                _measure(store, dispatcher, backlog, slow_s, scheduled, ahead_s)
        finally:
            redis_server.stop()


def _measure(store: Store, dispatcher: Any, backlog: int, slow_s: float, scheduled: int, ahead_s: float) -> None:
    queued = [submit(store, dispatcher, request(f"slow:{slow_s}"), now=utcnow()).run for _ in range(backlog)]
    wait_for(lambda: store.get_run(queued[0].run_id).status is RunStatus.STARTED, timeout=30)
    high_request = request(f"slow:{slow_s}").model_copy(update={"priority": "high"})
    high = submit(store, dispatcher, high_request, now=utcnow()).run
    normal = submit(store, dispatcher, request(f"slow:{slow_s}"), now=utcnow()).run
    timeout = 60 + backlog * slow_s * 3
    for run in (high, normal):
        done = finished(store, run.run_id, timeout=timeout)
        wait = _claimed(done) - run.created_at.timestamp()
        print(f"priority: {done.priority:<6} submitted behind {backlog} x {slow_s} s: waited {wait:6.2f} s")
    for run in queued:
        finished(store, run.run_id, timeout=timeout)

    late: list[float] = []
    runs = []
    for _ in range(scheduled):
        when = request("noop").model_copy(update={"start_at": utcnow() + timedelta(seconds=ahead_s)})
        runs.append(submit(store, dispatcher, when, now=utcnow()).run)
    for run in runs:
        done = finished(store, run.run_id, timeout=30 + ahead_s)
        assert run.start_at is not None
        late.append(_claimed(done) - run.start_at.timestamp())
    print(
        f"schedule: {scheduled} runs {ahead_s:g} s ahead: started late by median"
        f" {statistics.median(late):.3f} s, min {min(late):.3f} s, max {max(late):.3f} s"
    )
    print(f"load average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs", file=sys.stderr)


if __name__ == "__main__":
    main()
