"""The app: its routes, its lifespan, and ``uvicorn api.app:app`` start-up failures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from api.app import create_app, mounted_routes
from podflow.errors import StoreUnavailable
from podflow.exitcodes import RET_CONFIG
from podflow.store.sqlite import SqliteStore
from tests.api.conftest import serve, settings_for
from tests.execution import ROOT
from tests.servers import free_port


def test_every_mounted_route_is_in_the_openapi_document(tmp_path: Path) -> None:
    app = create_app(settings_for(tmp_path))
    spec = app.state.openapi
    documented = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}
    assert mounted_routes(app) == documented
    assert len(documented) == 37


def test_the_lifespan_closes_what_it_opened(tmp_path: Path, redis_url: str) -> None:
    settings = settings_for(tmp_path, mode="thread", generator="tests.generators:noop")
    with serve(create_app(settings)) as api:
        store, executor = api.store, api.app.state.podflow.dispatcher
        assert executor._threads
    assert not executor._threads
    with pytest.raises(StoreUnavailable, match="closed"):
        store.get_run("run_x")


def test_a_store_passed_in_is_left_open(tmp_path: Path, redis_url: str) -> None:
    store = SqliteStore(tmp_path / "mine.sqlite3", heartbeat_timeout_s=60, max_attempts=3)
    with serve(create_app(settings_for(tmp_path, broker_url=redis_url), store=store)):
        pass
    assert store.get_profile("episode", "tech_news") is not None  # seeded, and still open
    store.close()


def uvicorn_app(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PODFLOW_", "MONGODB_"))}
    argv = [sys.executable, "-m", "uvicorn", "api.app:app", "--port", str(free_port())]
    return subprocess.run(argv, cwd=tmp_path, env={**clean, "PYTHONPATH": str(ROOT), **env}, capture_output=True,
                          text=True, timeout=30)


@pytest.mark.slow
def test_a_store_that_cannot_be_opened_stops_the_start_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    result = uvicorn_app(tmp_path, PODFLOW_DATA_DIR=str(tmp_path / "file" / "data"))
    assert result.returncode == 3  # uvicorn: the application's start-up failed
    assert "podflow API cannot start: cannot create" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_an_invalid_setting_stops_uvicorn_with_one_line_and_exit_78(tmp_path: Path) -> None:
    result = uvicorn_app(tmp_path, PODFLOW_MODE="sideways")
    assert result.returncode == RET_CONFIG
    assert result.stderr.strip().splitlines()[-1] == (
        "podflow: invalid configuration: PODFLOW_MODE='sideways': input should be 'queue' or 'thread'"
    )
    assert "Traceback" not in result.stderr


def test_importing_the_app_module_loads_no_settings(tmp_path: Path) -> None:
    env = {**os.environ, "PODFLOW_MODE": "sideways", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", "import api.app"], cwd=tmp_path, env=env, capture_output=True)
    assert result.returncode == 0, result.stderr
