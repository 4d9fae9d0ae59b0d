"""``podflow status``: queued, delayed and dead messages, live workers and runs, on a real Redis."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from podflow.cli import main
from podflow.dispatch.queue import QueueDispatcher
from podflow.exitcodes import RET_UNAVAILABLE
from podflow.models import Run
from podflow.paths import checkpoint_dir
from podflow.settings import load_settings
from podflow.store.sqlite import SqliteStore
from podflow.timeutil import to_ms, utcnow
from podflow.worker.broker import QUEUE_NAME, build_broker
from tests.execution import WorkerProcess, request, seed, wait_for, worker_env
from tests.servers import free_port


def status_json(capsys: pytest.CaptureFixture[str], code: int = 0) -> dict[str, Any]:
    assert main(["status", "--json"]) == code
    return json.loads(capsys.readouterr().out)


def test_status_counts_queued_delayed_and_dead_messages_and_runs(
    podflow_env: Callable[..., Path], redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = podflow_env(PODFLOW_BROKER_URL=redis_url)
    store = SqliteStore(data_dir / "podflow.sqlite3")
    created = utcnow()
    store.create_run(Run.new(request(), now=created).model_copy(update={"enqueued_at": created}))
    store.close()
    broker = build_broker(load_settings(env_file=None, broker_url=redis_url), role="test")
    dispatcher = QueueDispatcher(broker=broker)
    for n in range(4):
        dispatcher.send(f"run_{n}", None)
    broker.enqueue(dispatcher.message("run_retry", None), delay=60_000)
    consumer = broker.consume(QUEUE_NAME)
    consumer.nack(next(consumer))  # dead-lettered
    consumer.close()

    report = status_json(capsys)
    empty = {"ready": 0, "delayed": 0, "dead": 0, "unacked": 0}
    assert report["broker"]["queues"] == [  # per band, first served first
        {"name": "podcast.high", **empty},
        {"name": "podcast", "ready": 3, "delayed": 1, "dead": 1, "unacked": 0},
        {"name": "podcast.low", **empty},
    ]
    assert report["broker"]["workers"] == [] and report["broker"]["workers_alive"] == 0
    assert [c["role"] for c in report["broker"]["clients"]] == ["test"]  # the sender is no worker
    assert report["store"]["runs"]["PENDING"] == 1 and report["store"]["kind"] == "sqlite"
    assert 0 <= report["store"]["oldest_pending_age_s"] < 60

    assert main(["status"]) == 0
    text = capsys.readouterr().out
    assert "  podcast           3        1     1        0" in text and "workers: 0 alive" in text
    assert "  podcast.high      0        0     0        0" in text  # depth per band
    assert "oldest PENDING: " in text


@pytest.mark.slow
def test_status_shows_a_live_worker_with_its_host_and_pid(
    podflow_env: Callable[..., Path], worker_redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    podflow_env(PODFLOW_BROKER_URL=worker_redis_url)
    worker = WorkerProcess(worker_env(data_dir=tmp_path, broker_url=worker_redis_url), tmp_path / "worker.log")
    worker.start()
    try:
        report = wait_for(lambda: (r := status_json(capsys))["broker"]["workers"] and r, what="a heartbeat")
        [seen] = report["broker"]["workers"]
        assert seen["role"] == "worker" and seen["alive"] and seen["last_seen_s"] < 5
        assert seen["pid"] != worker.proc.pid  # a worker process, not Dramatiq's main process
        assert f"[PID {seen['pid']}]" in worker.log()
        assert seen["store_id"] == report["store"]["store_id"] and seen["queue"] == "podcast"
        assert report["broker"]["foreign_stores"] == []
        assert main(["status"]) == 0
        text = capsys.readouterr().out
        assert f"pid {seen['pid']} store {seen['store_id']}" in text and "ANOTHER STORE" not in text
        # the worker command as celery inspect showed a node: its size, from its presence record
        report = wait_for(lambda: (r := status_json(capsys))["broker"]["worker_details"] and r, what="presence")
        [command] = report["broker"]["worker_details"]
        assert (command["pid"], command["pids"]) == (worker.proc.pid, [seen["pid"]])
        assert (command["processes"], command["threads"], command["done"], command["failed"]) == (1, 2, 0, 0)
        assert main(["status"]) == 0
        text = capsys.readouterr().out
        assert f"pid {worker.proc.pid}: 1/1 processes x 2 threads, running 0" in text and "holds" not in text
        # a run it executes now is named, as celery inspect active named a task
        store = seed(SqliteStore(tmp_path / "podflow.sqlite3"))
        held = Run.new(request("slow:30"), now=utcnow())
        store.create_run(held)
        dispatcher = QueueDispatcher(broker=build_broker(load_settings(env_file=None, broker_url=worker_redis_url)))
        dispatcher.send(held.run_id, None)

        def holds() -> list[str]:
            return list(status_json(capsys)["broker"]["worker_details"][0]["running"])

        wait_for(lambda: holds() == [held.run_id], what="the worker to hold the run")
        assert main(["status"]) == 0
        text = capsys.readouterr().out
        assert f"pid {worker.proc.pid}: 1/1 processes x 2 threads, running 1, done 0" in text
        assert f"      holds {held.run_id}\n" in text
        store.cancel(held.run_id, now=utcnow())  # so that the worker stops at once
        wait_for(lambda: holds() == [], what="the worker to let the run go")
        store.close()
    finally:
        code = worker.stop()
    assert code == 0
    after = status_json(capsys)["broker"]
    # a clean stop removes the presence record and leaves the heartbeats
    assert after["worker_details"] == [] and after["workers"] == []


def test_status_flags_workers_of_another_store_on_the_same_queue(
    podflow_env: Callable[..., Path], redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    podflow_env(PODFLOW_BROKER_URL=redis_url)
    client = redis.Redis.from_url(redis_url)
    client.zadd("dramatiq:__heartbeats__", {"worker@elsewhere:41:ab:00000000000000aa:podcast": to_ms(utcnow())})
    client.close()
    report = status_json(capsys)
    assert report["broker"]["foreign_stores"] == ["00000000000000aa"]
    [foreign] = report["broker"]["workers"]
    assert foreign["store_id"] == "00000000000000aa" and report["store"]["store_id"] != foreign["store_id"]
    assert main(["status"]) == 0
    text = capsys.readouterr().out
    assert "store 00000000000000aa (ANOTHER STORE)" in text
    assert "MIXED: workers of 1 other store(s) (00000000000000aa) consume queue 'podcast'" in text
    assert "PODFLOW_QUEUE" in text


def test_status_with_the_broker_down_still_shows_the_runs_and_exits_69(
    podflow_env: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    podflow_env(PODFLOW_BROKER_URL=f"redis://:secret@127.0.0.1:{free_port()}/0")
    report = status_json(capsys, RET_UNAVAILABLE)
    assert "broker unreachable" in report["broker"]["error"] and ":***@" in report["broker"]["url"]
    assert report["store"]["runs"]["PENDING"] == 0
    assert main(["status"]) == RET_UNAVAILABLE
    captured = capsys.readouterr()
    assert "UNAVAILABLE" in captured.out and captured.err.startswith("podflow: broker unavailable: ")
    assert "secret" not in captured.out + captured.err


def test_status_in_thread_mode_has_no_broker(
    podflow_env: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    podflow_env(PODFLOW_MODE="thread")
    report = status_json(capsys)
    assert report["broker"] is None and report["mode"] == "thread"


def test_status_watch_redraws_every_n_seconds(
    podflow_env: Callable[..., Path], redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    podflow_env(PODFLOW_BROKER_URL=redis_url)
    assert main(["status", "--watch", "0.1", "--times", "3"]) == 0
    out = capsys.readouterr().out
    assert out.count("(every 0.1 s; Ctrl-C stops) --") == 3 and out.count("store   sqlite") == 3
    with pytest.raises(SystemExit):
        main(["status", "--watch", "0"])


def test_status_shows_what_the_checkpoints_take_on_disk(
    podflow_env: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = podflow_env(PODFLOW_MODE="thread")
    kept = checkpoint_dir(data_dir, "run_" + "c" * 32)
    kept.mkdir(parents=True)
    (kept / "clip-1.wav").write_bytes(b"x" * 1000)
    report = status_json(capsys)
    assert report["checkpoints"] == {"path": str(data_dir / "checkpoints"), "runs": 1, "files": 1, "bytes": 1000}
    assert main(["status"]) == 0
    assert f"checkpoints  1 run(s), 1 file(s), 1,000 bytes in {data_dir / 'checkpoints'}" in capsys.readouterr().out
