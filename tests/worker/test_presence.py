"""Each worker process's presence record, on a private redis-server, read back as ``celery inspect`` showed it."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from podflow.monitoring.snapshot import BrokerClient
from podflow.monitoring.workers import group_workers, inspect_workers, read_presence
from podflow.timeutil import to_ms, utcnow
from podflow.worker.broker import close_broker
from podflow.worker.presence import WORKERS_KEY, WorkerPresence, record_key
from tests import generators
from tests.api.conftest import InProcessWorker, serve, settings_for
from tests.execution import wait_for


def test_a_worker_shows_its_size_its_runs_and_what_it_did_then_leaves_on_a_clean_stop(
    tmp_path: Path, redis_url: str
) -> None:
    from api.app import create_app

    settings = settings_for(tmp_path, broker_url=redis_url, worker_processes=3)
    with serve(create_app(settings)) as api:
        broker = api.app.state.podflow.broker
        with InProcessWorker(settings, api.store, generators.by_name) as worker:
            assert any(isinstance(m, WorkerPresence) for m in worker.broker.middleware)
            ok = api.submit(episode_name="noop")["run_id"]
            api.submit(episode_name="broken")
            slow = api.submit(episode_name="slow:20")["run_id"]

            def shown() -> object:
                views = inspect_workers(broker, now=utcnow()) or []
                return views if views and views[0].running == [slow] and views[0].done + views[0].failed == 2 else None

            [view] = wait_for(shown, timeout=20)
            assert (view.processes, view.processes_configured, view.threads) == (1, 3, 2)
            assert (view.done, view.failed) == (1, 1) and view.last_seen_s < 2
            assert view.started_at is not None and view.started_at <= utcnow()
            assert api.store.get_run(ok).status == "SUCCESS"
            api.client.post(f"/api/podcast/runs/{slow}/cancel")
        # a clean stop removes the record at once
        assert inspect_workers(broker, now=utcnow()) == []
        assert broker.client.zcard(WORKERS_KEY) == 0


def test_a_silent_worker_drops_off_after_the_stated_time(redis_url: str, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, broker_url=redis_url)
    from podflow.worker.broker import build_broker

    broker = build_broker(settings, role="api")
    try:
        presence = WorkerPresence(processes=1, ttl_s=30, clock=lambda: to_ms(utcnow()) - 40_000)
        presence._client, presence._id, presence._threads = broker.client, "worker@h:1:x", 4
        presence.write()  # as written 40 s ago: past the 30 s it is kept
        assert read_presence(broker, now=utcnow(), ttl_s=30) == []
        assert read_presence(broker, now=utcnow() - timedelta(seconds=35), ttl_s=30) != []
        assert broker.client.pttl(record_key("worker@h:1:x")) > 0  # and Redis forgets it by itself
    finally:
        close_broker(broker)


def test_processes_of_one_command_are_one_worker_and_store_ids_come_from_heartbeats() -> None:
    now = utcnow()
    seen = to_ms(now) - 1500

    def record(pid: int, main: int, host: str = "h1", **fields: object) -> dict[str, object]:
        base = {"host": host, "pid": pid, "main_pid": main, "threads": 4, "processes": 2, "started_at": seen,
                "done": 1, "failed": 0, "running": json.dumps([f"run_{pid}"]), "seen_ms": seen}  # fmt: skip
        return {**base, **fields}

    heartbeats = [
        BrokerClient("a", "worker", "h1", 11, 1.0, True, store_id="s1"),  # type: ignore[call-arg]
        BrokerClient("b", "worker", "h2", 21, 1.0, True, store_id="s2"),  # type: ignore[call-arg]
    ] if "store_id" in BrokerClient.__dataclass_fields__ else []  # fmt: skip
    views = group_workers(
        [record(11, 10), record(12, 10, failed=2), record(21, 20, host="h2")], now=now, heartbeats=heartbeats
    )
    assert [(v.host, v.pid, v.processes, v.threads, v.done, v.failed, v.pids) for v in views] == [
        ("h1", 10, 2, 4, 2, 2, [11, 12]),
        ("h2", 20, 1, 4, 1, 0, [21]),
    ]
    assert views[0].running == ["run_11", "run_12"] and views[0].last_seen_s == 1.5
    if heartbeats:
        assert [v.store_id for v in views] == ["s1", "s2"]


def test_workers_of_another_queue_on_the_same_redis_are_not_listed_as_ours() -> None:
    """Two deployments on one Redis on purpose (PODFLOW_QUEUE): each lists its own workers."""
    now = utcnow()
    seen = to_ms(now) - 1000
    records = [
        {"host": "h1", "pid": pid, "main_pid": pid, "threads": 4, "processes": 1, "started_at": seen,
         "done": 0, "failed": 0, "running": "[]", "seen_ms": seen}
        for pid in (11, 21, 31)
    ]  # fmt: skip
    heartbeats = [
        BrokerClient("a", "worker", "h1", 11, 1.0, True, store_id="s1", queue="podcast"),
        BrokerClient("b", "worker", "h1", 21, 1.0, True, store_id="s2", queue="staging"),
    ]  # 31: no heartbeat yet (a worker just started): listed
    assert [v.pid for v in group_workers(records, now=now, heartbeats=heartbeats, queue="podcast")] == [11, 31]
    assert [v.pid for v in group_workers(records, now=now, heartbeats=heartbeats, queue="staging")] == [21, 31]
    assert [v.pid for v in group_workers(records, now=now, heartbeats=heartbeats)] == [11, 21, 31]
