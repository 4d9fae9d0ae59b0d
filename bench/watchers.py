"""Benchmark: many browsers following runs over Server-Sent Events (issue 18, item 4).

One ``uvicorn bench.watch_app:app`` (the API app on a store that counts its
run reads) on the SQLite store; ``watched_runs`` runs, STARTED by the
benchmark itself (attempt 1); ``watchers`` concurrent clients on
``GET /api/podcast/runs/{id}/events``, spread evenly over them (plain asyncio
connections in this process). Once every client has its first event, for
``watch_window_s`` seconds the benchmark writes a new progress to every run
about once a second, at a random phase of the poller (its message names the write) and measures:

- the API's store reads per second (``get_run`` and ``get_runs`` calls, as the
  app counts them), against one read per poll interval (PODFLOW's events
  interval, 0.5 s) that a shared poller needs; a poller per stream would read
  ``watchers / interval`` times a second;
- event latency: from the progress write to each client reading its event
  (p50, p99; bounded by one poll interval plus the fan-out);
- the API process's CPU (cores).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from pathlib import Path

from podflow.models import Progress, Run
from podflow.store.sqlite import SqliteStore
from podflow.timeutil import utcnow
from tests.execution import request, seed
from tests.servers import free_port

from .procs import tree_cpu_s
from .report import Row
from .scale import Scale
from .stats import Figure, percentile
from .submit import serve
from .systems import BenchError, clean_env

__all__ = ["BENCH", "measure"]

BENCH = "Many watchers"
#: the API's Server-Sent Events poll interval (api.app.create_app's default)
POLL_S = 0.5


async def _watch(port: int, run_id: str, seen: dict[str, float], first: asyncio.Event, counted: list[int]) -> None:
    """One client: follow ``run_id``'s events, noting when each ``w<seq>`` message arrives."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /api/podcast/runs/{run_id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 200 " not in head.split(b"\r\n", 1)[0]:
            raise BenchError(f"events answered {head[:200]!r}")
        got_first = False
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                return
            now = time.monotonic()
            if not got_first and b"event: status" in chunk:
                got_first = True
                counted[0] += 1
                if counted[0] == counted[1]:
                    first.set()
            start = 0
            while (at := chunk.find(b'"message":"w', start)) >= 0:
                end = chunk.find(b'"', at + 12)
                seen.setdefault(chunk[at + 11 : end].decode(), now)
                start = end
    finally:
        writer.close()


def measure(scale: Scale, work_dir: Path, redis_url: str, log: Callable[[str], None]) -> tuple[list[Row], dict]:
    data_dir = work_dir / "watchers"
    store = seed(SqliteStore(data_dir / "podflow.sqlite3", heartbeat_timeout_s=3600, max_attempts=3))
    run_ids = []
    for _ in range(scale.watched_runs):
        run, _ = store.create_run(Run.new(request("watched"), now=utcnow()))
        assert store.claim(run.run_id, now=utcnow()) == 1
        run_ids.append(run.run_id)
    reads_file = work_dir / "watch-reads"
    env = clean_env(PODFLOW_DATA_DIR=str(data_dir), PODFLOW_BROKER_URL=redis_url, PODFLOW_MODE="queue",
                    BENCH_READS_FILE=str(reads_file))
    port = free_port()
    api = serve("bench.watch_app:app", port=port, env=env, log=work_dir / "watch-api.log")
    assert api.proc is not None
    writes: dict[str, float] = {}
    seen: list[dict[str, float]] = [{} for _ in range(scale.watchers)]

    def reads() -> int:
        return int(reads_file.read_text() or 0)

    async def main() -> dict[str, float]:
        first, counted = asyncio.Event(), [0, scale.watchers]
        clients = [
            asyncio.create_task(_watch(port, run_ids[i % len(run_ids)], seen[i], first, counted))
            for i in range(scale.watchers)
        ]
        try:
            await asyncio.wait_for(first.wait(), 60)
            log(f"watchers: {scale.watchers} streams open on {len(run_ids)} runs")
            await asyncio.sleep(1.0)
            reads_before, cpu_before, began = reads(), tree_cpu_s([api.proc.pid]), time.monotonic()
            seq = 0
            while time.monotonic() - began < scale.watch_window_s:
                seq += 1
                writes[f"w{seq}"] = time.monotonic()
                for run_id in run_ids:
                    progress = Progress(stage="watch", percent=seq % 100, message=f"w{seq}")
                    await asyncio.to_thread(store.set_progress, run_id, 1, progress, now=utcnow())
                await asyncio.sleep(1.0 + random.uniform(0, POLL_S))  # no phase lock with the poller
            await asyncio.sleep(2 * POLL_S)  # the last write's events
            window_s = time.monotonic() - began
            await asyncio.sleep(0.3)  # the reads file is rewritten every 0.2 s
            return {"window_s": window_s, "reads": reads() - reads_before,
                    "cpu_s": tree_cpu_s([api.proc.pid]) - cpu_before}
        finally:
            for client in clients:
                client.cancel()
            await asyncio.gather(*clients, return_exceptions=True)

    try:
        found = asyncio.run(main())
    finally:
        api.stop()
        store.close()
    latencies = [(at - writes[key]) * 1000 for client in seen for key, at in client.items() if key in writes]
    expected = scale.watchers * len(writes)
    if len(latencies) < expected * 0.99:
        raise BenchError(f"only {len(latencies)} of {expected} events reached the watchers")
    window_s = found["window_s"]
    reads_per_s = found["reads"] / window_s
    shared = 1 / POLL_S
    one = Figure.of
    rows = [
        Row(BENCH, f"API store reads/s, {scale.watchers} SSE clients on {len(run_ids)} runs", "reads/s",
            one([reads_per_s]), f"<= {shared * 1.2:.3g}", met=reads_per_s <= shared * 1.2,
            note=f"a poller per stream: {scale.watchers / POLL_S:.0f}/s"),
        Row(BENCH, "event latency p50 (store write -> client)", "ms", one([percentile(latencies, 50)])),
        Row(BENCH, "event latency p99", "ms", one([percentile(latencies, 99)]), f"< {POLL_S * 1000 + 250:g}",
            met=percentile(latencies, 99) < POLL_S * 1000 + 250),
        Row(BENCH, "API CPU while streaming", "cores", one([found["cpu_s"] / window_s])),
    ]
    return rows, {"watchers": {**found, "events": len(latencies), "expected": expected}}
