"""The systems under test, as real worker processes on the private Redis, with tiny batches."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.systems import CelerySystem, DramatiqSystem, PodflowSystem, celery_available

pytestmark = pytest.mark.slow


SYSTEMS = {
    "podflow": (PodflowSystem, {}),
    "Dramatiq": (DramatiqSystem, {}),
    "Celery": (CelerySystem, {"style": "bare"}),
    "Celery-old-module": (CelerySystem, {"style": "module"}),
}


@pytest.mark.parametrize("name", list(SYSTEMS))
def test_a_system_completes_a_batch_and_reports_its_workers(
    name: str, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kind, options = SYSTEMS[name]
    if kind is CelerySystem and not celery_available():
        pytest.skip("Celery comes with the bench extra")
    monkeypatch.setenv("BENCH_REDIS_URL", redis_url)  # restored after: the systems set it for their apps
    system = kind(work_dir=tmp_path, redis_url=redis_url, processes=1, threads=2, **options)
    try:
        system.start()
        assert system.pids()
        seconds = system.run_batch(5)
        assert 0 < seconds < 30 and system.dispatch_s > 0
        assert system.run_batch(3) > 0  # a second batch counts afresh
        if hasattr(system, "latency_once"):
            assert 0 <= system.latency_once() < 10
    finally:
        system.stop()
    assert not system.pids()
