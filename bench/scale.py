"""How big a benchmark run is: ``full`` (the reference run, ``make bench``) or
``quick`` (development, ``make bench-quick``), chosen with ``--scale`` or BENCH_SCALE."""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ["FULL", "QUICK", "SCALES", "Scale"]


@dataclass(frozen=True, slots=True)
class Scale:
    name: str
    #: repetitions of every timed figure (median, min and max are reported)
    reps: int
    #: worker processes x threads, the same for podflow, bare Dramatiq and Celery
    processes: int
    threads: int
    #: no-op runs per throughput repetition, and the untimed warm-up before them
    throughput_runs: int
    warmup_runs: int
    #: scheduling latency: runs per repetition, one at a time, and the idle gap before each
    latency_samples: int
    latency_gap_s: float
    #: submit path: requests per repetition at each concurrency
    submit_requests: tuple[tuple[int, int], ...]
    #: sweep: (runs stored, of which stale) points, and sweeps per point
    sweep_points: tuple[tuple[int, int], ...]
    sweep_reps: int
    #: profile podflow (statement counts, py-spy) unless told otherwise (--no-profile)
    profile: bool
    #: big store: runs stored, listing samples per query, retention deletions (runs per sweep) and their reps
    bigstore_runs: int = 1_000_000
    bigstore_samples: int = 200
    bigstore_deletions: tuple[int, ...] = (1_000, 10_000)
    bigstore_reps: int = 3
    #: provider overhead: the fake's latency per chat completion and per speech request,
    #: and the runs of the concurrent batch
    provider_chat_s: float = 2.0
    provider_speech_s: float = 0.5
    provider_concurrent: int = 8
    #: recovery: the shortened PODFLOW_HEARTBEAT_TIMEOUT and PODFLOW_SWEEP_INTERVAL, and
    #: how long the backlog takes the workers
    recovery_heartbeat_timeout_s: float = 6.0
    recovery_sweep_interval_s: float = 3.0
    recovery_backlog_s: float = 16.0
    #: many runs in flight (bench.fleet): runs, worker processes, how long each
    #: holds, its progress interval, and the measured window
    fleet_runs: int = 1000
    fleet_processes: int = 4
    fleet_hold_s: float = 60.0
    fleet_progress_s: float = 2.0
    fleet_window_s: float = 30.0
    #: many watchers (bench.watchers): SSE clients, the runs they follow, the window
    watchers: int = 500
    watched_runs: int = 50
    watch_window_s: float = 20.0
    #: system calls (bench.syscalls, with the profile): jobs per system under strace
    syscall_runs: int = 1000


#: the reference run: about 16 minutes on 2 cores
FULL = Scale(
    name="full",
    reps=3,
    processes=2,
    threads=4,
    throughput_runs=2000,
    warmup_runs=100,
    latency_samples=40,
    latency_gap_s=0.3,
    submit_requests=((1, 500), (32, 2000)),
    sweep_points=((100_000, 1_000), (1_000_000, 1_000), (1_000_000, 10_000)),
    sweep_reps=5,
    profile=True,
)
#: about a minute, on the same setup: checks the plumbing, figures are rough
QUICK = replace(
    FULL,
    name="quick",
    reps=2,
    throughput_runs=200,
    warmup_runs=20,
    latency_samples=10,
    latency_gap_s=0.2,
    submit_requests=((1, 100), (32, 400)),
    sweep_points=((10_000, 100), (50_000, 100), (50_000, 1_000)),
    sweep_reps=3,
    profile=False,
    provider_chat_s=0.5,
    provider_speech_s=0.2,
    recovery_heartbeat_timeout_s=3.0,
    recovery_sweep_interval_s=1.5,
    recovery_backlog_s=6.0,
    fleet_runs=100,
    fleet_hold_s=25.0,
    fleet_window_s=10.0,
    watchers=100,
    watched_runs=10,
    watch_window_s=5.0,
    syscall_runs=200,
    bigstore_runs=50_000,
    bigstore_samples=50,
    bigstore_deletions=(100, 1_000),
    bigstore_reps=2,
)
SCALES: dict[str, Scale] = {scale.name: scale for scale in (FULL, QUICK)}
