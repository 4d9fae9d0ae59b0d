"""Benchmark 2: the submit path, ``POST /api/podcast/generate``, through a real uvicorn.

``uvicorn api.app:app`` runs in its own process on a free port, in queue mode
on the SQLite store (seeded with the request's profiles and source) and the
private Redis; no worker runs, so what is measured is validating, recording
and enqueueing a run and answering 202. The load generator
(:mod:`bench.loadgen`) sends each repetition's requests over 1 or 32
keep-alive connections; requests/s is requests over the repetition's elapsed
time, and p50/p99 are the per-request latencies seen by the client.

Until the HTTP API (issue 5) is merged, ``api.app`` does not exist and this
benchmark is skipped, saying so.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

from podflow.store.sqlite import SqliteStore
from tests.execution import WorkerProcess, request, seed
from tests.servers import free_port

from .loadgen import run_load
from .report import Row
from .scale import Scale
from .stats import Figure, percentile
from .systems import BenchError, clean_env

__all__ = ["APP", "P50_TARGET_MS", "api_available", "measure", "serve"]

APP = "api.app:app"
PATH = "/api/podcast/generate"
#: submit p50 at concurrency 1 must stay below this
P50_TARGET_MS = 5.0
_WARMUP = 50


def api_available(app: str = APP) -> bool:
    module = app.partition(":")[0]
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def serve(app: str, *, port: int, env: dict[str, str], log: Path) -> WorkerProcess:
    """``uvicorn app`` on 127.0.0.1:``port`` (no access log), started and ready."""
    argv = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    return WorkerProcess(env, log, argv, ready_text="Uvicorn running on").start()


def measure(
    scale: Scale, work_dir: Path, redis_url: str, log: Callable[[str], None], *, app: str = APP
) -> tuple[list[Row], dict[str, object]]:
    if not api_available(app):
        note = f"{app.partition(':')[0]} is not importable: the HTTP API (issue 5) is not merged yet"
        return [Row("Submit path", f"POST {PATH}", figure=None, note=note)], {}
    data_dir = work_dir / "api"
    store = seed(SqliteStore(data_dir / "podflow.sqlite3"))
    store.close()
    env = clean_env(PODFLOW_DATA_DIR=str(data_dir), PODFLOW_BROKER_URL=redis_url, PODFLOW_MODE="queue")
    port = free_port()
    server = serve(app, port=port, env=env, log=work_dir / "api.log")
    body = request("bench").model_dump(mode="json", exclude_none=True)

    def load(requests: int, concurrency: int) -> tuple[float, float, float]:
        result = run_load(host="127.0.0.1", port=port, path=PATH, requests=requests, concurrency=concurrency,
                          body=body, expect=202)
        if result.unexpected:
            raise BenchError(f"POST {PATH} answered {result.unexpected}")
        ms = [s * 1000 for s in result.latencies_s]
        return result.requests_per_s, percentile(ms, 50), percentile(ms, 99)

    rows: list[Row] = []
    raw: dict[str, list[tuple[float, float, float]]] = {}
    try:
        load(_WARMUP, 1)
        for concurrency, requests in scale.submit_requests:
            reps = [load(requests, concurrency) for _ in range(scale.reps)]
            raw[f"c{concurrency}"] = reps
            log(f"submit: concurrency {concurrency}: {[f'{r:.0f} req/s p50 {p:.1f} ms' for r, p, _ in reps]}")
            rps, p50, p99 = (Figure.of(r[i] for r in reps) for i in range(3))
            label = f"concurrency {concurrency}, {requests} requests/rep"
            target = concurrency == 1
            rows += [
                Row("Submit path", f"POST {PATH}, {label}", "req/s", rps),
                Row("Submit path", f"p50 latency, concurrency {concurrency}", "ms", p50,
                    f"< {P50_TARGET_MS:g}" if target else "", met=p50.median < P50_TARGET_MS if target else None),
                Row("Submit path", f"p99 latency, concurrency {concurrency}", "ms", p99),
            ]
    finally:
        server.stop()
    return rows, {"submit": raw}
