"""Benchmarks 1 and 5: no-op pipeline throughput, and worker memory idle and under load.

All systems run at once, on the same private Redis, with the same processes x
threads. After an untimed warm-up batch each, idle RSS and idle CPU (the workers'
pollers and heartbeats, % of one core over 2 s windows) are sampled; then every
repetition runs one batch of N no-op jobs per system, in a rotating order (so
no system always goes first, and machine noise spreads over all). A batch's
time runs from just before its first dispatch to its last completion
(:mod:`bench.systems`); runs/s = N / that time. The ratios pair the systems'
batches of the same repetition. While one system runs its batch, every other
system's processes are stopped (SIGSTOP, then SIGCONT): their idle pollers
would otherwise take CPU from it on a small machine. Peak RSS is sampled every
100 ms during each batch of the system under load.

CPU time per job is counted too, as it is far less sensitive than wall time to
other work on the machine: the worker processes' CPU over the batch, the
dispatching thread's, and redis-server's, each divided by N.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from .procs import RssSampler, paused, tree_cpu_s, tree_rss
from .report import Row
from .scale import Scale
from .stats import Figure
from .systems import System

__all__ = ["TARGETS", "measure"]

#: podflow's throughput targets: ratio to each other system, at least. "The
#: Celery design it replaces" is Celery as the old module ran it; the ratio to
#: Celery at its leanest is reported too, without a target.
TARGETS: dict[str, float | None] = {"Dramatiq": 0.7, "Celery (old module's settings)": 1.5, "Celery": None}
_MIB = 1024 * 1024
_IDLE_SAMPLES = 5
#: each idle sample's window: RSS at its start, CPU over it (idle pollers wake every 0.1-1 s)
_IDLE_INTERVAL_S = 2.0
#: after the warm-up, for the last acknowledgements and log lines to settle
_SETTLE_S = 1.0
_CPU_PARTS = ("workers", "dispatcher", "redis-server")


def measure(
    systems: Sequence[System], scale: Scale, log: Callable[[str], None], *, redis_pid: int
) -> tuple[list[Row], dict[str, object]]:
    """Rows for throughput, ratios, CPU per job and memory; raw repetitions as details."""
    n = scale.throughput_runs
    for system in systems:
        log(f"throughput: warm-up, {scale.warmup_runs} {system.name} jobs")
        system.run_batch(scale.warmup_runs)
    time.sleep(_SETTLE_S)
    idle: dict[str, list[float]] = {s.name: [] for s in systems}
    idle_cpu: dict[str, list[float]] = {s.name: [] for s in systems}
    for _ in range(_IDLE_SAMPLES):
        before, began = {system.name: tree_cpu_s(system.pids()) for system in systems}, time.monotonic()
        for system in systems:
            idle[system.name].append(tree_rss(system.pids()) / _MIB)
        time.sleep(_IDLE_INTERVAL_S)
        window_s = max(time.monotonic() - began, 1e-6)
        for system in systems:  # every system idle at once: each costs the others little
            idle_cpu[system.name].append(100 * (tree_cpu_s(system.pids()) - before[system.name]) / window_s)

    rates: dict[str, list[float]] = {s.name: [] for s in systems}
    peaks: dict[str, list[float]] = {s.name: [] for s in systems}
    cpu_us: dict[str, dict[str, list[float]]] = {s.name: {part: [] for part in _CPU_PARTS} for s in systems}
    for rep in range(scale.reps):
        order = [*systems[rep % len(systems) :], *systems[: rep % len(systems)]]
        for system in order:
            others = [pid for other in systems if other is not system for pid in other.pids()]
            workers_cpu, redis_cpu = tree_cpu_s(system.pids()), tree_cpu_s([redis_pid])
            with paused(others), RssSampler(system.pids) as sampler:
                seconds = system.run_batch(n)
            spent = {
                "workers": tree_cpu_s(system.pids()) - workers_cpu,
                "dispatcher": system.dispatch_cpu_s,
                "redis-server": tree_cpu_s([redis_pid]) - redis_cpu,
            }
            for part, cpu_s in spent.items():
                cpu_us[system.name][part].append(cpu_s / n * 1e6)
            rates[system.name].append(n / seconds)
            peaks[system.name].append(sampler.peak / _MIB)
            log(f"throughput: rep {rep + 1}/{scale.reps} {system.name}: {n / seconds:.0f} runs/s ({seconds:.2f} s;"
                f" dispatching alone {n / system.dispatch_s:.0f}/s)")

    processes = {s.name: getattr(s, "processes", scale.processes) for s in systems}
    setup = {name: f"{count} processes x {scale.threads} threads, {n} no-op jobs" for name, count in processes.items()}
    rows = [Row("Pipeline throughput", f"{name} ({setup[name]})", "runs/s", Figure.of(values))
            for name, values in rates.items()]
    for other, target in TARGETS.items():
        bound = "" if target is None else f">= {target}"
        if other not in rates or "podflow" not in rates:
            rows.append(Row("Pipeline throughput", f"podflow / {other}", "x", None, bound,
                            note=f"{other} not measured (install the bench extra)"))
            continue
        ratio = Figure.of(p / o for p, o in zip(rates["podflow"], rates[other], strict=True))
        rows.append(Row("Pipeline throughput", f"podflow / {other}", "x", ratio, bound,
                        met=None if target is None else ratio.median >= target))
    dramatiq = "Dramatiq"
    for postgres in (name for name in rates if name.startswith("podflow (PostgreSQL")):  # reported, no target
        if dramatiq in rates:
            ratio = Figure.of(p / o for p, o in zip(rates[postgres], rates[dramatiq], strict=True))
            rows.append(Row("Pipeline throughput", f"{postgres} / {dramatiq}", "x", ratio, ""))
    for name, parts in cpu_us.items():
        rows += [Row("CPU per job", f"{name}: {part}", "µs", Figure.of(values)) for part, values in parts.items()]
    for name in rates:
        rows.append(Row("Memory", f"{name} workers, RSS idle", "MiB", Figure.of(idle[name])))
        rows.append(Row("CPU idle", f"{name} workers, idle", "% of a core", Figure.of(idle_cpu[name])))
        rows.append(Row("Memory", f"{name} workers, RSS peak under load", "MiB", Figure.of(peaks[name])))
    raw = {"throughput_runs_per_s": rates, "cpu_us_per_job": cpu_us, "rss_idle_mib": idle, "rss_peak_mib": peaks,
           "cpu_idle_pct": idle_cpu}
    return rows, raw
