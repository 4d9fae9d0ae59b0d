"""Prometheus metrics of the whole system, computed when scraped: ``GET /metrics``.

The API process does not see the workers' transitions, so nothing here counts
in memory: :class:`PodflowCollector` reads the store and the broker at each
scrape, a bounded number of cheap reads (``count_by_status``, the oldest
PENDING run, the ``stats`` counters, one broker round trip). Counters come
from the store's monotonic counters (see :mod:`podflow.store.base`,
``stats``), so they survive restarts and never go down when runs are deleted.
The workers' own counts (checkpoints, provider calls) reach the store through
each worker process's heartbeat thread, once an interval: ``/metrics`` serves
the whole cluster's totals without scraping any worker.

==========================================  =========  ======================  ==============================
metric                                      type       labels                  meaning
==========================================  =========  ======================  ==============================
podflow_runs                                gauge      status                  runs in the store now
podflow_oldest_pending_run_age_seconds      gauge                              the longest a due PENDING run
                                                                               has waited (a scheduled one
                                                                               from its start_at; 0: none)
podflow_runs_created_total                  counter                            runs ever created
podflow_runs_finished_total                 counter    status                  runs that reached SUCCESS,
                                                                               FAILURE or REVOKED
podflow_runs_failed_total                   counter    error_type              FAILURE runs by error.type
podflow_run_duration_seconds                histogram  status                  finished_at - started_at of
                                                                               the last attempt
podflow_sweeps_total                        counter                            sweeps recorded
podflow_sweep_runs_total                    counter    rule                    runs each sweep rule touched
podflow_sweep_send_errors_total             counter                            sends a sweep could not make
podflow_last_sweep_timestamp_seconds        gauge                              when the last sweep ran
podflow_checkpoints_total                   counter    stage, outcome          stage results ``computed`` or
                                                                               ``reused`` from a checkpoint
podflow_provider_calls_total                counter    endpoint, outcome       requests to the ``llm``/``tts``
                                                                               provider: ok, 429, 5xx, 4xx,
                                                                               timeout, connection, cancelled
podflow_webhook_deliveries_total            counter    outcome                 webhook delivery attempts:
                                                                               delivered, retried, expired
podflow_broker_up                           gauge                              1 if the broker answered
                                                                               (queue mode)
podflow_queue_messages                      gauge      queue, state            ready, delayed, dead, unacked
podflow_workers                             gauge      state                   alive and dead workers (Redis)
podflow_info                                gauge      version, mode, store    always 1
==========================================  =========  ======================  ==============================
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import datetime

import dramatiq
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from .. import __version__
from ..errors import BrokerUnavailable
from ..store.base import Store
from ..store.counters import SWEEP_RULES, StoreStats
from ..timeutil import to_ms
from ..worker.bands import band_queues
from ..worker.broker import QUEUE_NAME
from .snapshot import BrokerStatus, inspect_broker, inspect_store

__all__ = ["PodflowCollector", "render_metrics"]


class PodflowCollector(Collector):
    """A prometheus-client collector reading podflow's state at each scrape.

    Parameters:
      store: the store (a StoreUnavailable from it propagates: the scrape fails).
      broker: the queue-mode broker, or None (thread mode).
      labels: ``mode`` and ``store`` for ``podflow_info``.
      clock: the current time (ages, worker liveness).
      queue: the broker queue the runs go through (PODFLOW_QUEUE).
    """

    def __init__(
        self,
        *,
        store: Store,
        broker: dramatiq.Broker | None,
        mode: str,
        store_kind: str,
        clock: Callable[[], datetime],
        queue: str = QUEUE_NAME,
    ) -> None:
        self.store = store
        self.broker = broker
        self.mode = mode
        self.store_kind = store_kind
        self.clock = clock
        self.queue = queue

    def collect(self) -> Iterator[Metric]:
        now = self.clock()
        runs = inspect_store(self.store, now=now)
        stats = self.store.stats()
        info = GaugeMetricFamily(
            "podflow_info", "podflow's version and configuration", labels=["version", "mode", "store"]
        )
        info.add_metric([__version__, self.mode, self.store_kind], 1)
        yield info
        by_status = GaugeMetricFamily("podflow_runs", "Runs in the store now, by status", labels=["status"])
        for status, count in runs.runs.items():
            by_status.add_metric([status], count)
        yield by_status
        yield GaugeMetricFamily(
            "podflow_oldest_pending_run_age_seconds",
            "How long the PENDING run that has waited longest has been due: since its submit,"
            " or a scheduled run since its start_at (0 when there is none)",
            value=runs.oldest_pending_age_s or 0.0,
        )
        yield from _run_counters(stats)
        yield from _sweep_counters(stats)
        yield from _work_counters(stats)
        if self.broker is not None:
            yield from _broker_metrics(self.broker, now=now, queue=self.queue)


def _run_counters(stats: StoreStats) -> Iterator[Metric]:
    yield CounterMetricFamily("podflow_runs_created", "Runs created (never lowered by deletions)", value=stats.created)
    finished = CounterMetricFamily("podflow_runs_finished", "Runs that reached a terminal status", labels=["status"])
    for status, count in stats.finished.items():
        finished.add_metric([status], count)
    yield finished
    failed = CounterMetricFamily("podflow_runs_failed", "FAILURE runs by error type", labels=["error_type"])
    for error_type, count in stats.failed.items():
        failed.add_metric([error_type], count)
    yield failed
    durations = HistogramMetricFamily(
        "podflow_run_duration_seconds",
        "Duration of finished runs' last attempt (finished_at - started_at), by terminal status",
        labels=["status"],
    )
    for status, histogram in stats.durations.items():
        buckets = [(floatToGoString(bound), count) for bound, count in histogram.buckets]
        durations.add_metric([status], buckets, sum_value=histogram.sum_s)
    yield durations


def _sweep_counters(stats: StoreStats) -> Iterator[Metric]:
    yield CounterMetricFamily("podflow_sweeps", "Sweeps recorded", value=stats.sweeps)
    swept = CounterMetricFamily("podflow_sweep_runs", "Runs each sweep rule touched", labels=["rule"])
    for rule in SWEEP_RULES:
        swept.add_metric([rule], stats.swept.get(rule, 0))
    yield swept
    yield CounterMetricFamily(
        "podflow_sweep_send_errors",
        "Messages a sweep could not send (the broker was down)",
        value=stats.swept.get("send_errors", 0),
    )
    if stats.last_sweep_at is not None:
        yield GaugeMetricFamily(
            "podflow_last_sweep_timestamp_seconds",
            "When the last sweep ran, in seconds since the epoch",
            value=to_ms(stats.last_sweep_at) / 1000,
        )


def _work_counters(stats: StoreStats) -> Iterator[Metric]:
    yield _labelled_counter(
        "podflow_checkpoints",
        "Stage results computed, or reused from a checkpoint (an earlier attempt's or the retried run's)",
        ["stage", "outcome"],
        stats.checkpoints,
    )
    yield _labelled_counter(
        "podflow_provider_calls",
        "Requests sent to the LLM and TTS providers, by outcome",
        ["endpoint", "outcome"],
        stats.provider_calls,
    )
    deliveries = CounterMetricFamily(
        "podflow_webhook_deliveries",
        "Completion webhook delivery attempts, by outcome (delivered, retried later, expired: given up)",
        labels=["outcome"],
    )
    for outcome, count in stats.webhooks.items():
        deliveries.add_metric([outcome], count)
    yield deliveries


def _labelled_counter(
    name: str, documentation: str, labels: list[str], values: Mapping[tuple[str, str], int]
) -> CounterMetricFamily:
    counter = CounterMetricFamily(name, documentation, labels=labels)
    for label_values, count in values.items():
        counter.add_metric(list(label_values), count)
    return counter


def _broker_metrics(broker: dramatiq.Broker, *, now: datetime, queue: str) -> Iterator[Metric]:
    status: BrokerStatus | None
    try:
        status = inspect_broker(broker, now=now, queues=tuple(band_queues(queue).values()))
    except BrokerUnavailable:
        status = None
    yield GaugeMetricFamily("podflow_broker_up", "1 if the broker answered this scrape", value=int(status is not None))
    if status is None:
        return
    messages = GaugeMetricFamily(
        "podflow_queue_messages", "Messages in each broker queue, by state", labels=["queue", "state"]
    )
    for counts in status.queues:
        for state in ("ready", "delayed", "dead", "unacked"):
            count = getattr(counts, state)
            if count is not None:
                messages.add_metric([counts.name, state], count)
    yield messages
    if status.workers is not None:
        workers = GaugeMetricFamily(
            "podflow_workers", "Dramatiq worker processes by liveness (from broker heartbeats)", labels=["state"]
        )
        alive = status.workers_alive or 0
        workers.add_metric(["alive"], alive)
        workers.add_metric(["dead"], len(status.workers) - alive)
        yield workers


def render_metrics(collector: Collector, *, accept: str | None = None) -> tuple[bytes, str]:
    """``(body, content type)`` of a scrape: the Prometheus text format, or
    OpenMetrics when ``accept`` (the request's Accept header) asks for it.

    Raises: StoreUnavailable (the scrape fails: Prometheus records ``up`` 0).
    """
    encoder, content_type = choose_encoder(accept or "")
    return encoder(collector), content_type
