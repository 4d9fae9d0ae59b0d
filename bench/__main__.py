"""``python -m bench``: run the benchmarks, print one table, write it under bench/results/.

Usage: ``python -m bench [--scale full|quick] [--only NAME,...] [--out DIR] [--[no-]profile] [--keep]``
(``make bench``, ``make bench-quick``). The scale defaults to BENCH_SCALE, else ``full``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.postgres import scratch_database
from tests.servers import RedisServer

from . import bigstore, fleet, latency, providers, recovery, submit, sweep, sweep_postgres, throughput, watchers
from .machine import describe_machine, load_average, pressure
from .report import Report, Row
from .scale import SCALES, Scale
from .systems import CelerySystem, DramatiqSystem, PodflowSystem, System, celery_available

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ("throughput", "latency", "sweep", "bigstore", "submit", "providers", "recovery", "fleet", "watchers")
#: Redis databases of the private server: one per benchmark, so each flushes only its own
_DB = {
    "pipeline": 0, "sweep": 1, "submit": 2, "pipeline_postgres": 3, "providers": 4, "fleet": 5, "watchers": 6,
    "pipeline_postgres_wide": 7,
}
#: the PostgreSQL store's second run: this many worker processes (SQLite admits one writer at a time; does this scale?)
WIDE_PROCESSES = 4

METHOD_NOTES = [
    "Each figure is the median of its repetitions (reps), with the min and max; a target is judged on the median.",
    "Throughput: from just before the first of N dispatches (all from one process, one after another) to the last "
    "completion: podflow = the largest finished_at of the batch's SUCCESS runs in the SQLite store; bare Dramatiq "
    "and Celery = the time recorded by the task whose Redis INCR reached N. Ratios pair the batches of one "
    "repetition; the systems take turns in a rotating order, and while one runs its batch every other system's "
    "workers are stopped (SIGSTOP/SIGCONT), so that idle pollers take no CPU from it.",
    "podflow runs as production does: `podflow worker` (Dramatiq, podflow's middleware, one prefetched message per "
    "thread, an idle poll of 100 ms (1 s on the delay queues and the low band), INFO logs), SQLite with "
    "accepted runs fsynced before submit returns, the sends confirmed in batches as the API does (`EnqueueMarks`). "
    "Bare Dramatiq: Dramatiq's default middleware, prefetch and idle poll. "
    "Celery: `celery worker -P threads -c T`, one instance per process, without gossip, mingle and heartbeat, "
    "results ignored, INFO logs; \"old module's settings\": with a result backend, STARTED tracked, late acks "
    "and a prefetch of one, as the replaced module ran Celery.",
    "Provider overhead: the fake provider (its own process) answers each chat completion and speech request "
    "after a fixed latency; ideal = 2 chat latencies + ceil(turns / TTS parallelism) speech latencies, the "
    "provider's time alone; makespan = first submit to last finished_at (real workers, MP3 encoded by ffmpeg).",
    "Recovery: real workers and `podflow scheduler` on a redis-server of its own, with PODFLOW_HEARTBEAT_TIMEOUT and "
    "PODFLOW_SWEEP_INTERVAL shortened to the figures' settings; each figure is the median over the lost runs of one "
    "repetition (kill or restart -> the run's history entry). See bench/recovery.py.",
    "Big store: Store.list_runs (what GET /runs runs, without HTTP) on a store of the scale's size, each query "
    "timed in turn; p50 and p99 are nearest-rank over the samples. Retention: one sweep() per repetition deleting "
    "the oldest k ended runs (no files on disk), less a sweep that deletes nothing, per deleted run.",
    "Memory: RSS summed over each worker tree (main process and children); forked children share pages, so the "
    "sum is an upper bound. Idle after the warm-up; peak sampled every 100 ms during the throughput batches.",
]


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


Step = Callable[[], tuple[list[Row], dict[str, Any], list[str]]]


def _failure(benchmark: str, exc: Exception) -> Row:
    _log(f"{benchmark}: FAILED: {exc}\n{traceback.format_exc()}")
    return Row(benchmark, "—", error=f"{type(exc).__name__}: {exc}")


def _run_step(report: Report, benchmark: str, step: Step) -> None:
    """Run one benchmark into ``report``; a failure becomes a FAILED row, and the run goes on."""
    try:
        rows, details, notes = step()
    except Exception as exc:
        rows, details, notes = [_failure(benchmark, exc)], {}, []
    report.rows += rows
    report.details.update(details)
    report.notes += notes


def _pipeline(scale: Scale, work_dir: Path, redis: RedisServer, db: int, selected: set[str], profile: bool,
              report: Report) -> None:
    """Throughput, memory and latency (and the profile), on one set of running workers."""
    redis_url = f"{redis.url.rsplit('/', 1)[0]}/{db}"
    options = {"work_dir": work_dir, "redis_url": redis_url, "processes": scale.processes, "threads": scale.threads}
    podflow_system, dramatiq_system = PodflowSystem(**options), DramatiqSystem(**options)
    systems: list[System] = [podflow_system, dramatiq_system]
    with contextlib.ExitStack() as databases:
        try:
            postgres_url = databases.enter_context(scratch_database("bench"))
            # a Redis database of its own: both podflows use the same queue names
            pg_options = {**options, "redis_url": f"{redis.url.rsplit('/', 1)[0]}/{_DB['pipeline_postgres']}"}
            systems.insert(1, PodflowSystem(**pg_options, store_url=postgres_url))
            wide_url = databases.enter_context(scratch_database("benchwide"))
            wide = {**options, "processes": WIDE_PROCESSES, "tag": "-postgres-wide",
                    "redis_url": f"{redis.url.rsplit('/', 1)[0]}/{_DB['pipeline_postgres_wide']}"}
            systems.insert(2, PodflowSystem(**wide, store_url=wide_url))
        except RuntimeError as exc:  # no server answers
            report.notes.append(f"podflow on PostgreSQL was not measured: {exc}")
        _run_pipeline(scale, systems, podflow_system, dramatiq_system, redis, selected, profile, work_dir, report)


def _run_pipeline(scale: Scale, systems: list[System], podflow_system: PodflowSystem,
                  dramatiq_system: DramatiqSystem, redis: RedisServer, selected: set[str], profile: bool,
                  work_dir: Path, report: Report) -> None:
    options = {"work_dir": work_dir, "processes": scale.processes, "threads": scale.threads,
               "redis_url": podflow_system.settings.broker_url}
    if celery_available():
        systems.append(CelerySystem(**options))
        systems.append(CelerySystem(**options, style="module"))
    else:
        report.notes.append("Celery is not installed (the `bench` extra): the Celery comparison was skipped.")
    with contextlib.ExitStack() as stack:
        for system in systems:
            _log(f"starting {system.name} workers")
            stack.callback(system.stop)
            system.start()
        assert redis.proc is not None
        redis_pid = redis.proc.pid
        if "throughput" in selected:
            from .profile import measure_statements

            _run_step(report, "Store statements", lambda: measure_statements(work_dir))
            _run_step(report, "Pipeline throughput",
                      lambda: (*throughput.measure(systems, scale, _log, redis_pid=redis_pid), []))
        if "latency" in selected:
            _run_step(report, "Scheduling latency",
                      lambda: (*latency.measure([podflow_system, dramatiq_system], scale, _log), []))
        if profile:
            from .profile import profile_podflow

            def profiled() -> tuple[list[Row], dict[str, Any], list[str]]:
                found = profile_podflow(podflow_system, scale, work_dir, _log)
                return [], {"profile": found}, found["notes"]

            _run_step(report, "Profile", profiled)
            from .syscalls import count_syscalls

            _run_step(report, "System calls per job",
                      lambda: count_syscalls([podflow_system, dramatiq_system], scale.syscall_runs, work_dir, _log))


def _missed_notes(rows: list[Row]) -> list[str]:
    """One line per missed target, saying by how much."""
    notes = []
    for row in rows:
        if row.met is not False or row.figure is None:
            continue
        bound = float(row.target.split()[1])
        median = row.figure.median
        how = (f"{median / bound:.0%} of the minimum" if row.target.startswith(">") else
               f"{median / bound:.1f}x the maximum")
        notes.append(f"Target MISSED: {row.benchmark}, {row.figure_name}: {median:.3g} {row.unit} "
                     f"against {row.target} ({how}).")
    return notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default=os.environ.get("BENCH_SCALE") or "full")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help=f"comma-separated: {', '.join(BENCHMARKS)}")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--profile", action=argparse.BooleanOptionalAction, default=None,
                        help="profile podflow's workers and submitter (default: on at full scale)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (stores, worker logs)")
    parser.add_argument("--api-app", default=submit.APP, help=f"the app the submit benchmark serves ({submit.APP})")
    args = parser.parse_args(argv)
    selected = {name.strip() for name in args.only.split(",") if name.strip()}
    unknown = selected - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    scale = SCALES[args.scale]
    profile = scale.profile if args.profile is None else args.profile

    report = Report(scale=scale.name, machine=describe_machine(), notes=list(METHOD_NOTES))
    (ROOT / "var").mkdir(exist_ok=True)
    work_dir = Path(tempfile.mkdtemp(prefix="bench-", dir=ROOT / "var"))
    _log(f"scale {scale.name}; work directory {work_dir}")
    began = time.monotonic()
    redis = RedisServer(work_dir / "redis").start()
    base_url = redis.url.rsplit("/", 1)[0]
    try:
        if selected & {"throughput", "latency"}:
            try:
                _pipeline(scale, work_dir, redis, _DB["pipeline"], selected, profile, report)
            except Exception as exc:  # the workers would not start or stop
                report.rows.append(_failure("Pipeline throughput", exc))
        if "sweep" in selected:
            _run_step(report, "Sweep cost",
                      lambda: (*sweep.measure(scale, work_dir, f"{base_url}/{_DB['sweep']}", _log), []))
        if "sweep" in selected:
            _run_step(report, "Sweep cost (PostgreSQL)",
                      lambda: (*sweep_postgres.measure(scale, f"{base_url}/{_DB['sweep']}", _log), []))
        if "bigstore" in selected:
            _run_step(report, "Big store", lambda: (*bigstore.measure(scale, work_dir, _log), []))
        if "submit" in selected:
            submit_url = f"{base_url}/{_DB['submit']}"
            _run_step(report, "Submit path",
                      lambda: (*submit.measure(scale, work_dir, submit_url, _log, app=args.api_app), []))
        if "providers" in selected:
            providers_url = f"{base_url}/{_DB['providers']}"
            _run_step(report, "Provider overhead",
                      lambda: (*providers.measure(scale, work_dir, providers_url, _log), []))
        if "fleet" in selected:
            fleet_url = f"{base_url}/{_DB['fleet']}"
            _run_step(report, fleet.BENCH, lambda: (*fleet.measure(scale, work_dir, fleet_url, _log), []))
        if "watchers" in selected:
            watch_url = f"{base_url}/{_DB['watchers']}"
            _run_step(report, watchers.BENCH, lambda: (*watchers.measure(scale, work_dir, watch_url, _log), []))
        if "recovery" in selected:  # on a redis-server of its own: it restarts it
            _run_step(report, "Recovery", lambda: (*recovery.measure(scale, work_dir / "recovery", _log), []))
    finally:
        redis.stop()
        if not args.keep:
            shutil.rmtree(work_dir, ignore_errors=True)
    report.notes += _missed_notes(report.rows)
    report.machine["load average at end"] = load_average()
    report.machine["pressure at end (PSI avg60)"] = pressure()
    report.machine["duration"] = f"{time.monotonic() - began:.0f} s"
    stem = f"{scale.name}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    json_path, md_path = report.write(args.out, stem)
    print(report.table())
    shown = json_path.relative_to(ROOT) if json_path.is_relative_to(ROOT) else json_path
    print(f"\nwritten: {shown} and {md_path.name}" + (f"; work directory kept: {work_dir}" * args.keep))
    return 1 if any(row.error for row in report.rows) else 0


if __name__ == "__main__":
    sys.exit(main())
