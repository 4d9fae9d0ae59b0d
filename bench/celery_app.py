"""Celery, for comparison: ``celery -A bench.celery_app:<app> worker -P threads``.

Two configurations on BENCH_REDIS_URL, each with a queue of its own:

- ``app``: Celery at its leanest -- results ignored (completions are counted
  through :mod:`bench.completions`, as for bare Dramatiq), default acks and
  prefetch;
- ``module_app``: Celery as the module podflow replaces ran it -- a result
  backend on the same Redis (its CELERY_RESULT_BACKEND), STARTED tracked (its
  task-status route reported STARTED), late acks and a prefetch of one (what
  Celery documents for long tasks, so a crashed worker's task is redelivered).
  This is "the Celery design it replaces" in the throughput target.

Needs the ``bench`` extra.
"""

from __future__ import annotations

import os

from celery import Celery

from .completions import client, record_completion

__all__ = ["MODULE_QUEUE", "QUEUE", "app", "module_app", "module_noop", "noop"]

QUEUE = "bench-celery"
MODULE_QUEUE = "bench-celery-module"

app = Celery("bench", broker=os.environ["BENCH_REDIS_URL"])
app.conf.update(
    task_default_queue=QUEUE,
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
)

module_app = Celery("bench_module", broker=os.environ["BENCH_REDIS_URL"], backend=os.environ["BENCH_REDIS_URL"])
module_app.conf.update(
    task_default_queue=MODULE_QUEUE,
    task_ignore_result=False,
    task_track_started=True,
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
)


@app.task(name="bench.noop")
def noop(target: int) -> None:
    """One completion of a batch of ``target``."""
    record_completion(client(), target)


@module_app.task(name="bench.module_noop")
def module_noop(target: int) -> None:
    """The same, under the old module's settings (its result is stored)."""
    record_completion(client(), target)
