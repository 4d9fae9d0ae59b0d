"""Broker and store inspection: counts from a real Redis (and RabbitMQ if one runs), heartbeats by role."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import dramatiq
import pytest
import redis

from podflow.dispatch.queue import QueueDispatcher
from podflow.errors import BrokerUnavailable
from podflow.monitoring.snapshot import inspect_broker, inspect_store, parse_heartbeats
from podflow.settings import load_settings
from podflow.states import RunStatus
from podflow.store.base import Store
from podflow.timeutil import to_ms, utcnow
from podflow.worker.broker import QUEUE_NAME, build_broker, client_id, parse_client_id
from tests.conftest import T0, at
from tests.execution import request
from tests.servers import RABBITMQ_URL, free_port, rabbitmq_up


def broker_for(url: str) -> dramatiq.Broker:
    return build_broker(load_settings(env_file=None, broker_url=url), role="test")


@pytest.fixture
def broker(redis_url: str) -> Iterator[dramatiq.Broker]:
    broker = broker_for(redis_url)
    yield broker
    broker.close()


def test_a_broker_id_names_the_role_host_and_pid_of_its_process() -> None:
    ident = parse_client_id(client_id("worker"))
    assert ident.role == "worker" and ident.host and ident.pid is not None and ident.pid > 0
    assert parse_client_id("0b9c4c2e-6f1e-4f5e-9a57-05a1e8a1a1a1").role is None  # a plain Dramatiq id


def test_heartbeats_split_workers_from_senders_and_age_them_against_the_timeout() -> None:
    now = at(1000)
    entries = [
        ("worker@h1:10:aa", to_ms(at(999))),
        ("worker@h2:20:bb", to_ms(at(900))),  # silent 100 s: dead to Dramatiq
        (b"api@h1:30:cc", to_ms(at(990))),
        ("0b9c4c2e-6f1e-4f5e-9a57-05a1e8a1a1a1", to_ms(at(998))),  # not ours: a worker of unknown origin
    ]
    workers, clients = parse_heartbeats(entries, now=now, timeout_s=60)
    assert [(w.host, w.pid, w.last_seen_s, w.alive) for w in workers] == [
        ("h1", 10, 1.0, True),
        (None, None, 2.0, True),
        ("h2", 20, 100.0, False),
    ]
    assert [(c.role, c.host, c.pid, c.last_seen_s) for c in clients] == [("api", "h1", 30, 10.0)]


def test_ready_delayed_dead_and_unacked_messages_are_counted_per_queue(broker: dramatiq.Broker) -> None:
    dispatcher = QueueDispatcher(broker=broker)
    for n in range(4):
        dispatcher.send(f"run_{n}", None)
    broker.enqueue(dispatcher.message("run_later", None), delay=60_000)  # a retry waiting for its eta
    consumer = broker.consume(QUEUE_NAME, prefetch=2)
    fetched = [next(consumer), next(consumer)]  # a worker holds two...
    consumer.nack(fetched[0])  # ...and dead-letters one
    status = inspect_broker(broker, now=utcnow(), queues=("podcast",))
    [queue] = status.queues
    assert (queue.name, queue.ready, queue.delayed, queue.dead, queue.unacked) == (QUEUE_NAME, 2, 1, 1, 1)
    assert status.kind == "redis" and status.heartbeat_timeout_s == 60
    consumer.close()


def test_a_sender_appears_among_the_clients_not_the_workers(broker: dramatiq.Broker) -> None:
    QueueDispatcher(broker=broker).send("run_1", None)
    status = inspect_broker(broker, now=utcnow())
    assert status.workers == [] and status.workers_alive == 0
    [sender] = status.clients
    assert sender.role == "test" and sender.pid is not None and sender.alive
    assert status.as_dict()["clients"][0]["id"] == broker.broker_id


def test_a_worker_silent_past_the_timeout_is_reported_dead(broker: dramatiq.Broker, redis_url: str) -> None:
    now = utcnow()
    client = redis.Redis.from_url(redis_url)
    client.zadd("dramatiq:__heartbeats__", {"worker@gone:4242:ab": to_ms(now - timedelta(seconds=61))})
    client.close()
    [worker] = inspect_broker(broker, now=now).workers
    assert (worker.host, worker.pid, worker.alive) == ("gone", 4242, False)


def test_an_unreachable_redis_raises_broker_unavailable() -> None:
    with pytest.raises(BrokerUnavailable, match="broker unreachable"):
        inspect_broker(broker_for(f"redis://127.0.0.1:{free_port()}/0"), now=utcnow())


def test_the_store_reports_runs_by_status_and_the_oldest_pending_age(store: Store) -> None:
    from podflow.models import Run

    draft = Run.new(request(), now=T0)  # never asked to start: not counted as waiting
    waiting = Run.new(request(), now=at(10)).model_copy(update={"outbox_at": at(10)})
    started = Run.new(request(), now=at(20))
    for run in (draft, waiting, started):
        store.create_run(run)
    store.claim(started.run_id, now=at(21))
    status = inspect_store(store, now=at(70))
    assert status.runs == {"PENDING": 2, "STARTED": 1, "SUCCESS": 0, "FAILURE": 0, "REVOKED": 0}
    assert status.oldest_pending_due_at == at(10) and status.oldest_pending_age_s == 60
    assert status.as_dict()["oldest_pending_due_at"] == at(10).isoformat()
    ahead = Run.new(request(), now=at(5)).model_copy(update={"outbox_at": at(5), "start_at": at(86400)})
    store.create_run(ahead)  # scheduled for tomorrow: no run waits longer for it
    assert inspect_store(store, now=at(70)).oldest_pending_age_s == 60
    assert list(status.runs) == [str(s) for s in RunStatus]


@pytest.mark.skipif(not rabbitmq_up(), reason="no RabbitMQ on 127.0.0.1:5672")
def test_rabbitmq_counts_come_from_passive_declares_and_liveness_is_unavailable() -> None:
    broker = broker_for(RABBITMQ_URL)
    queue = f"podflow-test-{uuid.uuid4().hex[:8]}"  # never the shared "podcast" queue
    try:
        missing = inspect_broker(broker, now=utcnow(), queues=[queue])
        assert [(q.ready, q.delayed, q.dead, q.unacked) for q in missing.queues] == [(0, 0, 0, None)]
        assert missing.workers is None and "not available on RabbitMQ" in missing.note
        QueueDispatcher(broker=broker, queue_name=queue).send("run_abc", "msg-1")
        [counts] = inspect_broker(broker, now=utcnow(), queues=[queue]).queues
        assert counts.ready == 1
    finally:
        for name in (queue, f"{queue}.DQ", f"{queue}.XQ"):
            broker.channel.queue_delete(name)
        broker.close()
