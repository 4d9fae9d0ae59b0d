"""Celery, for comparison (the design podflow replaces): ``celery -A bench.celery_app worker -P threads``.

Celery's defaults on BENCH_REDIS_URL, except: results are ignored (completions
are counted through :mod:`bench.completions`, as for bare Dramatiq), and the
tasks have a queue of their own. Needs the ``bench`` extra.
"""

from __future__ import annotations

import os

from celery import Celery

from .completions import client, record_completion

__all__ = ["QUEUE", "app", "noop"]

QUEUE = "bench-celery"

app = Celery("bench", broker=os.environ["BENCH_REDIS_URL"])
app.conf.update(
    task_default_queue=QUEUE,
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
)


@app.task(name="bench.noop")
def noop(target: int) -> None:
    """One completion of a batch of ``target``."""
    record_completion(client(), target)
