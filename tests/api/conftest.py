"""The API under test: the real app on a real uvicorn server in a thread, and httpx.

``serve`` runs an app on a socket bound to a free port (its lifespan included)
and hands back an ``httpx.Client`` for it; ``api`` is the queue-mode app on the
private redis-server (no worker: submitted runs stay PENDING), with the bundled
profiles and one source.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dramatiq
import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

from api.app import create_app
from podflow.generation.base import Generator
from podflow.heartbeat import HeartbeatMonitor
from podflow.models import RunResult
from podflow.runner import build_runner
from podflow.settings import Settings, load_settings
from podflow.states import RunStatus
from podflow.store.base import Store
from podflow.timeutil import utcnow
from podflow.worker.broker import ACTOR_NAME, QUEUE_NAME, build_broker, close_broker

#: a run id that exists nowhere
ABSENT = "run_" + "0" * 32
SOURCE_TEXT = "# Long jobs\nPodcast runs take minutes. Workers crash. The sweep recovers them."


def settings_for(data_dir: Path, **overrides: Any) -> Settings:
    """Settings for a test app: short heartbeats and retries, everything under ``data_dir``."""
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "heartbeat_interval_s": 0.2,
        "heartbeat_timeout_s": 1.5,
        "retry_backoff_s": 0.1,
        "retry_backoff_max_s": 0.5,
        "sweep_interval_s": 0.5,
        **overrides,
    }
    return load_settings(env_file=None, **values)


@dataclass
class Api:
    """A served app: ``client`` talks to it over HTTP."""

    app: Starlette
    client: httpx.Client
    url: str

    @property
    def store(self) -> Store:
        return self.app.state.podflow.store

    @property
    def settings(self) -> Settings:
        return self.app.state.podflow.settings

    def source(self, text: str = SOURCE_TEXT) -> str:
        response = self.client.post("/api/sources", json={"content": text, "content_type": "text/markdown"})
        assert response.status_code in (200, 201), response.text
        return str(response.json()["source_id"])

    def request(self, **overrides: Any) -> dict[str, Any]:
        """A valid submit body (bundled profiles, the default source)."""
        body = {
            "episode_profile": "tech_news",
            "speaker_profile": "dual_host",
            "episode_name": "noop",
            "source_ids": [self.source()],
        }
        body.update(overrides)
        return body

    def submit(self, **overrides: Any) -> dict[str, Any]:
        response = self.client.post("/api/podcast/generate", json=self.request(**overrides))
        assert response.status_code == 202, response.text
        return dict(response.json())


@contextlib.contextmanager
def serve(app: Starlette, *, headers: dict[str, str] | None = None) -> Iterator[Api]:
    """Run ``app`` on uvicorn in a thread until the block ends.

    Raises:
      RuntimeError: the app did not start (its lifespan failed).
    """
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=5))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            sock.close()
            raise RuntimeError("the app did not start")
        thread.join(0.01)
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
            yield Api(app, client, url)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture
def api(tmp_path: Path, redis_url: str) -> Iterator[Api]:
    """The queue-mode app on the private redis-server, without a worker."""
    with serve(create_app(settings_for(tmp_path, broker_url=redis_url))) as served:
        yield served


class InProcessWorker:
    """A Dramatiq worker in this process, executing ``generate_podcast`` with ``generator``."""

    def __init__(self, settings: Settings, store: Store, generator: Generator) -> None:
        self.broker = build_broker(settings, role="worker")  # listed as a worker by podflow.monitoring.snapshot
        self.monitor = HeartbeatMonitor(store=store, interval_s=settings.heartbeat_interval_s)
        runner = build_runner(settings, store=store, monitor=self.monitor, generator=generator)

        def generate_podcast(run_id: str) -> dict[str, Any]:
            return runner.execute(run_id).as_dict()  # as podflow.worker.actors returns it

        dramatiq.actor(generate_podcast, actor_name=ACTOR_NAME, queue_name=QUEUE_NAME, broker=self.broker)
        self.worker = dramatiq.Worker(self.broker, worker_threads=2, worker_timeout=100)

    def __enter__(self) -> InProcessWorker:
        self.monitor.start()
        self.worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.worker.stop(timeout=5000)
        self.monitor.stop()
        close_broker(self.broker)


def write_wav(path: Path, *, frames: int = 8000) -> Path:
    """A mono 16-bit WAV of ``frames`` samples of silence."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(b"\0\0" * frames)
    return path


def finish_with_files(api: Api, run_id: str, **files: str) -> None:
    """Make a submitted run SUCCESS with ``files`` (name -> content) under its directory,
    as the runner would (a WAV for ``audio``)."""
    store = api.store
    attempt = store.claim(run_id, now=utcnow())
    assert attempt is not None
    folder = api.settings.data_dir / "podcasts" / run_id
    paths: dict[str, str] = {}
    for name, content in files.items():
        filename = {"audio": "episode.wav", "transcript": "transcript.json", "outline": "outline.json"}[name]
        if name == "audio":
            write_wav(folder / filename)
        else:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / filename).write_text(content, encoding="utf-8")
        paths[f"{name}_path"] = f"podcasts/{run_id}/{filename}"
    store.finish(run_id, attempt, status=RunStatus.SUCCESS, now=utcnow(), result=RunResult(**paths, duration_s=0.5))


def error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The error of ``response``, checking its status, code and shape."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    return dict(body["error"])
