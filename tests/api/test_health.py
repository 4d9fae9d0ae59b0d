"""/healthz and /readyz: the process, then the store and the broker."""

from __future__ import annotations

from pathlib import Path

from api.app import create_app
from podflow.errors import StoreUnavailable
from podflow.store.sqlite import SqliteStore
from tests.api.conftest import Api, error, serve, settings_for
from tests.servers import free_port


def test_a_running_app_is_alive_and_ready_with_its_store_and_broker(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    assert api.client.get("/readyz").json() == {"status": "ready", "checks": {"store": "ok", "broker": "ok"}}


def test_readiness_is_a_503_naming_the_broker_when_it_is_down(tmp_path: Path) -> None:
    with serve(create_app(settings_for(tmp_path, broker_url=f"redis://127.0.0.1:{free_port()}/0"))) as api:
        assert api.client.get("/healthz").status_code == 200
        response = api.client.get("/readyz")
        body = error(response, 503, "not_ready")
        assert body["message"].startswith("not ready: broker: unavailable") and body["details"]["store"] == "ok"
        assert response.headers["retry-after"] == "5"


class DownStore(SqliteStore):
    def ping(self) -> None:
        raise StoreUnavailable("MongoDB server selection timed out")


def test_readiness_is_a_503_naming_the_store_when_it_is_down(tmp_path: Path, redis_url: str) -> None:
    store = DownStore(tmp_path / "podflow.sqlite3", heartbeat_timeout_s=60, max_attempts=3)
    try:
        with serve(create_app(settings_for(tmp_path, broker_url=redis_url), store=store)) as api:
            body = error(api.client.get("/readyz"), 503, "not_ready")
            assert "store: unavailable: MongoDB server selection timed out" in body["message"]
            assert body["details"]["broker"] == "ok"
    finally:
        store.close()


def test_thread_mode_is_ready_without_a_broker(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, mode="thread", generator="tests.generators:noop")
    with serve(create_app(settings)) as api:
        assert api.client.get("/readyz").json()["checks"] == {"store": "ok", "broker": "not used"}
