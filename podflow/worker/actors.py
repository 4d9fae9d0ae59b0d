"""The Dramatiq entry point: ``dramatiq podflow.actors`` starts a working worker.

Importing this module runs the start-up sequence (:func:`podflow.boot.boot`:
an invalid setting, or generator, prints one line and exits 78, so systemd
does not restart-loop), builds the
broker, makes it Dramatiq's global broker and declares ``generate_podcast``
on PODFLOW_QUEUE (``podcast``). It opens nothing: Dramatiq forks or spawns worker
processes, and each opens its own store and heartbeat thread
(:class:`WorkerResources`, on ``after_process_boot`` or at the first message),
names itself in the broker's heartbeats with its store's id, and after the worker
shut down closes them and leaves the heartbeats (a clean stop is no dead worker).

A worker that begins to shut down starts no new run: a delivery one of its idle
threads begins meanwhile (Dramatiq keeps consuming until the busy threads are done)
is put back for another worker.

Runs of every priority band are served, in band order (:mod:`podflow.worker.bands`);
a scheduled run's message that comes before its start is put back until then.
A delivery of another store's message is put back for that store's workers; a
deferred one (the run's own message while an attempt that may be dead holds the
run) is put back until the claim can tell (:mod:`podflow.worker.deliveries`). So
is a run released without failing (the worker stops, or the soft time limit after
new checkpoints): sent again at once, with no traceback for what is no error, and
not counted among its message's retries.

``podflow worker`` runs ``dramatiq podflow.actors`` with PODFLOW_WORKER_PROCESSES
processes of PODFLOW_CONCURRENCY threads (see ``podflow/cli/worker.py``). With
PODFLOW_WORKER_METRICS_PORT set, the workers also serve Dramatiq's Prometheus
metrics (:mod:`podflow.worker.exporter`).
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from typing import Any

import dramatiq
from dramatiq.errors import Retry as DramatiqRetry
from dramatiq.middleware import CurrentMessage, Middleware, TimeLimitExceeded
from dramatiq.results import Results

from ..boot import boot, config_errors
from ..dispatch.queue import QueueDispatcher
from ..errors import SoftTimeLimitExceeded, WorkerShutdown
from ..generation.base import Generator
from ..generation.loader import load_generator
from ..heartbeat import HeartbeatMonitor
from ..retry import MAX_MESSAGE_RETRIES, RESUME_DELAY_MS, RESUMED, connection_errors
from ..runner import SHUTDOWN_REASON, Outcome, Runner, build_runner
from ..settings import Settings
from ..states import is_terminal
from ..store import open_store
from .bands import BandOrder, band_queues
from .broker import ACTOR_NAME, STORE_OPTION, build_broker, client_id
from .deliveries import FOREIGN_DELAY_S, ForeignStores, early_by_s, put_back, yield_to_higher_band
from .messages import is_redis, leave_heartbeats
from .presence import note_outcome

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
        self.foreign = ForeignStores()
        #: set when the worker begins to shut down: it starts no new run from then on
        self.stopping = threading.Event()
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
            runner = self.runner()
        except Exception as exc:  # retried by the first message
            log.warning("store not available at boot: %s", exc)
            return
        if is_redis(broker):  # before the first call to the broker: the id names its acks sets
            broker.broker_id = client_id("worker", store_id=runner.store.store_id, queue=self.settings.queue_name)

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self.stopping.clear()  # a worker started again in this process serves again

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        # Dramatiq keeps its consumers, and its idle threads, until the busy ones are done:
        # a delivery they begin meanwhile (the retry of a run released just now) is put back
        self.stopping.set()
        if self._runner is not None:
            count = self._runner.monitor.interrupt_all(WorkerShutdown, "the worker is shutting down")
            if count:
                log.info("shutdown: interrupting %d running generation(s); another worker continues them", count)

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self.close()
        if not is_redis(broker):
            return
        try:  # the consumers are closed: no further call re-adds this worker
            if not leave_heartbeats(broker):
                log.warning("shutdown: messages still held unacknowledged; left for the broker to hand on")
        except connection_errors() as exc:
            log.warning("shutdown: could not leave the broker's heartbeats: %s", exc)

    def foreign_owner(self, message: Any) -> str | None:
        """The store ``message`` belongs to, if that is not this worker's (a message
        naming no store, from an older podflow, is this worker's)."""
        theirs = message.options.get(STORE_OPTION)
        ours = self.runner().store.store_id
        if not theirs or theirs == ours:
            return None
        self.foreign.seen(message.message_id, theirs=theirs, ours=ours, queue=self.settings.queue_name)
        return str(theirs)


def _first_process() -> bool:
    """Whether this is the first of Dramatiq's worker processes (or no Dramatiq child at all).

    Dramatiq's main process never imports this module; its worker processes are
    siblings, started in order without a name, so multiprocessing calls the first
    one ``Process-1``. Only that one warns about the settings: once per
    ``dramatiq podflow.actors``, not once per process. (Under ``podflow worker``
    none does: the command warned before starting Dramatiq.)"""
    return multiprocessing.current_process().name in ("MainProcess", "Process-1")


# Dramatiq configures the worker processes' logging; podflow sets only its level
settings = boot(logs="level", warn_unknown=_first_process())
with config_errors():
    _generator = load_generator(settings.generator)

broker = build_broker(settings, role="worker")
dramatiq.set_broker(broker)
resources = WorkerResources(settings=settings, generator=_generator)
broker.add_middleware(resources)
bands = BandOrder(queue_name=settings.queue_name)
broker.add_middleware(bands)
if settings.worker_metrics_port is not None:
    from .exporter import WorkerMetrics

    broker.add_middleware(WorkerMetrics())
_results = next((m for m in broker.middleware if isinstance(m, Results)), None)


def _publish(run_id: str, outcome: Outcome) -> dict[str, Any] | None:
    """The delivery's result: the presence record counts it; with the Results
    middleware on, it is also returned (and stored). A run finished under a
    re-dispatched message also gets its result stored under the run's first
    message id, which is the one its submitter holds. Without the middleware the
    actor returns None: Dramatiq would log a warning for every delivery otherwise."""
    note_outcome(outcome.status)
    if _results is None:
        return None
    summary = outcome.as_dict()
    current = CurrentMessage.get_current_message()
    if current is not None and outcome.status and is_terminal(outcome.status):
        run = resources.runner().store.get_run(run_id)
        if run is not None and run.message_id and run.message_id != current.message_id:
            dispatcher = QueueDispatcher(broker=broker, queue_name=settings.queue_name)
            first = dispatcher.message(run_id, run.message_id, priority=run.priority)
            _results.backend.store_result(first, summary, _results.result_ttl)
    return summary


_options: dict[str, Any] = {
    # the soft limit; Dramatiq's default of 10 minutes must never apply
    "time_limit": int(settings.soft_time_limit_s * 1000),
    "max_retries": MAX_MESSAGE_RETRIES,
}
if _results is not None:  # the option exists only with the Results middleware
    _options["store_results"] = True


#: how long a delivery a stopping worker put back waits before any worker sees it again
#: (past the stopping worker's last fetch, so that another worker takes it)
STOPPING_DELAY_S = 1.0

#: what the runner raises after releasing a run that did not fail, Dramatiq's time limit included
_RESUMED: tuple[type[BaseException], ...] = (*RESUMED, TimeLimitExceeded)


@dramatiq.actor(actor_name=ACTOR_NAME, queue_name=settings.queue_name, broker=broker, **_options)
def generate_podcast(run_id: str) -> dict[str, Any] | None:
    """Execute one delivery of ``run_id`` (see :class:`podflow.runner.Runner`).

    A run released without failing (a shutdown, or the soft time limit after new
    checkpoints) is put back for its next attempt: sent again now (a stopping
    worker's, after :data:`STOPPING_DELAY_S`), not after the backoff the Retries
    middleware keeps for failures, with no traceback, and without counting as one
    of the message's retries, which bound failures before a claim and set that
    backoff: a run continued across many deploys is never dead-lettered for it.
    """
    message = CurrentMessage.get_current_message()
    if message is not None and resources.stopping.is_set():
        put_back(broker, message, delay_s=STOPPING_DELAY_S)  # checked before any claim
        log.info("run %s: not started, the worker is stopping; its message put back for another worker", run_id)
        return None
    if message is not None and resources.foreign_owner(message) is not None:
        put_back(broker, message, delay_s=FOREIGN_DELAY_S)  # checked before any claim
        return None
    if message is not None and (early_s := early_by_s(message, now_s=time.time())) > 0:
        put_back(broker, message, delay_s=early_s)  # a scheduled run's message came early (a re-send)
        return None
    if message is not None and yield_to_higher_band(broker, message, bands):
        return None
    try:
        outcome = resources.runner().execute(run_id, message_id=None if message is None else message.message_id)
    except _RESUMED as exc:  # released, and said so by the runner: sent again, not failed
        stopping = isinstance(exc, WorkerShutdown)
        if message is None:  # no CurrentMessage middleware: Dramatiq's retry is the only way back
            why = SHUTDOWN_REASON if stopping else f"released ({type(exc).__name__}): resuming"
            raise DramatiqRetry(f"run {run_id} {why}", delay=RESUME_DELAY_MS) from exc
        put_back(broker, message, delay_s=STOPPING_DELAY_S if stopping else RESUME_DELAY_MS / 1000)
        return None
    if outcome.kind == "deferred" and message is not None and outcome.retry_in_s is not None:
        put_back(broker, message, delay_s=outcome.retry_in_s)
        return None
    return _publish(run_id, outcome)


# every band's queue (the normal band's is the actor's own): a worker consumes them
# all unless ``--queues`` says otherwise, and serves them in order (podflow.worker.bands)
for _queue in band_queues(settings.queue_name).values():
    broker.declare_queue(_queue)
