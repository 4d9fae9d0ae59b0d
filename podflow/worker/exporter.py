"""The workers' own Prometheus metrics: Dramatiq's middleware, bound where the settings say.

When PODFLOW_WORKER_METRICS_PORT is set, :mod:`podflow.worker.actors` adds
:class:`WorkerMetrics`: Dramatiq's ``Prometheus`` middleware, which counts
messages in every worker process (prometheus-client's multiprocess mode: each
process writes its values to files in one directory) and serves their sum from
an exposition process that the ``dramatiq`` command forks beside the workers.

Used as it is, that middleware binds ``0.0.0.0:9191`` (its ``dramatiq_prom_host``
and ``dramatiq_prom_port`` environment variables, read when it is imported) and
shares ``/tmp/dramatiq-prometheus`` with every Dramatiq on the host. Here:

- the exposition process runs :func:`serve_metrics`, which loads podflow's
  settings and binds PODFLOW_WORKER_METRICS_HOST (127.0.0.1 unless set: never
  every interface by default) on PODFLOW_WORKER_METRICS_PORT; if it cannot
  (the port is taken), it logs one line and exits, and the workers go on;
- the directory belongs to one ``dramatiq`` command:
  ``<tmp>/podflow-worker-metrics/<pid of its main process>``, which the worker
  processes and the exposition process, all children of that main process, find
  as their parent's pid. It outlives the command (stopping worker processes
  still write to it); the next exposition process on the host removes those
  whose main process no longer runs.

Dramatiq's metrics, each labelled ``queue_name`` and ``actor_name``:
``dramatiq_messages_total``, ``dramatiq_message_errors_total``,
``dramatiq_message_retries_total``, ``dramatiq_message_rejects_total``
(counters), ``dramatiq_messages_inprogress``,
``dramatiq_delayed_messages_inprogress`` (gauges) and
``dramatiq_message_duration_milliseconds`` (histogram).

Nothing here imports prometheus-client: in a worker process it must be
imported only after the middleware set PROMETHEUS_MULTIPROC_DIR (at
``after_process_boot``), or its values would not be shared.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dramatiq
from dramatiq.middleware import prometheus as _prometheus

__all__ = ["WorkerMetrics", "metrics_dir", "serve_metrics"]

log = logging.getLogger(__name__)


def metrics_dir(main_pid: int) -> Path:
    """Where the processes of the ``dramatiq`` command ``main_pid`` keep their metrics."""
    return Path(tempfile.gettempdir()) / "podflow-worker-metrics" / str(main_pid)


class WorkerMetrics(_prometheus.Prometheus):
    """Dramatiq's Prometheus middleware with podflow's exposition process and directory."""

    @property
    def forks(self) -> list[Callable[[], Any]]:
        return [serve_metrics]

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        directory = metrics_dir(os.getppid())
        directory.mkdir(parents=True, exist_ok=True)
        # the base class reads DB_PATH here and at after_worker_shutdown
        _prometheus.DB_PATH = str(directory)
        super().after_process_boot(broker)  # type: ignore[no-untyped-call]  # Dramatiq's, unannotated


def _remove_stale(root: Path, *, keep: Path) -> None:
    """Remove the directories of main processes that no longer run."""
    for directory in root.iterdir():
        if directory == keep or not directory.name.isdigit():
            continue
        try:
            os.kill(int(directory.name), 0)
        except ProcessLookupError:
            shutil.rmtree(directory, ignore_errors=True)
        except PermissionError:  # alive, another user's
            pass


def serve_metrics() -> int:
    """The exposition process (a ``dramatiq`` fork): serve the workers' summed metrics
    on PODFLOW_WORKER_METRICS_HOST:PODFLOW_WORKER_METRICS_PORT until stopped.

    Raises:
      SystemExit: 78 on an invalid setting (after one line on stderr).
    """
    from ..boot import boot

    # the worker processes warn about unknown variables; Dramatiq set up logging
    settings = boot(logs="level", warn_unknown=False)
    if settings.worker_metrics_port is None:
        return 0
    directory = metrics_dir(os.getppid())
    directory.mkdir(parents=True, exist_ok=True)
    _remove_stale(directory.parent, keep=directory)
    _prometheus.DB_PATH = str(directory)
    _prometheus.HTTP_HOST = settings.worker_metrics_host
    _prometheus.HTTP_PORT = settings.worker_metrics_port
    address = f"{settings.worker_metrics_host}:{settings.worker_metrics_port}"
    log.info("starting the workers' Prometheus metrics server on http://%s/", address)
    try:
        return int(_prometheus._run_exposition_server())
    except OSError as exc:  # the workers go on, counting into the directory
        log.error("cannot serve the workers' metrics on %s (PODFLOW_WORKER_METRICS_HOST/PORT): %s", address, exc)
        return 1
