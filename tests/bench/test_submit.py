"""The submit benchmark's plumbing: a real uvicorn, the load generator, and the skip without the API."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from bench.loadgen import run_load
from bench.scale import SCALES
from bench.submit import api_available, measure, serve
from bench.systems import clean_env
from podflow.states import RunStatus
from podflow.store.sqlite import SqliteStore
from tests.servers import free_port


@pytest.fixture(scope="module")
def echo_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    port = free_port()
    server = serve("tests.bench.echo_app:app", port=port, env=clean_env(),
                   log=tmp_path_factory.mktemp("uvicorn") / "uvicorn.log")
    yield port
    server.stop()


@pytest.mark.slow
@pytest.mark.parametrize("concurrency", [1, 8])
def test_the_load_generator_times_every_request_over_keep_alive_connections(echo_port: int, concurrency: int) -> None:
    result = run_load(host="127.0.0.1", port=echo_port, path="/api/podcast/generate", requests=50,
                      concurrency=concurrency, body={"episode_name": "x"}, expect=202)
    assert result.statuses == {202: 50} and result.unexpected is None
    assert len(result.latencies_s) == 50 and all(s > 0 for s in result.latencies_s)
    assert result.requests_per_s > 0 and result.elapsed_s >= max(result.latencies_s)


@pytest.mark.slow
def test_the_load_generator_reads_chunked_bodies_and_reports_an_unexpected_status(echo_port: int) -> None:
    chunked = run_load(host="127.0.0.1", port=echo_port, path="/stream", method="GET", requests=3, concurrency=1)
    assert chunked.statuses == {200: 3}
    missing = run_load(host="127.0.0.1", port=echo_port, path="/nowhere", method="GET", requests=2, concurrency=2)
    assert missing.statuses == {404: 2} and missing.unexpected.startswith("404")


def test_without_the_api_the_submit_benchmark_is_skipped_saying_why(tmp_path: Path) -> None:
    assert not api_available("no_such_package.app:app")
    rows, details = measure(SCALES["quick"], tmp_path, "redis://127.0.0.1:1/0", lambda _: None,
                            app="no_such_package.app:app")
    assert [row.status for row in rows] == ["skipped"] and details == {}
    assert "not merged yet" in rows[0].note


@pytest.mark.slow
def test_the_submit_benchmark_measures_an_app_that_submits_for_real(redis_url: str, tmp_path: Path) -> None:
    scale = replace(SCALES["quick"], reps=2, submit_requests=((1, 20), (4, 40)))
    rows, details = measure(scale, tmp_path, redis_url, lambda _: None, app="tests.bench.echo_app:submit_app")
    assert [row.unit for row in rows] == ["req/s", "ms", "ms"] * 2
    assert all(row.figure is not None and row.figure.reps == 2 for row in rows)
    assert [row.met is not None for row in rows] == [False, True, False, False, False, False]  # p50 at concurrency 1
    assert set(details["submit"]) == {"c1", "c4"}
    store = SqliteStore(tmp_path / "api" / "podflow.sqlite3")
    try:  # every request recorded a run (and the warm-up too)
        assert store.count_by_status()[RunStatus.PENDING] == 50 + 2 * (20 + 40)
    finally:
        store.close()
