"""The workers' own metrics: ``dramatiq podflow.actors`` with PODFLOW_WORKER_METRICS_PORT set."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from podflow.broker import build_broker, close_broker
from podflow.dispatch import QueueDispatcher, submit
from podflow.settings import load_settings
from podflow.store.sqlite import SqliteStore
from podflow.timeutil import utcnow
from podflow.worker_metrics import metrics_dir
from tests.generators import read_events
from tests.execution import WorkerProcess, finished, request, seed, wait_for, worker_env
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
    text = httpx.get(url, timeout=2).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "dramatiq_messages_total" and sample.labels.get("actor_name") == "generate_podcast"
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
    assert not metrics_dir(worker.proc.pid).exists()  # type: ignore[union-attr]
    assert "serving the workers' Prometheus metrics on http://127.0.0.1:" in worker.log()
