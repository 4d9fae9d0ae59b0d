"""The three job systems under test, each as real worker processes on the private Redis.

Every system offers the same three things to the benchmarks:

- ``run_batch(n)``: dispatch ``n`` no-op jobs one after another from this
  process and wait for all to complete; returns the seconds from just before
  the first dispatch to the last completion, as the completing side recorded it;
- ``latency_once()``: dispatch one job to idle workers and return the seconds
  from dispatch to the moment the job started;
- ``pids()``: the worker processes (for RSS).

How completion is known, per system:

==========  =====================================================================
podflow     ``podflow.lifecycle.submit`` into the SQLite store (its sends confirmed
            in batches, as the API does), executed by
            ``podflow worker`` (``dramatiq podflow.actors``); done = SUCCESS in the
            store; last completion = the largest ``finished_at`` of the batch;
            latency = ``started_at - created_at`` of the run
Dramatiq    ``actor.send``-equivalent ``broker.enqueue`` to ``dramatiq
            bench.dramatiq_app:broker``; the task ``INCR``\\s a Redis counter and the last
            one records the time (:mod:`bench.completions`)
Celery      ``task.apply_async`` to two ``celery worker -P threads`` instances;
            completion as for Dramatiq
==========  =====================================================================
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Protocol

from podflow.cli.worker import command as podflow_worker_command
from podflow.dispatch.outbox import EnqueueMarks
from podflow.dispatch.queue import QueueDispatcher
from podflow.lifecycle import submit
from podflow.settings import Settings, load_settings
from podflow.store import Store, open_store
from podflow.timeutil import utcnow
from podflow.worker.broker import build_broker
from tests.execution import WorkerProcess, request, seed

from . import completions

__all__ = [
    "BenchError",
    "CelerySystem",
    "DramatiqSystem",
    "PodflowSystem",
    "System",
    "celery_available",
    "clean_env",
]

_POLL_S = 0.02


class BenchError(RuntimeError):
    """The harness could not measure something (a job failed, a worker died, a timeout)."""


class System(Protocol):
    name: str
    #: the last batch's dispatching: wall seconds until the last send, and this thread's CPU seconds for it
    dispatch_s: float
    dispatch_cpu_s: float

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def pids(self) -> list[int]: ...

    def run_batch(self, n: int) -> float: ...


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without podflow's settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PODFLOW_", "MONGODB_", "dramatiq_"))}
    env.update(extra, PYTHONUNBUFFERED="1")
    return env


def _wait(probe: Callable[[], Any], *, timeout_s: float, what: str, alive: Callable[[], bool]) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if not alive():
            raise BenchError(f"a worker died while waiting for {what}")
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(_POLL_S)


def _batch_timeout(n: int) -> float:
    return 60 + n / 20  # far beyond any sane rate; only a stuck run hits it


class _Workers:
    """Worker process groups (real subprocesses, in their own sessions)."""

    def __init__(self) -> None:
        self.procs: list[WorkerProcess] = []

    def spawn(self, argv: list[str], env: dict[str, str], log: Path, ready_text: str, processes: int = 1) -> None:
        """Start ``argv`` and wait until each of its ``processes`` logged ``ready_text``."""
        proc = WorkerProcess(env, log, argv, ready_text=ready_text).start()
        self.procs.append(proc)
        _wait(lambda: proc.log().count(ready_text) >= processes, timeout_s=30, what=f"{processes} ready worker(s)",
              alive=self.alive)

    def pids(self) -> list[int]:
        return [p.proc.pid for p in self.procs if p.proc is not None]

    def alive(self) -> bool:
        return all(p.proc is not None and p.proc.poll() is None for p in self.procs)

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop(timeout=20)
        self.procs.clear()


class _WorkerSystem:
    """What every system shares: its worker processes and the last batch's dispatch figures."""

    name: str
    dispatch_s = dispatch_cpu_s = 0.0

    def __init__(self) -> None:
        self.workers = _Workers()

    def stop(self) -> None:
        self.workers.stop()

    def pids(self) -> list[int]:
        return self.workers.pids()


class _CountedSystem(_WorkerSystem):
    """A system whose no-op tasks report through :mod:`bench.completions`."""

    def _send(self, n: int) -> None:
        """Send ``n`` no-op tasks, each told the batch size ``n``."""
        raise NotImplementedError

    def run_batch(self, n: int) -> float:
        r = completions.client()
        completions.reset(r)
        started, cpu = time.time(), time.thread_time()
        self._send(n)
        self.dispatch_s, self.dispatch_cpu_s = time.time() - started, time.thread_time() - cpu

        def done() -> float | None:
            count, finished = completions.finished_at(r)
            if count > n:
                raise BenchError(f"{count} completions counted for {n} {self.name} tasks: a task ran twice")
            return finished

        finished = _wait(done, timeout_s=_batch_timeout(n), what=f"{n} {self.name} tasks", alive=self.workers.alive)
        return float(finished) - started


class PodflowSystem(_WorkerSystem):
    """podflow: submit into SQLite (or the store at ``store_url``), ``podflow worker``
    processes execute ``bench.generators:noop``."""

    name = "podflow"

    def __init__(
        self,
        *,
        work_dir: Path,
        redis_url: str,
        processes: int,
        threads: int,
        store_url: str = "",
        generator: str = "bench.generators:noop",
        tag: str = "",
        **env: str,
    ) -> None:
        tag = tag or ("-postgres" if store_url else "")
        self.processes = processes
        self.data_dir = work_dir / f"podflow{tag}"
        if store_url:
            self.name = "podflow (PostgreSQL)" if tag == "-postgres" else f"podflow (PostgreSQL, {processes} processes)"
        self.settings: Settings = load_settings(
            env_file=None,
            data_dir=self.data_dir,
            broker_url=redis_url,
            store_url=store_url,
            generator=generator,
            worker_processes=processes,
            concurrency=threads,
        )
        self.env = clean_env(
            PODFLOW_DATA_DIR=str(self.data_dir),
            PODFLOW_BROKER_URL=redis_url,
            PODFLOW_STORE_URL=store_url,
            PODFLOW_GENERATOR=self.settings.generator,
            PODFLOW_WORKER_PROCESSES=str(processes),
            PODFLOW_CONCURRENCY=str(threads),
            **env,
        )
        super().__init__()
        self.log = work_dir / f"podflow{tag}-worker.log"
        self.store: Store | None = None
        self.dispatcher: QueueDispatcher | None = None
        #: the sends' confirmations, in batches, as the API writes them
        self.marks: EnqueueMarks | None = None
        self._reader: Any = None

    def start(self) -> None:
        self.store = open_store(self.settings)
        seed(self.store)
        self.dispatcher = QueueDispatcher(broker=build_broker(self.settings))
        self.marks = EnqueueMarks(self.store)
        # exactly what `podflow worker` execs, with these settings
        argv = podflow_worker_command(self.settings)
        self.workers.spawn(argv, self.env, self.log, "ready for action", self.settings.worker_processes)
        if self.settings.store_kind == "postgres":
            import psycopg

            self._reader = psycopg.connect(self.settings.store_url, autocommit=True)
        else:
            self._reader = sqlite3.connect(self.settings.sqlite_path, isolation_level=None)

    #: the completion and latency reads, per store: (status, count, last finished ms) and
    #: (status, created ms, started ms)
    _READS: ClassVar[dict[str, tuple[str, str]]] = {
        "sqlite": (
            "SELECT status, count(*), max(finished_at) FROM runs WHERE created_at >= ? GROUP BY status",
            "SELECT status, created_at, started_at FROM runs WHERE run_id = ?",
        ),
        "postgres": (
            "SELECT status, count(*), (extract(epoch FROM max(finished_at)) * 1000)::bigint FROM runs"
            " WHERE created_at >= to_timestamp(%s / 1000.0) GROUP BY status",
            "SELECT status, (extract(epoch FROM created_at) * 1000)::bigint,"
            " (extract(epoch FROM started_at) * 1000)::bigint FROM runs WHERE run_id = %s",
        ),
    }

    def _read(self, which: int, param: Any) -> list[tuple[Any, ...]]:
        kind = "postgres" if self.settings.store_kind == "postgres" else "sqlite"
        return list(self._reader.execute(self._READS[kind][which], (param,)).fetchall())

    def stop(self) -> None:
        super().stop()
        if self._reader is not None:
            self._reader.close()
        if self.marks is not None:
            self.marks.close()
        if self.store is not None:
            self.store.close()

    def submit_one(self) -> str:
        """Submit one run (enqueued); its run_id."""
        assert self.store is not None and self.dispatcher is not None
        submission = submit(self.store, self.dispatcher, request("noop"), now=utcnow(), marks=self.marks)
        if not submission.enqueued:
            raise BenchError(f"podflow could not enqueue: {submission.error}")
        return submission.run.run_id

    def run_batch(self, n: int) -> float:
        assert self._reader is not None
        started, cpu = time.time(), time.thread_time()
        since_ms = int(started * 1000) - 1  # created_at is truncated to the millisecond
        for _ in range(n):
            self.submit_one()
        self.dispatch_s, self.dispatch_cpu_s = time.time() - started, time.thread_time() - cpu

        def done() -> float | None:
            assert self._reader is not None
            rows = self._read(0, since_ms)
            by_status = {status: (count, last) for status, count, last in rows}
            failed = sum(count for status, (count, _) in by_status.items() if status in ("FAILURE", "REVOKED"))
            if failed:
                raise BenchError(f"{failed} podflow run(s) did not succeed; see {self.log}")
            count, last = by_status.get("SUCCESS", (0, None))
            return last / 1000 if count >= n else None

        finished = _wait(done, timeout_s=_batch_timeout(n), what=f"{n} podflow runs", alive=self.workers.alive)
        return float(finished) - started

    def latency_once(self) -> float:
        assert self._reader is not None
        run_id = self.submit_one()

        def started() -> tuple[int, int] | None:
            assert self._reader is not None
            row = self._read(1, run_id)[0]
            if row[0] in ("FAILURE", "REVOKED"):
                raise BenchError(f"podflow run {run_id} ended {row[0]}; see {self.log}")
            return (row[1], row[2]) if row[0] == "SUCCESS" else None

        created_ms, started_ms = _wait(started, timeout_s=30, what=f"run {run_id}", alive=self.workers.alive)
        return (started_ms - created_ms) / 1000


class DramatiqSystem(_CountedSystem):
    """Bare Dramatiq: ``dramatiq bench.dramatiq_app:broker`` with Dramatiq's defaults."""

    name = "Dramatiq"

    def __init__(self, *, work_dir: Path, redis_url: str, processes: int, threads: int) -> None:
        super().__init__()
        os.environ["BENCH_REDIS_URL"] = redis_url  # read by bench.dramatiq_app and bench.completions
        self.argv = [
            sys.executable, "-m", "dramatiq", "bench.dramatiq_app:broker",
            "--processes", str(processes), "--threads", str(threads), "--queues", "bench",
        ]
        self.env = clean_env(BENCH_REDIS_URL=redis_url)
        self.processes = processes
        self.log = work_dir / "dramatiq-worker.log"

    def start(self) -> None:
        self.workers.spawn(self.argv, self.env, self.log, "ready for action", self.processes)

    def _send(self, n: int) -> None:
        from .dramatiq_app import broker, noop

        for _ in range(n):
            broker.enqueue(noop.message(n))

    def latency_once(self) -> float:
        from .dramatiq_app import broker, stamp

        r = completions.client()
        key = f"bench:stamp:{uuid.uuid4().hex}"
        sent = time.time()
        broker.enqueue(stamp.message(key))
        started = _wait(lambda: r.get(key), timeout_s=30, what="a Dramatiq probe", alive=self.workers.alive)
        return float(started) - sent


def celery_available() -> bool:
    """Whether Celery (the ``bench`` extra) is installed in this environment."""
    try:
        import celery  # noqa: F401
    except ImportError:
        return False
    return shutil.which("celery", path=str(Path(sys.executable).parent)) is not None


class CelerySystem(_CountedSystem):
    """Celery 5: ``processes`` instances of ``celery worker -P threads -c threads``.

    ``style`` picks the configuration in :mod:`bench.celery_app`: ``bare`` (Celery
    at its leanest) or ``module`` (as the module podflow replaces ran it).
    """

    def __init__(self, *, work_dir: Path, redis_url: str, processes: int, threads: int, style: str = "bare") -> None:
        super().__init__()
        os.environ["BENCH_REDIS_URL"] = redis_url
        self.processes = processes
        self.threads = threads
        self.style = style
        self.name = "Celery" if style == "bare" else "Celery (old module's settings)"
        self.env = clean_env(BENCH_REDIS_URL=redis_url)
        self.work_dir = work_dir

    def start(self) -> None:
        from .celery_app import MODULE_QUEUE, QUEUE

        celery = str(Path(sys.executable).parent / "celery")
        app, queue = ("app", QUEUE) if self.style == "bare" else ("module_app", MODULE_QUEUE)
        for i in range(self.processes):
            argv = [
                celery, "-A", f"bench.celery_app:{app}", "worker", "-P", "threads", "-c", str(self.threads),
                "-n", f"bench-{self.style}{i}@%h", "-Q", queue, "-l", "INFO",
                # cluster chatter that a single-host benchmark does not need
                "--without-gossip", "--without-mingle", "--without-heartbeat",
            ]
            self.workers.spawn(argv, self.env, self.work_dir / f"celery-{self.style}-worker-{i}.log", " ready.")

    def _send(self, n: int) -> None:
        from .celery_app import module_noop, noop

        task = noop if self.style == "bare" else module_noop
        for _ in range(n):
            task.apply_async(args=(n,))
