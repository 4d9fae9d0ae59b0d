"""What a worker imports at start: nothing it does not need (issue 18, memory).

``dramatiq podflow.actors`` on the SQLite store with the providers off must not
load the provider SDK, the HTTP API's stack, the other stores' drivers, the
other broker's client nor Markdown parsing: each loads with its first use instead (a provider call, a
Markdown source, ``PODFLOW_STORE_URL``). Checked in a fresh interpreter, as a
worker starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

#: packages a SQLite worker without providers never needs at start
HEAVY = (
    "openai",  # the provider SDK: PODFLOW_LLM / PODFLOW_TTS = openai, first call
    "httpx",
    "httpx2",
    "anyio",
    "markdown_it",  # Markdown sources: their first reading
    "starlette",  # the HTTP API
    "uvicorn",
    "api",
    "scheduler",
    "apscheduler",
    "pymongo",  # the other stores
    "bson",
    "psycopg",
    "psycopg_pool",
    "mongomock",
    "prometheus_client",  # /metrics is the API's, the worker's exporter loads it on demand
    "pika",  # RabbitMQ's client: a Redis worker never meets its errors (podflow.retry.connection_errors)
)


def _imported(tmp_path: Path, statement: str, **settings: str) -> set[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PODFLOW_", "MONGODB_"))}
    env.update(PODFLOW_DATA_DIR=str(tmp_path), PODFLOW_BROKER_URL="redis://127.0.0.1:9/0", **settings)
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=True)
    return {name.split(".")[0] for name in json.loads(done.stdout.splitlines()[-1])}


def test_a_sqlite_worker_without_providers_imports_none_of_the_heavy_modules(tmp_path: Path) -> None:
    imported = _imported(tmp_path, "import podflow.actors", PODFLOW_LLM="none", PODFLOW_TTS="espeak")
    assert "dramatiq" in imported and "podflow" in imported  # it did import the worker
    assert sorted(imported & set(HEAVY)) == []
