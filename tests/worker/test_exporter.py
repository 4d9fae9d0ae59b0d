"""The workers' own metrics: ``dramatiq podflow.actors`` with PODFLOW_WORKER_METRICS_PORT set."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import httpx
import pytest

from podflow.dispatch.queue import QueueDispatcher
from podflow.lifecycle import submit
from podflow.settings import load_settings
from podflow.store.sqlite import SqliteStore
from podflow.timeutil import utcnow
from podflow.worker.broker import build_broker, close_broker
from podflow.worker.exporter import _remove_stale, metrics_dir
from tests.conftest import metric_samples
from tests.execution import WorkerProcess, finished, request, seed, wait_for, worker_env
from tests.generators import read_events
from tests.servers import free_port

pytestmark = pytest.mark.slow


def listening_addresses(port: int) -> set[str]:
    """The local IPv4 addresses with a socket listening on ``port`` (from /proc/net/tcp)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


def messages_total(url: str) -> float:
    samples = metric_samples(httpx.get(url, timeout=2).text)
    return sum(
        value
        for (name, labels), value in samples.items()
        if name == "dramatiq_messages_total" and ("actor_name", "generate_podcast") in labels
    )


def test_two_worker_processes_serve_their_summed_metrics_on_localhost_only(tmp_path: Path, redis_url: str) -> None:
    port = free_port()
    env = worker_env(data_dir=tmp_path, broker_url=redis_url, PODFLOW_WORKER_METRICS_PORT=str(port))
    worker = WorkerProcess(env, tmp_path / "worker.log")
    worker.argv[worker.argv.index("--processes") + 1] = "2"
    store = seed(SqliteStore(tmp_path / "podflow.sqlite3"))
    broker = build_broker(load_settings(env_file=None, broker_url=redis_url))
    dispatcher = QueueDispatcher(broker=broker)
    worker.start()
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_for(lambda: listening_addresses(port), timeout=15, what="the metrics server")
        assert listening_addresses(port) == {"127.0.0.1"}
        with pytest.raises(httpx.ConnectError):  # bound to 127.0.0.1, not to every address
            httpx.get(f"http://127.0.0.2:{port}/", timeout=2)
        # four runs at once for two processes of two threads: both processes count some
        runs = [submit(store, dispatcher, request("slow:0.5"), now=utcnow()).run for _ in range(4)]
        for run in runs:
            finished(store, run.run_id)
        assert len({event["pid"] for event in read_events(tmp_path / "events.jsonl")}) == 2
        assert wait_for(lambda: messages_total(url) == 4, timeout=10, what="4 messages counted")
        assert metrics_dir(worker.proc.pid).is_dir()  # type: ignore[union-attr]
    finally:
        assert worker.stop() == 0, worker.log()
        close_broker(broker)
        store.close()
    assert "Traceback" not in worker.log(), worker.log()
    assert "starting the workers' Prometheus metrics server on http://127.0.0.1:" in worker.log()


def test_a_metrics_port_already_taken_is_one_log_line_and_the_workers_go_on(tmp_path: Path, redis_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = worker_env(data_dir=tmp_path, broker_url=redis_url, PODFLOW_WORKER_METRICS_PORT=str(port))
        worker = WorkerProcess(env, tmp_path / "worker.log").start()
        store = seed(SqliteStore(tmp_path / "podflow.sqlite3"))
        broker = build_broker(load_settings(env_file=None, broker_url=redis_url))
        try:
            wait_for(lambda: "cannot serve the workers' metrics" in worker.log(), timeout=10, what="the error line")
            run = submit(store, QueueDispatcher(broker=broker), request("noop"), now=utcnow()).run
            assert finished(store, run.run_id).status == "SUCCESS"
        finally:
            assert worker.stop() == 0, worker.log()
            close_broker(broker)
            store.close()
    assert f"127.0.0.1:{port} (PODFLOW_WORKER_METRICS_HOST/PORT): [Errno 98]" in worker.log()
    assert "Traceback" not in worker.log(), worker.log()


def test_the_directories_of_worker_commands_that_stopped_are_removed(tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    for pid in (gone.pid, os.getpid()):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "counter_1.db").write_bytes(b"")
    (tmp_path / "not-a-pid").mkdir()
    _remove_stale(tmp_path, keep=tmp_path / "none")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([str(os.getpid()), "not-a-pid"])
