"""Shared fixtures: a store per backend, fixed times, requests."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from podflow.models import Run, RunRequest
from podflow.store.base import Store

if TYPE_CHECKING:
    from tests.fake_provider import FakeProvider
    from tests.servers import RedisServer

@pytest.fixture(autouse=True)
def _settings_not_warned_yet(monkeypatch: pytest.MonkeyPatch) -> None:
    """An in-process boot() marks the environment as warned (WARNED_MARK); the mark
    is undone after each test, so neither later tests nor their subprocesses inherit it."""
    from podflow.boot import WARNED_MARK

    monkeypatch.delenv(WARNED_MARK, raising=False)


#: a fixed "now" for time logic; tests move it explicitly instead of sleeping
T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    """T0 plus ``seconds``."""
    return T0 + timedelta(seconds=seconds)


def make_request(**overrides: object) -> RunRequest:
    fields: dict[str, object] = {
        "episode_profile": "tech_news",
        "speaker_profile": "dual_host",
        "episode_name": "Episode 1",
        "source_ids": ["src_1"],
    }
    fields.update(overrides)
    return RunRequest.model_validate(fields)


def make_run(now: datetime = T0, **overrides: object) -> Run:
    """A run of the default request; one given an ``attempt`` counts every attempt
    (``attempts_counted``), unless told otherwise."""
    run = Run.new(make_request(), now=now)
    if "attempt" in overrides:
        overrides = {"attempts_counted": overrides["attempt"], **overrides}
    return run.model_copy(update=overrides) if overrides else run


#: a scrape's samples: (name, sorted label pairs) -> value
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def metric_samples(text: str) -> Samples:
    """Every sample of a Prometheus text exposition, read with prometheus-client's own parser."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


_MONGOMOCK_WRITES = (
    "find_one_and_update", "find_one_and_replace", "find_one_and_delete", "update_one", "update_many",
    "replace_one", "insert_one", "insert_many", "delete_one", "delete_many", "bulk_write",
)  # fmt: skip
_mongomock_lock = threading.RLock()


def _serialize_mongomock_writes() -> None:
    """Make each mongomock write one atomic step, as a real server makes every
    single-document write. mongomock takes no lock: two threads' conditional
    updates interleave inside one call, which no MongoDB server allows, and the
    race tests (two sweeps at once) then fail for mongomock's sake, not ours."""
    import mongomock.collection

    collection = mongomock.collection.Collection
    if getattr(collection, "_podflow_serialized", False):
        return
    for name in _MONGOMOCK_WRITES:
        original = getattr(collection, name)

        def serialized(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            with _mongomock_lock:
                return _original(self, *args, **kwargs)

        setattr(collection, name, serialized)
    collection._podflow_serialized = True  # type: ignore[attr-defined]


def _accept_pymongo_bulk_updates() -> None:
    """pymongo 4.11+ hands a bulk update's ``sort`` (None unless asked for) to the
    bulk builder; mongomock 4.3's builder predates the argument. Accept it when unset."""
    import mongomock.collection

    builder = mongomock.collection.BulkOperationBuilder
    if getattr(builder, "_podflow_sort", False):
        return
    original = builder.add_update

    def add_update(self: Any, *args: Any, sort: Any = None, **kwargs: Any) -> Any:
        if sort is not None:
            raise NotImplementedError("mongomock: a bulk update with sort")
        return original(self, *args, **kwargs)

    builder.add_update = add_update
    builder._podflow_sort = True


STORE_BACKENDS = ["sqlite", "mongomock", "postgres", "mongo"]


def open_test_store(kind: str, tmp_path: os.PathLike[str], *, postgres_url: str = "", **policy: float) -> Store:
    policy = {"heartbeat_timeout_s": 60.0, "max_attempts": 3, **policy}
    if kind == "postgres":
        from podflow.store.postgres import PostgresStore

        return PostgresStore(postgres_url, pool_size=4, **policy)  # type: ignore[arg-type]
    if kind == "sqlite":
        from podflow.store.sqlite import SqliteStore

        return SqliteStore(os.path.join(tmp_path, "podflow.sqlite3"), **policy)  # type: ignore[arg-type]
    from podflow.store.mongo import MongoStore

    if kind == "mongomock":
        import mongomock

        _serialize_mongomock_writes()
        _accept_pymongo_bulk_updates()
        return MongoStore(client=mongomock.MongoClient(tz_aware=True), database="podflow_test", **policy)  # type: ignore[arg-type]
    uri = os.environ.get("PODFLOW_TEST_MONGODB_URI")
    if not uri:
        pytest.skip("real MongoDB not configured: set PODFLOW_TEST_MONGODB_URI to run these")
    return MongoStore(uri, database=f"podflow_test_{uuid.uuid4().hex[:12]}", **policy)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A database of this module's own on the test PostgreSQL server, dropped afterwards."""
    from tests.postgres import scratch_database

    with scratch_database() as url:
        yield url


@pytest.fixture(params=STORE_BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> Iterator[Store]:
    """Every backend, with heartbeat_timeout_s=60 and max_attempts=3. PostgreSQL
    tests of a module share its database, emptied after each test."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else ""
    backend = open_test_store(request.param, tmp_path, postgres_url=url)
    yield backend
    if request.param == "mongo":
        backend.client.drop_database(backend.runs.database.name)  # type: ignore[attr-defined]
    backend.close()
    if request.param == "postgres":
        from tests.postgres import truncate

        truncate(url)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private redis-server for the whole session. Tests share it, so each
    test uses its own key namespace or flushes only its own database."""
    from tests.servers import RedisServer

    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """A clean database on the private server (flushing it is safe: it is ours)."""
    client = redis_server.client()
    client.flushdb()
    yield redis_server.url
    client.flushdb()
    client.close()


@pytest.fixture(scope="module")
def worker_redis_url(redis_server: RedisServer) -> Iterator[str]:
    """Database 1 of the private server, for one module's long-lived worker
    processes: the per-test ``redis_url`` fixture flushes database 0, which
    must not pull queues away from under them. Flushed before and after."""
    import redis

    url = redis_server.url.rsplit("/", 1)[0] + "/1"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    """A fake OpenAI-compatible provider on a free port (real HTTP; :mod:`tests.fake_provider`)."""
    from tests.fake_provider import FakeProvider

    with FakeProvider() as server:
        yield server


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Skip reasons, once each with a count (``-ra`` would list every skipped test)."""
    reasons: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
        reasons[reason] = reasons.get(reason, 0) + 1
    if reasons:
        terminalreporter.section("skipped tests, by reason")
        for reason, count in sorted(reasons.items(), key=lambda item: -item[1]):
            terminalreporter.line(f"{count:4d}  {reason}")
