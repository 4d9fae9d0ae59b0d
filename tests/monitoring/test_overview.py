"""The dashboard's overview: runs, throughput, sweeps and, in queue mode, the broker."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import dramatiq
import pytest
import redis

from podflow.dispatch.queue import QueueDispatcher
from podflow.monitoring.overview import WINDOW_MINUTES, finished_per_minute, overview
from podflow.monitoring.snapshot import inspect_broker
from podflow.settings import load_settings
from podflow.states import RunStatus
from podflow.store.base import Store
from podflow.timeutil import to_ms
from podflow.worker.broker import build_broker
from tests.conftest import T0, at, make_run
from tests.servers import free_port


def finished(store: Store, *, started: float, ended: float, status: RunStatus = RunStatus.SUCCESS) -> str:
    run, _ = store.create_run(make_run(at(started)))
    attempt = store.claim(run.run_id, now=at(started))
    assert attempt is not None
    store.finish(run.run_id, attempt, status=status, now=at(ended))
    return run.run_id


@pytest.fixture
def broker(redis_url: str) -> Iterator[dramatiq.Broker]:
    broker = build_broker(load_settings(env_file=None, broker_url=redis_url), role="api")
    yield broker
    broker.close()


def test_the_last_hour_has_a_bucket_per_minute_the_current_one_last(store: Store) -> None:
    finished(store, started=-4000, ended=-3600)  # an hour ago: out of the window
    finished(store, started=0, ended=1)
    finished(store, started=0, ended=59, status=RunStatus.FAILURE)
    store.cancel(store.create_run(make_run())[0].run_id, now=at(95))
    minutes = finished_per_minute(store, now=at(100))
    assert len(minutes) == WINDOW_MINUTES
    assert minutes[-1].minute == at(60) and minutes[0].minute == at(60) - timedelta(minutes=59)
    assert [(m.success, m.failure, m.revoked) for m in minutes[-2:]] == [(1, 1, 0), (0, 0, 1)]
    assert sum(m.success + m.failure + m.revoked for m in minutes) == 3


def test_thread_mode_has_no_broker_and_shows_runs_and_sweeps(store: Store) -> None:
    finished(store, started=0, ended=30)
    store.create_run(make_run(at(5), outbox_at=at(5)))
    store.record_sweep({"worker_lost": 2}, now=at(50))
    view = overview(store, None, mode="thread", now=at(65))
    assert view.broker is None and view.queues == [] and view.workers is None
    assert view.totals[RunStatus.SUCCESS] == 1 and view.totals[RunStatus.PENDING] == 1
    assert view.oldest_pending_age_s == 60
    assert (view.last_sweep.at, view.last_sweep.age_s, view.last_sweep.sweeps) == (at(50), 15, 1)
    assert view.last_sweep.runs["worker_lost"] == 2
    assert view.finished_per_minute[-2].success == 1


def test_queue_mode_shows_the_queues_and_the_workers(store: Store, broker: dramatiq.Broker, redis_url: str) -> None:
    QueueDispatcher(broker=broker).send("run_1", None)
    client = redis.Redis.from_url(redis_url)
    client.zadd("dramatiq:__heartbeats__", {"worker@host-a:77:ab": to_ms(at(-1))})
    client.close()
    view = overview(store, broker, mode="queue", now=T0)
    assert view.broker is not None and view.broker.kind == "redis" and view.broker.error is None
    assert [(q.name, q.ready, q.delayed, q.dead, q.unacked) for q in view.queues] == [
        ("podcast.high", 0, 0, 0, 0),  # a queue per band
        ("podcast", 1, 0, 0, 0),
        ("podcast.low", 0, 0, 0, 0),
    ]
    assert [(w.host, w.pid, w.last_seen_s, w.alive) for w in view.workers or []] == [("host-a", 77, 1.0, True)]
    assert view.store_id == store.store_id and view.broker.foreign_stores == []
    assert view.last_sweep.at is None and view.last_sweep.age_s is None
    # the snapshot's own records, not copies of them
    assert view.queues == inspect_broker(broker, now=T0).queues
    assert view.model_dump(mode="json")["workers"][0] == {
        "id": "worker@host-a:77:ab", "role": "worker", "host": "host-a", "pid": 77, "last_seen_s": 1.0, "alive": True,
        "store_id": None, "queue": None,
    }  # fmt: skip


def test_workers_name_their_store_and_another_store_on_the_queue_is_flagged(
    store: Store, broker: dramatiq.Broker, redis_url: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    client.zadd("dramatiq:__heartbeats__", {
        f"worker@host-a:77:ab:{store.store_id}:podcast": to_ms(at(-1)),
        "worker@host-b:78:cd:00000000000000aa:podcast": to_ms(at(-2)),  # another deployment, same queue
        "worker@host-c:79:ef:00000000000000bb:theirs": to_ms(at(-2)),  # another deployment, its own queue
        "worker@host-d:80:aa:00000000000000cc:podcast": to_ms(at(-100)),  # gone
    })  # fmt: skip
    client.close()
    view = overview(store, broker, mode="queue", now=T0)
    assert [(w.host, w.store_id, w.queue) for w in view.workers or []][:3] == [
        ("host-a", store.store_id, "podcast"),
        ("host-b", "00000000000000aa", "podcast"),
        ("host-c", "00000000000000bb", "theirs"),
    ]
    assert view.broker is not None and view.broker.foreign_stores == ["00000000000000aa"]


def test_a_broker_that_does_not_answer_is_named_not_raised(store: Store) -> None:
    down = build_broker(load_settings(env_file=None, broker_url=f"redis://127.0.0.1:{free_port()}/0"))
    view = overview(store, down, mode="queue", now=T0)
    assert view.broker is not None and "broker unreachable" in (view.broker.error or "")
    assert view.queues == [] and view.workers is None
    assert view.totals == {status: 0 for status in RunStatus}
    down.close()
