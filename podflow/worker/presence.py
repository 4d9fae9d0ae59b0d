"""Each worker process's presence record: who it is, how big, what it holds, what it did.

Dramatiq's heartbeats (``dramatiq:__heartbeats__``) say only that a broker id
was heard from. ``podflow status`` and the dashboard show more, as ``celery
inspect`` did, from a record each worker process keeps in the broker's Redis,
apart from Dramatiq's keys (namespace ``podflow``)::

    podflow:workers          zset: worker process id -> last write, ms since the epoch
    podflow:worker:<id>      hash, expiring PRESENCE_TTL_S after its last write:
        host, pid         the process
        main_pid          the ``dramatiq`` command it belongs to (its own pid when
                          it runs a worker in-process)
        threads           its worker threads
        processes         PODFLOW_WORKER_PROCESSES, the command's processes
        started_at        ms since the epoch
        done, failed      runs it finished SUCCESS, FAILURE since it started
        running           JSON list of the run ids it executes now

:class:`WorkerPresence` (Dramatiq middleware) writes it every
``interval_s`` from a thread of its own, and deletes it on a clean stop. A
process killed outright stops writing: its record expires, so a dead worker
drops off the listings :data:`PRESENCE_TTL_S` after it was last heard from.
Reading (:mod:`podflow.monitoring.workers`) never writes; writers prune the
zset of ids whose records expired.

RabbitMQ has no Redis to hold the records: there, no process writes one.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import dramatiq
from dramatiq.middleware import Middleware

from ..timeutil import to_ms, utcnow
from .broker import ACTOR_NAME, broker_errors

__all__ = ["PRESENCE_TTL_S", "WORKERS_KEY", "WorkerPresence", "note_outcome", "record_key"]

log = logging.getLogger(__name__)

#: a worker silent this long drops off (the same as Dramatiq's heartbeat timeout)
PRESENCE_TTL_S = 60.0
WORKERS_KEY = "podflow:workers"


#: the status the delivery on this worker thread ended its run in, for the presence
#: counts: the actor returns None (a value would need the Results middleware, and
#: Dramatiq logs a warning for every delivery that returns one without it)
_outcome = threading.local()


def note_outcome(status: str | None) -> None:
    """Say how the delivery running on this thread ended its run (``SUCCESS``,
    ``FAILURE``... or None); :meth:`WorkerPresence.after_process_message` counts it."""
    _outcome.status = status


def _take_outcome() -> str | None:
    status: str | None = getattr(_outcome, "status", None)
    _outcome.status = None
    return status


def record_key(worker_id: str) -> str:
    return f"podflow:worker:{worker_id}"


def _main_pid() -> int:
    """The ``dramatiq`` command's process: a worker process's parent, else this process."""
    return os.getppid() if multiprocessing.parent_process() is not None else os.getpid()


class WorkerPresence(Middleware):
    """Keeps this worker process's presence record (see the module docstring).

    Parameters:
      processes: the worker command's processes (PODFLOW_WORKER_PROCESSES).
      interval_s: seconds between writes (well under :data:`PRESENCE_TTL_S`).
      clock: ms since the epoch.
    """

    def __init__(
        self,
        *,
        processes: int,
        interval_s: float = 10.0,
        ttl_s: float = PRESENCE_TTL_S,
        clock: Callable[[], int] = lambda: to_ms(utcnow()),
    ) -> None:
        self.processes = processes
        self.interval_s = min(interval_s, ttl_s / 3)
        self.ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._running: dict[str, int] = {}  # run_id -> deliveries of it in flight here
        self._done = 0
        self._failed = 0
        self._threads = 0
        self._started_at = 0
        self._client: Any = None
        self._id = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- Dramatiq hooks ----------------------------------------------------------------
    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._client = getattr(broker, "client", None)
        if self._client is None:  # RabbitMQ: no Redis to hold the record
            return
        self._id = str(getattr(broker, "broker_id", "")) or f"{socket.gethostname()}:{os.getpid()}"
        self._threads = int(getattr(worker, "worker_threads", 0))
        self._started_at = self._clock()
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name="podflow-presence", daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(5)
        self._thread = None
        try:
            with broker_errors("presence"):
                pipe = self._client.pipeline(transaction=True)
                pipe.delete(record_key(self._id))
                pipe.zrem(WORKERS_KEY, self._id)
                pipe.execute()
        except Exception as exc:  # it expires by itself
            log.warning("presence record not removed: %s", exc)

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        run_id = _run_of(message)
        if run_id is not None:
            with self._lock:
                self._running[run_id] = self._running.get(run_id, 0) + 1

    def after_process_message(
        self, broker: dramatiq.Broker, message: Any, *, result: Any = None, exception: BaseException | None = None
    ) -> None:
        noted = _take_outcome()
        run_id = _run_of(message)
        if run_id is None:
            return
        status = result.get("status") if isinstance(result, dict) else noted
        status = None if exception is not None else status
        with self._lock:
            left = self._running.get(run_id, 1) - 1
            if left > 0:
                self._running[run_id] = left
            else:
                self._running.pop(run_id, None)
            self._done += status == "SUCCESS"
            self._failed += status == "FAILURE"

    after_skip_message = after_process_message

    # -- the record --------------------------------------------------------------------
    def record(self) -> dict[str, str]:
        """The fields written now."""
        with self._lock:
            running, done, failed = sorted(self._running), self._done, self._failed
        return {
            "host": socket.gethostname(),
            "pid": str(os.getpid()),
            "main_pid": str(_main_pid()),
            "threads": str(self._threads),
            "processes": str(self.processes),
            "started_at": str(self._started_at),
            "done": str(done),
            "failed": str(failed),
            "running": json.dumps(running),
        }

    def write(self) -> None:
        """Write the record once. Raises: BrokerUnavailable."""
        now_ms = self._clock()
        key = record_key(self._id)
        with broker_errors("presence"):
            pipe = self._client.pipeline(transaction=True)
            pipe.hset(key, mapping=self.record())
            pipe.pexpire(key, int(self.ttl_s * 1000))
            pipe.zadd(WORKERS_KEY, {self._id: now_ms})
            pipe.zremrangebyscore(WORKERS_KEY, "-inf", now_ms - int(self.ttl_s * 1000))
            pipe.execute()

    def _beat(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.write()
            except Exception as exc:  # a broker blip: the next beat writes again
                log.warning("presence record not written: %s", exc)
            self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - started)))


def _run_of(message: Any) -> str | None:
    if getattr(message, "actor_name", None) != ACTOR_NAME or not getattr(message, "args", None):
        return None
    return str(message.args[0])
