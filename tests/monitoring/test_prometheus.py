"""Prometheus metrics computed at scrape time from the store and the broker."""

from __future__ import annotations

from collections.abc import Iterator

import dramatiq
import pytest

from podflow.dispatch.queue import QueueDispatcher
from podflow.models import ErrorInfo
from podflow.monitoring.prometheus import PodflowCollector, render_metrics
from podflow.settings import load_settings
from podflow.states import RunStatus
from podflow.store.base import Store
from podflow.timeutil import to_ms
from podflow.worker.broker import build_broker
from tests.conftest import T0, Samples, at, make_run, metric_samples
from tests.servers import free_port


def scrape(store: Store, broker: dramatiq.Broker | None = None, *, mode: str = "thread") -> Samples:
    """Every sample of a scrape, parsed by prometheus-client's own parser."""
    collector = PodflowCollector(store=store, broker=broker, mode=mode, store_kind="sqlite", clock=lambda: at(100))
    body, content_type = render_metrics(collector)
    assert content_type.startswith("text/plain; version=0.0.4")
    return metric_samples(body.decode())


def test_run_gauges_counters_and_durations_match_the_store(store: Store) -> None:
    ok, _ = store.create_run(make_run())
    store.finish(ok.run_id, store.claim(ok.run_id, now=T0) or 0, status=RunStatus.SUCCESS, now=at(42))
    bad, _ = store.create_run(make_run())
    error = ErrorInfo(type="soft_time_limit", message="m")
    store.finish(bad.run_id, store.claim(bad.run_id, now=T0) or 0, status=RunStatus.FAILURE, now=at(3), error=error)
    store.create_run(make_run(at(40), outbox_at=at(40)))
    store.record_sweep({"redispatched": 2, "send_errors": 1}, now=at(90))

    samples = scrape(store)
    assert samples[("podflow_runs", (("status", "SUCCESS"),))] == 1
    assert samples[("podflow_runs", (("status", "PENDING"),))] == 1
    assert samples[("podflow_oldest_pending_run_age_seconds", ())] == 60
    assert samples[("podflow_runs_created_total", ())] == 3
    assert samples[("podflow_runs_finished_total", (("status", "FAILURE"),))] == 1
    assert samples[("podflow_runs_failed_total", (("error_type", "soft_time_limit"),))] == 1
    success = (("status", "SUCCESS"),)
    assert samples[("podflow_run_duration_seconds_count", success)] == 1
    assert samples[("podflow_run_duration_seconds_sum", success)] == 42
    assert samples[("podflow_run_duration_seconds_bucket", (("le", "30.0"), *success))] == 0
    assert samples[("podflow_run_duration_seconds_bucket", (("le", "60.0"), *success))] == 1
    assert samples[("podflow_run_duration_seconds_bucket", (("le", "+Inf"), *success))] == 1
    assert samples[("podflow_sweeps_total", ())] == 1
    assert samples[("podflow_sweep_runs_total", (("rule", "redispatched"),))] == 2
    assert samples[("podflow_sweep_send_errors_total", ())] == 1
    assert samples[("podflow_last_sweep_timestamp_seconds", ())] == to_ms(at(90)) / 1000
    assert samples[("podflow_info", (("mode", "thread"), ("store", "sqlite"), ("version", "0.1.0.dev0")))] == 1
    assert not [key for key in samples if key[0].startswith(("podflow_broker", "podflow_queue", "podflow_workers"))]


def test_an_empty_store_scrapes_zeros_and_no_sweep_time(store: Store) -> None:
    samples = scrape(store)
    assert samples[("podflow_runs_created_total", ())] == 0
    assert samples[("podflow_oldest_pending_run_age_seconds", ())] == 0
    assert ("podflow_last_sweep_timestamp_seconds", ()) not in samples


@pytest.fixture
def broker(redis_url: str) -> Iterator[dramatiq.Broker]:
    broker = build_broker(load_settings(env_file=None, broker_url=redis_url), role="api")
    yield broker
    broker.close()


def test_queue_mode_adds_the_queues_and_the_broker_being_up(store: Store, broker: dramatiq.Broker) -> None:
    QueueDispatcher(broker=broker).send("run_1", None)
    samples = scrape(store, broker, mode="queue")
    assert samples[("podflow_broker_up", ())] == 1
    assert samples[("podflow_queue_messages", (("queue", "podcast"), ("state", "ready")))] == 1
    assert samples[("podflow_queue_messages", (("queue", "podcast"), ("state", "dead")))] == 0
    assert samples[("podflow_workers", (("state", "alive"),))] == 0


def test_a_broker_that_does_not_answer_is_a_zero_not_a_failed_scrape(store: Store) -> None:
    down = build_broker(load_settings(env_file=None, broker_url=f"redis://127.0.0.1:{free_port()}/0"))
    samples = scrape(store, down, mode="queue")
    assert samples[("podflow_broker_up", ())] == 0
    assert ("podflow_runs_created_total", ()) in samples
    down.close()


def test_openmetrics_is_served_when_the_scraper_asks_for_it(store: Store) -> None:
    collector = PodflowCollector(store=store, broker=None, mode="thread", store_kind="sqlite", clock=lambda: T0)
    body, content_type = render_metrics(collector, accept="application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text") and body.endswith(b"# EOF\n")


def test_checkpoint_and_provider_counts_from_the_workers_are_counters_by_label(store: Store) -> None:
    store.add_counts({"checkpoints:audio:reused": 171, "checkpoints:audio:computed": 9})
    store.add_counts({"checkpoints:outline:reused": 1})
    store.add_counts({"provider_calls:tts:ok": 9, "provider_calls:tts:429": 3, "provider_calls:llm:timeout": 1})
    samples = scrape(store)
    assert samples[("podflow_checkpoints_total", (("outcome", "reused"), ("stage", "audio")))] == 171
    assert samples[("podflow_checkpoints_total", (("outcome", "computed"), ("stage", "audio")))] == 9
    assert samples[("podflow_checkpoints_total", (("outcome", "reused"), ("stage", "outline")))] == 1
    assert samples[("podflow_provider_calls_total", (("endpoint", "tts"), ("outcome", "429")))] == 3
    assert samples[("podflow_provider_calls_total", (("endpoint", "llm"), ("outcome", "timeout")))] == 1


def test_webhook_deliveries_are_counted_by_outcome(store: Store) -> None:
    from podflow.store.counters import webhook_counter

    store.add_counts({webhook_counter("delivered"): 4, webhook_counter("retried"): 7})
    samples = scrape(store)
    assert samples[("podflow_webhook_deliveries_total", (("outcome", "delivered"),))] == 4
    assert samples[("podflow_webhook_deliveries_total", (("outcome", "retried"),))] == 7
    assert samples[("podflow_webhook_deliveries_total", (("outcome", "expired"),))] == 0
