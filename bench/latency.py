"""Benchmark 3: scheduling latency, from submit to STARTED, with idle workers.

One job at a time, each after an idle gap (so the workers have nothing else to
do), alternating podflow and bare Dramatiq so both see the same machine noise.
podflow's latency is the run's ``started_at - created_at`` as the store recorded
them (``created_at`` is taken just before the run is written and sent); bare
Dramatiq's is from just before the send to the moment the actor started. Each
repetition gives a p50 and a p99 (nearest rank: with fewer than 100 samples
the p99 is the largest).

With idle workers Dramatiq's Redis consumers poll with a growing backoff, up
to ``dramatiq_worker_timeout`` (1 s by default), so the gap shapes the figure
for both systems alike; the Dramatiq line is there to tell podflow's share.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Protocol

from .report import Row
from .scale import Scale
from .stats import Figure, percentile

__all__ = ["Probe", "measure"]


class Probe(Protocol):
    name: str

    def latency_once(self) -> float: ...


def measure(probes: Sequence[Probe], scale: Scale, log: Callable[[str], None]) -> tuple[list[Row], dict[str, object]]:
    p50: dict[str, list[float]] = {p.name: [] for p in probes}
    p99: dict[str, list[float]] = {p.name: [] for p in probes}
    raw: dict[str, list[list[float]]] = {p.name: [] for p in probes}
    for rep in range(scale.reps):
        samples: dict[str, list[float]] = {p.name: [] for p in probes}
        for _ in range(scale.latency_samples):
            for probe in probes:
                time.sleep(scale.latency_gap_s)
                samples[probe.name].append(probe.latency_once() * 1000)
        for name, values in samples.items():
            p50[name].append(percentile(values, 50))
            p99[name].append(percentile(values, 99))
            raw[name].append(values)
            log(f"latency: rep {rep + 1}/{scale.reps} {name}: p50 {p50[name][-1]:.1f} ms, p99 {p99[name][-1]:.1f} ms")
    rows = []
    for name in p50:
        what = "submit -> STARTED" if name == "podflow" else "send -> actor start"
        setup = f"{scale.latency_samples} jobs/rep, {scale.latency_gap_s:g} s idle before each"
        rows.append(Row("Scheduling latency", f"{name} {what} p50 ({setup})", "ms", Figure.of(p50[name])))
        rows.append(Row("Scheduling latency", f"{name} {what} p99", "ms", Figure.of(p99[name])))
    return rows, {"latency_ms": raw}
