"""``podflow api``: uvicorn on PODFLOW_API_HOST:PODFLOW_API_PORT, and its exit codes."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from podflow.exitcodes import RET_CONFIG, RET_UNAVAILABLE
from tests.cli.test_worker import BIN, clean_env
from tests.execution import ROOT, wait_for
from tests.servers import free_port

pytestmark = pytest.mark.slow


def podflow_api(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "podflow"), "api"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)


@dataclass
class Served:
    """What an API process answered on its probe and, once stopped (SIGTERM), its exit and output."""

    ready: httpx.Response | None = None
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""


@contextmanager
def serving(argv: list[str], env: dict[str, str], port: int, *, probe: str = "/readyz") -> Iterator[Served]:
    """The API process ``argv`` started and answering ``probe`` for the block, then SIGTERMed."""
    env = {**env, "PYTHONPATH": str(ROOT)}  # for the test generator
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    served = Served()
    try:

        def ready() -> httpx.Response | None:
            try:
                return httpx.get(f"http://127.0.0.1:{port}{probe}", timeout=1)
            except httpx.TransportError:
                return None

        served.ready = wait_for(ready, timeout=20, what="the API")
        yield served
    finally:
        proc.send_signal(signal.SIGTERM)
        served.stdout, served.stderr = proc.communicate(timeout=20)
        served.returncode = proc.returncode


def test_podflow_api_serves_the_app_on_the_configured_port_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = clean_env(tmp_path, PODFLOW_MODE="thread", PODFLOW_API_PORT=str(port), PODFLOW_API_TOKEN="t0ken")
    with serving([str(BIN / "podflow"), "api"], env, port) as served:
        assert served.ready is not None and served.ready.json()["checks"]["broker"] == "not used"
        assert httpx.get(f"http://127.0.0.1:{port}/api/sources").status_code == 401  # the token is in force
    assert served.returncode in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in served.stderr
    # every line on stderr, uvicorn's access lines included (uvicorn puts those on stdout)
    assert '"GET /api/sources HTTP/1.1" 401' in served.stderr and served.stdout == ""


def test_podflow_api_warns_once_about_an_old_setting(tmp_path: Path) -> None:
    # the CLI's boot() warns; the app loader's boot() in the same process does not again
    port = free_port()
    env = clean_env(tmp_path, PODFLOW_MODE="thread", PODFLOW_API_PORT=str(port), CELERY_CONCURRENCY="3")
    with serving([str(BIN / "podflow"), "api"], env, port) as served:
        pass
    stderr = served.stderr
    assert served.returncode in (0, -signal.SIGTERM), stderr
    warnings = [line for line in stderr.splitlines() if "CELERY_CONCURRENCY" in line]
    assert len(warnings) == 1, stderr
    assert "CELERY_CONCURRENCY is the old module's name for PODFLOW_CONCURRENCY" in warnings[0]


@pytest.mark.parametrize("command", ["podflow api", "uvicorn api.app:app"])
def test_with_json_logs_every_line_of_the_api_is_one_json_object_uvicorns_included(
    tmp_path: Path, command: str
) -> None:
    port = free_port()
    env = clean_env(tmp_path, PODFLOW_MODE="thread", PODFLOW_API_PORT=str(port), PODFLOW_LOG_FORMAT="json",
                    PODFLOW_TYPO="1")  # fmt: skip
    argv = [str(BIN / "podflow"), "api"] if command == "podflow api" else [str(BIN / "uvicorn"), "api.app:app",
                                                                             "--port", str(port)]  # fmt: skip
    with serving(argv, env, port, probe="/healthz") as served:
        assert httpx.get(f"http://127.0.0.1:{port}/api/no-such-route").status_code == 404
    stdout, stderr = served.stdout, served.stderr
    # uvicorn run directly writes its access lines to stdout (its own logging config)
    lines = [json.loads(line) for line in (stderr + stdout).splitlines()]
    assert all(set(line) >= {"time", "level", "logger", "message"} for line in lines), lines
    assert not [line for line in lines if "color_message" in line]  # uvicorn's coloured copy is left out
    said = {(line["logger"], line["message"]) for line in lines}
    assert any(logger == "podflow.boot" and m.startswith("unknown setting PODFLOW_TYPO") for logger, m in said)
    assert ("uvicorn.error", "Application startup complete.") in said
    assert ("uvicorn.error", "Application shutdown complete.") in said
    assert any(logger == "uvicorn.access" and "GET /api/no-such-route HTTP/1.1\" 404" in m for logger, m in said)


def test_podflow_api_exits_69_with_one_line_when_the_store_cannot_be_opened(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    env = clean_env(tmp_path, PODFLOW_DATA_DIR=str(tmp_path / "file" / "data"), PODFLOW_API_PORT=str(free_port()))
    result = podflow_api(env)
    assert result.returncode == RET_UNAVAILABLE
    assert "podflow API cannot start: cannot create" in result.stderr and "Traceback" not in result.stderr


def test_podflow_api_exits_78_when_the_thread_mode_generator_cannot_be_loaded(tmp_path: Path) -> None:
    env = clean_env(tmp_path, PODFLOW_MODE="thread", PODFLOW_GENERATOR="no_such_module:generate")
    result = podflow_api(env)
    assert result.returncode == RET_CONFIG
    assert result.stderr.strip() == (
        "podflow: PODFLOW_GENERATOR='no_such_module:generate': cannot import 'no_such_module': "
        "No module named 'no_such_module'"
    )
