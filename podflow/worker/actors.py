"""The Dramatiq entry point: ``dramatiq podflow.actors`` starts a working worker.

Importing this module runs the start-up sequence (:func:`podflow.boot.boot`:
an invalid setting, or generator, prints one line and exits 78, so systemd
does not restart-loop), builds the
broker, makes it Dramatiq's global broker and declares ``generate_podcast``
on the ``podcast`` queue. It opens nothing: Dramatiq forks or spawns worker
processes, and each opens its own store and heartbeat thread
(:class:`WorkerResources`, on ``after_process_boot`` or at the first message)
and closes them after the worker shut down.

``podflow worker`` runs ``dramatiq podflow.actors`` with PODFLOW_WORKER_PROCESSES
processes of PODFLOW_CONCURRENCY threads (see ``podflow/cli/worker.py``). With
PODFLOW_WORKER_METRICS_PORT set, the workers also serve Dramatiq's Prometheus
metrics (:mod:`podflow.worker.exporter`).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import dramatiq
from dramatiq.middleware import CurrentMessage, Middleware, TimeLimitExceeded
from dramatiq.results import Results

from ..boot import boot, config_errors
from ..dispatch.queue import QueueDispatcher
from ..errors import SoftTimeLimitExceeded, WorkerShutdown
from ..generation.base import Generator
from ..generation.loader import load_generator
from ..heartbeat import HeartbeatMonitor
from ..retry import MAX_MESSAGE_RETRIES, RESUME_DELAY_MS, RESUMED
from ..runner import Outcome, Runner, build_runner
from ..settings import Settings
from ..states import is_terminal
from ..store import open_store
from .broker import ACTOR_NAME, QUEUE_NAME, build_broker

__all__ = ["WorkerResources", "broker", "generate_podcast", "resources", "settings"]

log = logging.getLogger(__name__)


class WorkerResources(Middleware):
    """The store, heartbeat monitor and runner of one worker process.

    Opened at ``after_process_boot`` (or lazily by the first message, e.g. in
    an in-process ``dramatiq.Worker``); on shutdown, generations still running
    are interrupted with :class:`~podflow.errors.WorkerShutdown` (only inside the generator,
    never during the runner's bookkeeping), so the runner releases them for a
    retry elsewhere; the store is closed after the worker threads stopped.
    """

    def __init__(self, *, settings: Settings, generator: Generator) -> None:
        self.settings = settings
        self.generator = generator
        self._lock = threading.Lock()
        self._runner: Runner | None = None

    def runner(self) -> Runner:
        """The process's runner, opening the store and starting the heartbeat on first use.

        Raises:
          StoreUnavailable: the store cannot be opened (the message is retried).
        """
        with self._lock:
            if self._runner is None:
                store = open_store(self.settings)
                monitor = HeartbeatMonitor(
                    store=store,
                    interval_s=self.settings.heartbeat_interval_s,
                    lease_timeout_s=self.settings.heartbeat_timeout_s,
                )
                monitor.start()
                self._runner = build_runner(
                    self.settings,
                    store=store,
                    monitor=monitor,
                    generator=self.generator,
                    # Dramatiq's TimeLimit middleware enforces the soft limit here
                    time_limit_errors=(SoftTimeLimitExceeded, TimeLimitExceeded),
                )
            return self._runner

    def close(self) -> None:
        with self._lock:
            runner, self._runner = self._runner, None
        if runner is not None:
            runner.monitor.stop()
            runner.store.close()

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        try:
            self.runner()
        except Exception as exc:  # retried by the first message
            log.warning("store not available at boot: %s", exc)

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        if self._runner is not None:
            count = self._runner.monitor.interrupt_all(WorkerShutdown, "the worker is shutting down")
            if count:
                log.info("shutdown: interrupting %d running generation(s); they will be retried", count)

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self.close()


# Dramatiq configures the worker processes' logging; podflow sets only its level
settings = boot(logs="level")
with config_errors():
    _generator = load_generator(settings.generator)

broker = build_broker(settings, role="worker")
dramatiq.set_broker(broker)
resources = WorkerResources(settings=settings, generator=_generator)
broker.add_middleware(resources)
if settings.worker_metrics_port is not None:
    from .exporter import WorkerMetrics

    broker.add_middleware(WorkerMetrics())
_results = next((m for m in broker.middleware if isinstance(m, Results)), None)


def _publish(run_id: str, outcome: Outcome) -> dict[str, Any]:
    """The delivery's result (the Results middleware stores it, when on; the
    presence record counts it). A run finished under a re-dispatched message
    also gets its result stored under the run's first message id, which is the
    one its submitter holds."""
    summary = outcome.as_dict()
    if _results is None:
        return summary
    current = CurrentMessage.get_current_message()
    if _results is not None and current is not None and outcome.status and is_terminal(outcome.status):
        run = resources.runner().store.get_run(run_id)
        if run is not None and run.message_id and run.message_id != current.message_id:
            first = QueueDispatcher(broker=broker).message(run_id, run.message_id)
            _results.backend.store_result(first, summary, _results.result_ttl)
    return summary


_options: dict[str, Any] = {
    # the soft limit; Dramatiq's default of 10 minutes must never apply
    "time_limit": int(settings.soft_time_limit_s * 1000),
    "max_retries": MAX_MESSAGE_RETRIES,
}
if _results is not None:  # the option exists only with the Results middleware
    _options["store_results"] = True


#: what the runner raises after releasing a run that did not fail, Dramatiq's time limit included
_RESUMED: tuple[type[BaseException], ...] = (*RESUMED, TimeLimitExceeded)


@dramatiq.actor(actor_name=ACTOR_NAME, queue_name=QUEUE_NAME, broker=broker, **_options)
def generate_podcast(run_id: str) -> dict[str, Any]:
    """Execute one delivery of ``run_id`` (see :class:`podflow.runner.Runner`).

    Raises:
      dramatiq.Retry: the run was released without failing (a shutdown, or the
        soft time limit after new checkpoints): Dramatiq sends it again now,
        not after the backoff the Retries middleware keeps for failures.
    """
    try:
        outcome = resources.runner().execute(run_id)
    except _RESUMED as exc:
        raise dramatiq.Retry(f"run {run_id} released ({type(exc).__name__}): resuming", delay=RESUME_DELAY_MS) from exc
    return _publish(run_id, outcome)
