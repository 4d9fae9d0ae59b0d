"""The scheduler process: an APScheduler ``BlockingScheduler`` sweeping every PODFLOW_SWEEP_INTERVAL,
and delivering completion webhooks every second.

One interval job, ``sweep``, calls :meth:`podflow.sweep.service.Sweeper.scheduled_sweep`
(which logs one line per sweep and never raises, so a store or broker outage
only costs that interval). It runs once at start, then every interval plus up
to :func:`jitter_s` (so scaled-out schedulers spread out), coalescing missed
runs into one (``coalesce``), never two at once (``max_instances=1``, one
executor thread), and skipping a run that is more than an interval late
(``misfire_grace_time``): the next one is due by then anyway.

A second job, ``webhooks``, runs :meth:`podflow.webhooks.delivery.Deliverer.scheduled_delivery`
every :data:`DELIVERY_INTERVAL_S` on its own executor thread (a long sweep never
holds a webhook back): a due delivery or retry goes out within about a second of
its time. Its obligations live in the store, so a restarted scheduler (or another
one) sends what this one left.

BlockingScheduler installs no signal handlers. On SIGTERM or SIGINT this
process shuts the scheduler down from a helper thread (``shutdown(wait=True)``
joins the executor, so it must not run in the signal handler on the main
thread that also drives the scheduler): no new sweep starts, the one in
progress finishes, then the store is closed and the process exits 0.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from datetime import UTC, datetime
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.blocking import BlockingScheduler

from podflow.exitcodes import RET_OK
from podflow.sweep.service import Sweeper
from podflow.webhooks.delivery import Deliverer

__all__ = ["SweepScheduler", "jitter_s"]

log = logging.getLogger("scheduler")

JOB_ID = "sweep"
DELIVERY_JOB_ID = "webhooks"
#: seconds between two looks for due webhooks
DELIVERY_INTERVAL_S = 1.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def jitter_s(interval_s: float) -> float:
    """A little randomness added to each run: a tenth of the interval, at most 10 s."""
    return min(10.0, interval_s / 10)


class SweepScheduler:
    """A BlockingScheduler with the sweep job (and the webhook delivery job, given a
    deliverer), and graceful stop on SIGTERM/SIGINT."""

    def __init__(self, sweeper: Sweeper, *, interval_s: float, deliverer: Deliverer | None = None) -> None:
        self.sweeper = sweeper
        self.interval_s = interval_s
        self.deliverer = deliverer
        executors = {"default": ThreadPoolExecutor(max_workers=1), DELIVERY_JOB_ID: ThreadPoolExecutor(max_workers=1)}
        self.scheduler = BlockingScheduler(timezone=UTC, executors=executors)
        self.scheduler.add_job(
            sweeper.scheduled_sweep,
            trigger="interval",
            seconds=interval_s,
            jitter=jitter_s(interval_s),
            coalesce=True,
            max_instances=1,
            misfire_grace_time=max(1, round(interval_s)),
            next_run_time=datetime.now(UTC),  # sweep at start: recover what a downtime left behind
            id=JOB_ID,
            name=JOB_ID,
        )
        if deliverer is not None:
            self.scheduler.add_job(
                deliverer.scheduled_delivery,
                trigger="interval",
                seconds=DELIVERY_INTERVAL_S,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=1,
                next_run_time=datetime.now(UTC),
                id=DELIVERY_JOB_ID,
                name=DELIVERY_JOB_ID,
                executor=DELIVERY_JOB_ID,
            )
        self._stopper: threading.Thread | None = None
        self._done = threading.Event()

    def request_stop(self, signum: int, frame: FrameType | None = None) -> None:
        """The signal handler: start the shutdown thread (once)."""
        if self._stopper is None:
            self._stopper = threading.Thread(target=self._shutdown, args=(signum,), name="scheduler-stop")
            self._stopper.start()

    def _shutdown(self, signum: int) -> None:
        log.info("%s received: finishing the sweep in progress, then stopping", signal.Signals(signum).name)
        while True:
            try:
                self.scheduler.shutdown(wait=True)
                return
            except SchedulerNotRunningError:
                if self._done.is_set():
                    return
                time.sleep(0.02)  # signalled before start() got going: stop as soon as it runs

    def run(self) -> int:
        """Sweep until a stop signal; the exit code."""
        previous = {sig: signal.signal(sig, self.request_stop) for sig in STOP_SIGNALS}
        log.info(
            "scheduler started: sweeping every %g s (jitter up to %g s), lease holder %s",
            self.interval_s,
            jitter_s(self.interval_s),
            self.sweeper.holder,
        )
        try:
            self.scheduler.start()  # returns once shut down
        finally:
            self._done.set()
            if self._stopper is not None:
                self._stopper.join()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if self.deliverer is not None:
                self.deliverer.close()
            self.sweeper.close()
        log.info("scheduler stopped")
        return RET_OK
