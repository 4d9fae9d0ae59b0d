"""The throughput, memory and latency plumbing, with stand-in systems (no processes)."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

from bench.latency import measure as measure_latency
from bench.scale import SCALES

pytest.importorskip("psutil", reason="psutil comes with the bench extra")

from bench import throughput
from bench.throughput import measure as measure_throughput

SCALE = replace(SCALES["quick"], reps=3, throughput_runs=100, warmup_runs=1, latency_samples=4, latency_gap_s=0)


@pytest.fixture(autouse=True)
def no_settling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(throughput, "_SETTLE_S", 0)
    monkeypatch.setattr(throughput, "_IDLE_INTERVAL_S", 0)


class StandIn:
    """A system whose batches take a fixed time; ``latency`` seconds per probe."""

    def __init__(self, name: str, seconds: float, latency: float = 0.01) -> None:
        self.name = name
        self.seconds = seconds
        self.latency = latency
        self.dispatch_s = self.dispatch_cpu_s = 0.0
        self.batches: list[int] = []

    def pids(self) -> list[int]:
        return [os.getpid()]

    def run_batch(self, n: int) -> float:
        self.batches.append(n)
        self.dispatch_s, self.dispatch_cpu_s = self.seconds / 2, 0.001
        return self.seconds

    def latency_once(self) -> float:
        return self.latency


def test_throughput_rows_give_runs_per_second_ratios_and_targets() -> None:
    old_module = "Celery (old module's settings)"
    systems = [StandIn("podflow", 0.5), StandIn("Dramatiq", 0.4), StandIn("Celery", 1.0), StandIn(old_module, 1.0)]
    rows, raw = measure_throughput(systems, SCALE, lambda _: None, redis_pid=os.getpid())
    assert systems[0].batches == [1, 100, 100, 100]  # a warm-up, then one batch per repetition
    by_name = {row.figure_name: row for row in rows}
    assert next(r for r in rows if r.figure_name.startswith("podflow (")).figure.median == pytest.approx(200)
    assert by_name["podflow / Dramatiq"].figure.median == pytest.approx(0.8) and by_name["podflow / Dramatiq"].met
    assert by_name[f"podflow / {old_module}"].figure.median == pytest.approx(2.0)
    assert by_name[f"podflow / {old_module}"].met
    # Celery at its leanest is shown beside it, without a target
    assert by_name["podflow / Celery"].figure.median == pytest.approx(2.0) and by_name["podflow / Celery"].met is None
    assert by_name["podflow workers, RSS idle"].figure.median > 0
    assert by_name["podflow: dispatcher"].figure.median == pytest.approx(10)  # µs per job
    assert raw["throughput_runs_per_s"]["Celery"] == pytest.approx([100, 100, 100])


def test_a_slower_podflow_misses_and_a_missing_system_is_skipped() -> None:
    rows, _ = measure_throughput([StandIn("podflow", 1.0), StandIn("Dramatiq", 0.5)], SCALE, lambda _: None,
                                 redis_pid=os.getpid())
    by_name = {row.figure_name: row for row in rows}
    assert by_name["podflow / Dramatiq"].status == "MISSED"
    assert by_name["podflow / Celery (old module's settings)"].status == "skipped"


def test_latency_rows_are_p50_and_p99_in_ms_per_repetition() -> None:
    rows, raw = measure_latency([StandIn("podflow", 0, latency=0.02), StandIn("Dramatiq", 0)], SCALE, lambda _: None)
    assert [row.figure.median for row in rows] == pytest.approx([20, 20, 10, 10])
    assert len(raw["latency_ms"]["podflow"]) == SCALE.reps


def test_idle_cpu_is_reported_per_system_in_percent_of_a_core() -> None:
    systems = [StandIn("podflow", 0.5), StandIn("Dramatiq", 0.4)]
    rows, raw = measure_throughput(systems, SCALE, lambda _: None, redis_pid=os.getpid())
    idle = {row.figure_name: row for row in rows if row.benchmark == "CPU idle"}
    assert set(idle) == {"podflow workers, idle", "Dramatiq workers, idle"}
    assert all(row.unit == "% of a core" and row.figure is not None for row in idle.values())
    assert len(raw["cpu_idle_pct"]["podflow"]) == 5
