"""``podflow up`` (``make run``): a local Redis only when needed, then the Procfile stack, stopped cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from podflow.broker import build_broker
from podflow.cli import main
from podflow.cli.up import LocalRedisAddress, ensure_broker, local_redis_address
from podflow.dispatch import QueueDispatcher, submit
from podflow.errors import BrokerUnavailable
from podflow.exitcodes import RET_UNAVAILABLE, RET_USAGE
from podflow.settings import load_settings
from podflow.states import RunStatus
from podflow.store.sqlite import SqliteStore
from podflow.timeutil import utcnow
from tests.execution import ROOT, finished, request, seed, wait_for, worker_env
from tests.servers import free_port


def answers(port: int) -> bool:
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False
    finally:
        client.close()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://localhost:6380/0", LocalRedisAddress(6380, ["127.0.0.1", "-::1"])),
        ("redis://127.0.0.1/2", LocalRedisAddress(6379, ["127.0.0.1"])),
        ("redis://:pw@[::1]:7000", LocalRedisAddress(7000, ["::1"], "pw")),
        ("redis://cache.internal:6379/0", None),
        ("rediss://localhost:6379/0", None),
        ("amqp://guest:guest@localhost:5672/", None),
    ],
)
def test_only_a_plain_local_redis_url_is_one_podflow_may_start(url: str, expected: LocalRedisAddress | None) -> None:
    assert local_redis_address(url) == expected


def test_a_redis_that_answers_is_used_as_it_is(redis_url: str, tmp_path: Path) -> None:
    assert ensure_broker(load_settings(env_file=None, broker_url=redis_url, data_dir=tmp_path)) is None
    assert not (tmp_path / "redis").exists()


def test_nothing_answering_at_a_local_url_starts_a_redis_with_its_data_in_the_data_dir(tmp_path: Path) -> None:
    port = free_port()
    settings = load_settings(env_file=None, broker_url=f"redis://127.0.0.1:{port}/0", data_dir=tmp_path)
    started = ensure_broker(settings)
    assert started is not None
    try:
        assert answers(port)
        assert os.getpgid(started.proc.pid) != os.getpgid(0)  # its own session: Ctrl-C does not reach it
        assert (tmp_path / "redis" / "redis.log").exists()
    finally:
        started.stop()
    assert not answers(port)


def test_nothing_answering_at_a_remote_url_is_an_error_not_a_local_redis(tmp_path: Path) -> None:
    settings = load_settings(env_file=None, broker_url="redis://broker.invalid:6379/0", data_dir=tmp_path)
    with pytest.raises(BrokerUnavailable, match="not a local redis:// URL"):
        ensure_broker(settings)


def test_thread_mode_needs_no_broker(tmp_path: Path) -> None:
    settings = load_settings(env_file=None, mode="thread", broker_url=f"redis://127.0.0.1:{free_port()}/0")
    assert ensure_broker(settings) is None


def test_an_unknown_process_or_a_missing_procfile_is_a_usage_error(
    podflow_env: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = podflow_env()
    (data_dir / "Procfile").write_text((ROOT / "Procfile").read_text())
    assert main(["up", "web"]) == RET_USAGE
    assert "not in Procfile: web (it has api, worker, scheduler)" in capsys.readouterr().err
    assert main(["up", "--procfile", "nowhere/Procfile"]) == RET_USAGE


def test_a_remote_broker_that_does_not_answer_exits_69(
    podflow_env: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    podflow_env(PODFLOW_BROKER_URL="redis://broker.invalid:6379/0")
    assert main(["up", "--procfile", str(ROOT / "Procfile"), "worker"]) == RET_UNAVAILABLE
    assert "nothing answers at PODFLOW_BROKER_URL" in capsys.readouterr().err


@pytest.mark.slow
def test_up_starts_redis_worker_and_scheduler_runs_a_podcast_and_stops_everything_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    env = worker_env(data_dir=tmp_path, broker_url=url, PODFLOW_SWEEP_INTERVAL="0.5", PYTHONPATH=str(ROOT))
    env["PATH"] = "/usr/bin:/bin"  # `podflow` must come from up's own virtualenv
    store = seed(SqliteStore(tmp_path / "podflow.sqlite3"))
    log = tmp_path / "up.log"
    with open(log, "wb") as out:
        up = subprocess.Popen([str(Path(sys.executable).parent / "podflow"), "up", "worker", "scheduler"],
                              cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        wait_for(lambda: "ready for action" in log.read_text(), timeout=20, what="the worker")
        dispatcher = QueueDispatcher(broker=build_broker(load_settings(env_file=None, broker_url=url)))
        run = submit(store, dispatcher, request("noop"), now=utcnow()).run
        assert finished(store, run.run_id).status is RunStatus.SUCCESS
        wait_for(lambda: "sweep: time_limit=0" in log.read_text(), what="a sweep")
        up.send_signal(signal.SIGINT)  # what Ctrl-C sends it
        assert up.wait(20) == 0
    finally:
        if up.poll() is None:
            up.kill()
    text = log.read_text()
    assert f"started redis-server on port {port}" in text and text.rstrip().endswith("redis-server stopped")
    assert "Worker has been shut down" in text and "scheduler stopped" in text
    assert not answers(port)
    assert (tmp_path / "redis" / "appendonlydir").is_dir()
    store.close()
