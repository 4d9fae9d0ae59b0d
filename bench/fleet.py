"""Benchmark: many long runs in flight at once (issue 18, item 3).

``fleet_runs`` runs of ``bench.generators:hold`` (each sleeps, reporting progress
every ``fleet_progress_s``) are submitted to ``fleet_processes`` ``podflow
worker`` processes with threads enough to hold them all, on the SQLite store
and the private Redis, with production's heartbeat settings. Once every run
is STARTED, a window of ``fleet_window_s`` seconds measures:

- the store's write statements per second from heartbeats and progress, and
  the rows they wrote. Counted in the database itself: a trigger the benchmark
  adds to its scratch store records each ``heartbeat_at`` written (both writes
  set it to the statement's ``now``), so distinct values are statements and
  their rows the runs each touched (two processes writing in the same
  millisecond would count once: rare at a few statements a second);
- the workers' CPU (cores, summed over the process trees) and RSS;
- ``POST /api/podcast/generate`` and ``GET /api/podcast/runs/{id}`` latency
  (p50, p99) of a ``uvicorn api.app:app`` on the same store, one request at a
  time on a keep-alive connection each, throughout the window. Its runs go to
  a queue of their own (no worker takes them), so the fleet stays as it is.

Unbatched (one statement per heartbeat and per report of every run) the same
fleet would write ``runs / heartbeat interval + runs / progress interval``
statements a second; the target is what batching allows: per process, one
heartbeat round per interval plus at most one progress batch a second (with
10 % for the window's edges), whatever the number of runs.
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from podflow.heartbeat import PROGRESS_INTERVAL_S
from tests.execution import request
from tests.servers import free_port

from .loadgen import run_load
from .procs import tree_cpu_s, tree_rss
from .report import Row
from .scale import Scale
from .stats import Figure, percentile
from .submit import APP, serve
from .systems import BenchError, PodflowSystem, clean_env

__all__ = ["API_P99_TARGET_MS", "measure"]

BENCH = "Many runs in flight"
#: API latency under the fleet's load
API_P99_TARGET_MS = 50.0
_MIB = 1024 * 1024
#: the statements the trigger sees: one row per distinct heartbeat_at, with the rows written
_COUNTER = """
CREATE TABLE IF NOT EXISTS bench_beats (at INTEGER PRIMARY KEY, rows INTEGER NOT NULL);
CREATE TRIGGER IF NOT EXISTS bench_beat AFTER UPDATE OF heartbeat_at ON runs BEGIN
  INSERT INTO bench_beats (at, rows) VALUES (new.heartbeat_at, 1)
  ON CONFLICT (at) DO UPDATE SET rows = rows + 1;
END;
"""


def _latencies(port: int, path: str, *, method: str, body: object, expect: int, until: float) -> list[float]:
    """Requests one at a time until ``until`` (monotonic); each one's latency in ms."""
    found: list[float] = []
    while time.monotonic() < until:
        result = run_load(host="127.0.0.1", port=port, path=path, requests=20, concurrency=1, method=method,
                          body=body, expect=expect)
        if result.unexpected:
            raise BenchError(f"{method} {path} answered {result.unexpected}")
        found += [s * 1000 for s in result.latencies_s]
    return found


def measure(scale: Scale, work_dir: Path, redis_url: str, log: Callable[[str], None]) -> tuple[list[Row], dict]:
    n, processes = scale.fleet_runs, scale.fleet_processes
    threads = math.ceil(n / processes)
    system = PodflowSystem(
        work_dir=work_dir / "fleet", redis_url=redis_url, processes=processes, threads=threads,
        generator="bench.generators:hold", BENCH_HOLD_S=str(scale.fleet_hold_s),
        BENCH_PROGRESS_S=str(scale.fleet_progress_s),
    )
    interval_s = system.settings.heartbeat_interval_s
    log(f"fleet: {processes} worker processes x {threads} threads, {n} runs of {scale.fleet_hold_s:g} s")
    system.start()
    api = None
    try:
        assert system.settings.sqlite_path is not None
        db = sqlite3.connect(system.settings.sqlite_path, isolation_level=None, timeout=30)
        db.executescript(_COUNTER)
        began = time.monotonic()
        run_ids = [system.submit_one() for _ in range(n)]
        log(f"fleet: {n} runs submitted in {time.monotonic() - began:.1f} s")

        def started() -> int:
            return int(db.execute("SELECT count(*) FROM runs WHERE status = 'STARTED'").fetchone()[0])

        deadline = time.monotonic() + 60 + n / 20
        while (held := started()) < n:
            if time.monotonic() > deadline or not system.workers.alive():
                raise BenchError(f"only {held} of {n} runs started; see {system.log}")
            time.sleep(0.2)
        ramp_s = time.monotonic() - began
        log(f"fleet: all {n} runs STARTED after {ramp_s:.1f} s")
        if ramp_s + scale.fleet_window_s + 2 > scale.fleet_hold_s:
            raise BenchError(f"the runs ({scale.fleet_hold_s:g} s) end before the window does; ramp {ramp_s:.1f} s")

        port = free_port()
        env = clean_env(PODFLOW_DATA_DIR=str(system.data_dir), PODFLOW_BROKER_URL=redis_url,
                        PODFLOW_MODE="queue", PODFLOW_QUEUE="fleet-probe")
        api = serve(APP, port=port, env=env, log=work_dir / "fleet-api.log")
        body = request("probe").model_dump(mode="json", exclude_none=True)

        time.sleep(1.0)  # the API's start-up writes are not the fleet's
        window_began_ms = int(time.time() * 1000)
        cpu_before = tree_cpu_s(system.pids())
        window_began = time.monotonic()
        until = window_began + scale.fleet_window_s
        found: dict[str, list[float]] = {}

        def probe(name: str, path: str, method: str, payload: object, expect: int) -> None:
            found[name] = _latencies(port, path, method=method, body=payload, expect=expect, until=until)

        probes = [
            threading.Thread(target=probe, args=("post", "/api/podcast/generate", "POST", body, 202)),
            threading.Thread(target=probe, args=("get", f"/api/podcast/runs/{run_ids[n // 2]}", "GET", None, 200)),
        ]
        for thread in probes:
            thread.start()
        rss = []
        while time.monotonic() < until:
            rss.append(tree_rss(system.pids()) / _MIB)
            time.sleep(1.0)
        for thread in probes:
            thread.join()
        window_s = time.monotonic() - window_began
        cpu_s = tree_cpu_s(system.pids()) - cpu_before
        window_ended_ms = window_began_ms + int(window_s * 1000)
        statements, rows = db.execute(
            "SELECT count(*), coalesce(sum(rows), 0) FROM bench_beats WHERE at >= ? AND at < ?",
            (window_began_ms, window_ended_ms),
        ).fetchone()
        in_flight = started()
        db.execute("DROP TRIGGER bench_beat")
        db.close()
    finally:
        if api is not None:
            api.stop()
        system.stop()

    if len(found) != 2:
        raise BenchError("an API probe failed; see the log above")
    per_s = statements / window_s
    # per process: one heartbeat round per interval, at most one progress batch a
    # second; 10 % for the window's edges
    target = processes * (1 / interval_s + 1 / PROGRESS_INTERVAL_S) * 1.1
    unbatched = n / interval_s + n / scale.fleet_progress_s
    per_process_interval = per_s * interval_s / processes
    one = Figure.of
    rows_out = [
        Row(BENCH, f"runs in flight during the window ({processes} processes x {threads} threads)", "runs",
            one([in_flight]), f">= {n}", met=in_flight >= n),
        Row(BENCH, "store write statements/s, heartbeats + progress", "stmt/s", one([per_s]),
            f"<= {target:.3g}", met=per_s <= target,
            note=f"unbatched: {unbatched:.0f}/s"),
        Row(BENCH, f"  per process per heartbeat interval ({interval_s:g} s)", "stmt", one([per_process_interval])),
        Row(BENCH, "  rows those statements wrote", "rows/s", one([rows / window_s])),
        Row(BENCH, "worker CPU, all processes", "cores", one([cpu_s / window_s])),
        Row(BENCH, "worker RSS, all processes", "MiB", one([max(rss)])),
    ]
    for name, label in (("post", "POST /api/podcast/generate"), ("get", "GET /api/podcast/runs/{id}")):
        p50, p99 = percentile(found[name], 50), percentile(found[name], 99)
        rows_out += [
            Row(BENCH, f"{label} p50 under the fleet", "ms", one([p50])),
            Row(BENCH, f"{label} p99 under the fleet", "ms", one([p99]), f"< {API_P99_TARGET_MS:g}",
                met=p99 < API_P99_TARGET_MS),
        ]
    details = {
        "fleet": {
            "runs": n, "processes": processes, "threads": threads, "ramp_s": ramp_s, "window_s": window_s,
            "statements": statements, "rows": rows, "cpu_s": cpu_s, "rss_mib": rss,
            "requests": {name: len(values) for name, values in found.items()},
        }
    }
    return rows_out, details
