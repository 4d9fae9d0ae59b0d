"""The fleet and watchers benchmarks: one tiny run each, with real workers and a real API."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

pytest.importorskip("psutil", reason="psutil comes with the bench extra")

from bench import fleet, watchers
from bench.scale import SCALES


@pytest.mark.slow
def test_a_tiny_fleet_reports_writes_cpu_memory_and_api_latency(redis_url: str, tmp_path: Path) -> None:
    scale = replace(SCALES["quick"], fleet_runs=6, fleet_processes=2, fleet_hold_s=12, fleet_window_s=3)
    rows, details = fleet.measure(scale, tmp_path, redis_url, lambda message: None)
    by_name = {row.figure_name: row for row in rows}
    held = by_name["runs in flight during the window (2 processes x 3 threads)"]
    assert held.figure is not None and held.figure.median == 6 and held.met
    writes = by_name["store write statements/s, heartbeats + progress"]
    assert writes.figure is not None and writes.figure.median > 0  # progress every 2 s was written
    assert all(row.figure is not None for row in rows) and details["fleet"]["requests"]["post"] > 0


@pytest.mark.slow
def test_a_tiny_watch_reports_reads_and_event_latency(redis_url: str, tmp_path: Path) -> None:
    scale = replace(SCALES["quick"], watchers=8, watched_runs=2, watch_window_s=2)
    rows, details = watchers.measure(scale, tmp_path, redis_url, lambda message: None)
    assert [row.unit for row in rows] == ["reads/s", "ms", "ms", "cores"]
    assert details["watchers"]["events"] >= details["watchers"]["expected"] * 0.99
