"""Benchmark: how long a lost run takes to be sent again, and to run again, in a backlog.

Real processes on a redis-server of the benchmark's own (the second scenario
restarts it): ``dramatiq podflow.actors`` workers and ``podflow scheduler``, with
PODFLOW_HEARTBEAT_TIMEOUT and PODFLOW_SWEEP_INTERVAL shortened (the scale says
how much) so that a repetition takes seconds, not minutes; the figures are also
given as multiples of those settings, which is how they scale to production.

- **A worker SIGKILLed with a backlog**: a first worker (2 threads) holds two
  long runs; a second one works through a backlog of short runs; the first is
  killed. Per killed run: kill → handed on (released by the sweep, or claimed by
  its own message, which the sweep's run of Dramatiq's maintenance put back at
  the end of the queue, once its heartbeat is stale), and kill → STARTED again
  (after the runs queued ahead of it).
- **Redis restarted empty under load**: runs are submitted at twice what one
  worker (2 threads) does, so a backlog builds; Redis is restarted without
  persistence. Per run whose message was lost: Redis back → re-sent by the
  sweep (the history's ``re-sent`` entry), and Redis back → STARTED again.

Each figure is the median over the lost runs of one repetition, then the
median, min and max over repetitions.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from podflow.dispatch.queue import QueueDispatcher
from podflow.lifecycle import submit
from podflow.models import Run
from podflow.settings import Settings, load_settings
from podflow.states import RunStatus
from podflow.store.sqlite import SqliteStore
from podflow.sweep import RESENT_REASON
from podflow.timeutil import utcnow
from podflow.worker.broker import build_broker, close_broker
from tests.execution import WorkerProcess, request, seed, wait_for, worker_env
from tests.servers import RedisServer

from .report import Row
from .scale import Scale
from .stats import Figure

__all__ = ["measure"]

_THREADS = 2
#: the history reasons that record a killed worker's run being handed on
_LOSS = ("lost: heartbeat stale", "reclaimed: heartbeat stale")


class _Stack:
    """Workers, the scheduler and a store on a private Redis, for one repetition."""

    def __init__(self, work_dir: Path, redis: RedisServer, scale: Scale) -> None:
        self.work_dir = work_dir
        self.redis = redis
        self.timeout_s = scale.recovery_heartbeat_timeout_s
        self.interval_s = scale.recovery_sweep_interval_s
        env = {
            "PODFLOW_HEARTBEAT_INTERVAL": f"{self.timeout_s / 10:g}",
            "PODFLOW_HEARTBEAT_TIMEOUT": f"{self.timeout_s:g}",
            "PODFLOW_SWEEP_INTERVAL": f"{self.interval_s:g}",
            "PODFLOW_SOFT_TIME_LIMIT": "600",
            "PODFLOW_TIME_LIMIT": "1200",
        }
        self.env = worker_env(data_dir=work_dir, broker_url=redis.url, **env)
        self.settings: Settings = load_settings(
            env_file=None, broker_url=redis.url, data_dir=work_dir, heartbeat_interval_s=self.timeout_s / 10,
            heartbeat_timeout_s=self.timeout_s, sweep_interval_s=self.interval_s,
        )  # fmt: skip
        self.store = seed(SqliteStore(work_dir / "podflow.sqlite3", heartbeat_timeout_s=self.timeout_s))
        self.dispatcher = QueueDispatcher(broker=build_broker(self.settings, role="bench"))
        self.processes: list[WorkerProcess] = []

    def worker(self, name: str) -> WorkerProcess:
        argv = [str(Path(sys.executable).parent / "dramatiq"), "podflow.actors", "--processes", "1",
                "--threads", str(_THREADS)]  # fmt: skip
        process = WorkerProcess(self.env, self.work_dir / f"{name}.log", argv).start()
        self.processes.append(process)
        return process

    def scheduler(self) -> WorkerProcess:
        argv = [sys.executable, "-m", "scheduler"]
        process = WorkerProcess(self.env, self.work_dir / "scheduler.log", argv).start(ready=False)
        self.processes.append(process)
        return process

    def submit(self, name: str) -> Run:
        return submit(self.store, self.dispatcher, request(name), now=utcnow()).run

    def finished(self, runs: list[Run], timeout_s: float) -> list[Run]:
        def done() -> list[Run] | None:
            now = [self.store.get_run(run.run_id) for run in runs]
            return now if all(r is not None and r.is_terminal for r in now) else None  # type: ignore[return-value]

        return wait_for(done, timeout=timeout_s, interval=0.2, what="every run to finish")

    def close(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        close_broker(self.dispatcher.broker)
        self.store.close()


def _started_again(run: Run) -> float:
    """When the run's last attempt was claimed (its last STARTED entry)."""
    return max(h.at for h in run.history if h.status is RunStatus.STARTED and h.attempt == run.attempt).timestamp()


def _killed_worker(scale: Scale, work_dir: Path, log: Callable[[str], None]) -> dict[str, float]:
    redis = RedisServer(work_dir / "redis").start()
    stack = _Stack(work_dir, redis, scale)
    try:
        first = stack.worker("first")
        held = [stack.submit("slow:600,0.5") for _ in range(_THREADS)]
        wait_for(lambda: all(stack.store.get_run(r.run_id).attempt == 1 for r in held), what="both held runs")  # type: ignore[union-attr]
        stack.worker("second")
        stack.scheduler()
        short_s = 0.5
        backlog = [stack.submit(f"slow:{short_s:g}") for _ in range(int(scale.recovery_backlog_s * _THREADS / short_s))]
        time.sleep(1.0)  # the second worker is busy with the backlog
        first.kill()
        killed_at = time.time()
        done = stack.finished(held + backlog, timeout_s=scale.recovery_backlog_s + 10 * stack.timeout_s + 60)
    finally:
        stack.close()
        redis.stop()
    lost = done[: len(held)]
    assert all(r.status is RunStatus.SUCCESS and r.attempt == 2 for r in lost), [r.history for r in lost]
    # the loss is recorded once: released by the sweep, or claimed by its own message once stale
    handed_on = [next(h.at for h in r.history if h.reason in _LOSS).timestamp() for r in lost]
    figures = {
        "handed_on_s": statistics.median(t - killed_at for t in handed_on),
        "started_s": statistics.median(_started_again(r) - killed_at for r in lost),
        "released": float(sum("lost: heartbeat stale" in [h.reason for h in r.history] for r in lost)),
        "resent": float(sum(RESENT_REASON in [h.reason for h in r.history] for r in lost)),
    }
    log(f"recovery: SIGKILL: handed on {figures['handed_on_s']:.1f} s ({figures['released']:g} of {len(lost)} "
        f"released by the sweep), started again {figures['started_s']:.1f} s after the kill")  # fmt: skip
    return figures


def _restarted_redis(scale: Scale, work_dir: Path, log: Callable[[str], None]) -> dict[str, float]:
    redis = RedisServer(work_dir / "redis").start()
    stack = _Stack(work_dir, redis, scale)
    submitted: list[Run] = []
    stop = threading.Event()
    run_s = 0.5
    gap_s = run_s / _THREADS / 2  # twice what the worker does: a backlog builds

    def submitter() -> None:
        while not stop.wait(gap_s):
            submitted.append(stack.submit(f"slow:{run_s:g}"))

    try:
        stack.worker("worker")
        stack.scheduler()
        thread = threading.Thread(target=submitter, daemon=True)
        thread.start()
        time.sleep(scale.recovery_backlog_s / 2)
        redis.stop()
        redis.start()
        back_at = time.time()
        time.sleep(scale.recovery_backlog_s / 2)  # new runs keep arriving
        stop.set()
        thread.join(10)
        done = stack.finished(submitted, timeout_s=4 * scale.recovery_backlog_s + 10 * stack.timeout_s + 60)
    finally:
        stop.set()
        stack.close()
        redis.stop()
    assert all(r.status is RunStatus.SUCCESS for r in done), [r.error for r in done if r.error]
    lost = [r for r in done if RESENT_REASON in [h.reason for h in r.history]]
    if not lost:
        raise RuntimeError("no run lost its message: no backlog when Redis restarted")
    resent = [next(h.at for h in r.history if h.reason == RESENT_REASON).timestamp() for r in lost]
    figures = {
        "resent_s": statistics.median(t - back_at for t in resent),
        "started_s": statistics.median(_started_again(r) - back_at for r in lost),
        "lost": float(len(lost)),
    }
    log(f"recovery: Redis restart: {len(lost)} lost; re-sent {figures['resent_s']:.1f} s, started again "
        f"{figures['started_s']:.1f} s after Redis came back")  # fmt: skip
    return figures


def measure(scale: Scale, work_dir: Path, log: Callable[[str], None]) -> tuple[list[Row], dict[str, object]]:
    timeout_s, interval_s = scale.recovery_heartbeat_timeout_s, scale.recovery_sweep_interval_s
    killed = [_killed_worker(scale, work_dir / f"kill-{rep}", log) for rep in range(scale.reps)]
    restarted = [_restarted_redis(scale, work_dir / f"restart-{rep}", log) for rep in range(scale.reps)]
    setup = f"PODFLOW_HEARTBEAT_TIMEOUT={timeout_s:g} s, PODFLOW_SWEEP_INTERVAL={interval_s:g} s"
    resend_bound = timeout_s + interval_s
    rows = [
        Row("Recovery", f"SIGKILLed worker, {scale.recovery_backlog_s:g} s backlog: kill -> handed on ({setup})", "s",
            Figure.of([k["handed_on_s"] for k in killed]), f"<= {resend_bound:g}",
            met=statistics.median(k["handed_on_s"] for k in killed) <= resend_bound,
            note=f"{sum(k['released'] for k in killed):g} of {2 * len(killed)} released by the sweep (the rest "
            "reclaimed by their own message once stale); " + ("none re-sent" if not any(k["resent"] for k in killed)
                                                              else "some re-sent")),
        Row("Recovery", "SIGKILLed worker: kill -> STARTED again (behind the backlog)", "s",
            Figure.of([k["started_s"] for k in killed])),
        Row("Recovery", f"Redis restarted empty under load: back -> re-sent ({setup})", "s",
            Figure.of([r["resent_s"] for r in restarted]), f"<= {timeout_s + 2 * interval_s:g}",
            met=statistics.median(r["resent_s"] for r in restarted) <= timeout_s + 2 * interval_s,
            note=f"{statistics.median(r['lost'] for r in restarted):g} runs lost per repetition (median)"),
        Row("Recovery", "Redis restarted empty under load: back -> STARTED again (behind the backlog)", "s",
            Figure.of([r["started_s"] for r in restarted])),
    ]  # fmt: skip
    return rows, {"recovery": {"killed_worker": killed, "restarted_redis": restarted, "heartbeat_timeout_s": timeout_s,
                               "sweep_interval_s": interval_s}}  # fmt: skip
