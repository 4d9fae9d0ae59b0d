"""The broker: chosen by URL, explicit middleware, and which failures are retried."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import redis
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.errors import ConnectionClosed, Retry
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    CurrentMessage,
    Middleware,
    Pipelines,
    Retries,
    Shutdown,
    ShutdownNotifications,
    TimeLimit,
    TimeLimitExceeded,
)
from dramatiq.results import Results
from dramatiq.worker import Worker

from podflow.dispatch.queue import QueueDispatcher
from podflow.errors import (
    BrokerUnavailable,
    GenerationError,
    InvalidInput,
    RunCancelled,
    SoftTimeLimitExceeded,
    StoreUnavailable,
    TransientGenerationError,
    WorkerShutdown,
)
from podflow.retry import MAX_MESSAGE_RETRIES
from podflow.settings import load_settings
from podflow.worker.broker import RunLogContext, build_broker, close_broker, ping_broker, retry_when
from podflow.worker.prefetch import QueuePrefetch
from tests.execution import wait_for
from tests.servers import RABBITMQ_URL, free_port, rabbitmq_up


def settings(**overrides: object):
    return load_settings(env_file=None, **overrides)


def test_a_redis_url_gives_a_redis_broker_with_the_middleware_in_order(redis_url: str) -> None:
    broker = build_broker(settings(broker_url=redis_url, soft_time_limit_s=90))
    assert isinstance(broker, RedisBroker)
    assert [type(m) for m in broker.middleware] == [
        RunLogContext,
        AgeLimit,
        TimeLimit,
        ShutdownNotifications,
        Callbacks,
        Pipelines,
        Retries,
        CurrentMessage,
        QueuePrefetch,
    ]
    time_limit = next(m for m in broker.middleware if isinstance(m, TimeLimit))
    assert time_limit.time_limit == 90_000  # never Dramatiq's 10 minutes
    ping_broker(broker)


def test_results_are_on_only_with_a_result_backend(redis_url: str) -> None:
    broker = build_broker(settings(broker_url=redis_url, result_backend=redis_url))
    assert isinstance(broker.middleware[-1], Results)


def test_an_amqp_url_gives_a_rabbitmq_broker_without_connecting() -> None:
    broker = build_broker(settings(broker_url=f"amqp://guest:guest@127.0.0.1:{free_port()}/"))
    assert isinstance(broker, RabbitmqBroker) and broker.confirm_delivery


def test_only_transient_failures_and_shutdowns_are_retried_and_not_forever() -> None:
    for exc in (
        TransientGenerationError("rate limited"),
        StoreUnavailable("down"),
        BrokerUnavailable("down"),
        redis.ConnectionError("refused"),
        ConnectionClosed(Exception("closed")),
        Shutdown(),
        WorkerShutdown(),
        Retry("run released: resuming", delay=0),  # what generate_podcast raises for a shutdown release
    ):
        assert retry_when(0, exc), exc
        assert not retry_when(MAX_MESSAGE_RETRIES, exc), exc
    permanent = (
        TimeLimitExceeded(),
        SoftTimeLimitExceeded(),
        ValueError("bug"),
        GenerationError("gone"),
        InvalidInput("x"),
        RunCancelled(),
    )
    for exc in permanent:
        assert not retry_when(0, exc), exc


def test_a_dead_broker_fails_the_ping_with_broker_unavailable() -> None:
    with pytest.raises(BrokerUnavailable):
        ping_broker(build_broker(settings(broker_url=f"redis://127.0.0.1:{free_port()}/0")))


def test_closing_a_redis_broker_closes_its_connections(redis_url: str) -> None:
    # the broker's own connections, told apart by their address: other tests'
    # clients may come and go on the same server meanwhile
    observer = redis.Redis.from_url(redis_url)
    broker = build_broker(load_settings(env_file=None, broker_url=redis_url))
    ping_broker(broker)
    pool = broker.client.connection_pool  # type: ignore[attr-defined]
    mine = {
        "%s:%d" % conn._sock.getsockname()[:2]  # noqa: UP031
        for conn in pool._available_connections + list(pool._in_use_connections)
        if conn._sock is not None
    }
    assert mine and mine <= {c["addr"] for c in observer.client_list()}
    close_broker(broker)
    # the server notices a closed connection a moment later on a loaded machine
    wait_for(lambda: not mine & {c["addr"] for c in observer.client_list()}, timeout=5, what="them gone")
    observer.close()


def test_a_worker_prefetches_one_message_per_thread_and_polls_an_idle_queue_often() -> None:
    broker = StubBroker(middleware=[QueuePrefetch(slow_queues=frozenset({"podcast.low"}))])
    for queue in ("podcast", "podcast.low"):
        broker.declare_queue(queue)
    worker = Worker(broker, worker_threads=3, worker_timeout=1000)
    worker.start()
    try:
        assert worker.consumers["podcast"].prefetch == 3
        polls = {name: 100 if name == "podcast" else 1000 for name in worker.consumers}
        assert set(polls) == {"podcast", "podcast.DQ", "podcast.low", "podcast.low.DQ"}
        # each consumer thread sets its own when it starts: the queues a run starts from
        # every 100 ms at most, the delay queues and the slow band every second
        wait_for(lambda: {name: c.worker_timeout for name, c in worker.consumers.items()} == polls,
                 timeout=5, what="every consumer's poll interval")
        assert worker.worker_timeout == 1000  # the worker threads keep Dramatiq's wait
    finally:
        worker.stop()


class _Booted(Middleware):
    """Records each consumer thread's boot (after the middleware before it saw it)."""

    def __init__(self) -> None:
        self.queues: list[str] = []

    def after_consumer_thread_boot(self, broker: Any, thread: Any) -> None:
        self.queues.append(thread.queue_name)


def test_a_worker_timeout_the_user_set_applies_to_every_queue() -> None:
    booted = _Booted()
    broker = StubBroker(middleware=[QueuePrefetch(slow_queues=frozenset({"podcast.low"})), booted])
    for queue in ("podcast", "podcast.low"):
        broker.declare_queue(queue)
    worker = Worker(broker, worker_threads=1, worker_timeout=250)
    worker.start()
    try:
        wait_for(lambda: len(booted.queues) == 4, timeout=5, what="the consumer threads' boot")
        assert {c.worker_timeout for c in worker.consumers.values()} == {250}
    finally:
        worker.stop()


@pytest.mark.skipif(not rabbitmq_up(), reason="no RabbitMQ on 127.0.0.1:5672")
def test_a_message_reaches_rabbitmq_through_the_queue_dispatcher() -> None:
    broker = build_broker(settings(broker_url=RABBITMQ_URL))
    queue = f"podflow-test-{uuid.uuid4().hex[:8]}"  # never the shared "podcast" queue
    try:
        QueueDispatcher(broker=broker, queue_name=queue).send("run_abc", "msg-1")
        assert broker.get_queue_message_counts(queue)[0] == 1
    finally:
        for name in (queue, f"{queue}.DQ", f"{queue}.XQ"):
            broker.channel.queue_delete(name)
        broker.close()
