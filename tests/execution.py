"""Helpers for execution tests: a seeded store, polling, and real worker subprocesses."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from podflow.models import EpisodeProfile, Run, RunRef, RunRequest, Source, Speaker, SpeakerProfile
from podflow.store.base import Store
from tests.conftest import T0

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")

EPISODE = EpisodeProfile(name="tech_news", num_segments=2, default_briefing="Be brief.")
SPEAKERS = SpeakerProfile(
    name="dual_host",
    speakers=[
        Speaker(name="Ada", voice="en-us", personality="curious"),
        Speaker(name="Linus", voice="en-gb", personality="dry"),
    ],
)
SOURCE_TEXT = "# Notes\nPodcasts are long running jobs."
SOURCE = Source(
    source_id="src_" + "a" * 24,
    title="notes",
    filename="notes.md",
    content_type="text/markdown",
    byte_size=len(SOURCE_TEXT.encode()),
    sha256=hashlib.sha256(SOURCE_TEXT.encode()).hexdigest(),
    text=SOURCE_TEXT,
    created_at=T0,
)


def seed(store: Store) -> Store:
    """Give ``store`` the profiles and the source :func:`request` names."""
    store.seed_profiles([EPISODE, SPEAKERS], now=T0)
    store.add_source(SOURCE)
    return store


def request(episode_name: str = "noop") -> RunRequest:
    """A valid request; with ``tests.generators:by_name`` the name picks the behaviour."""
    return RunRequest(
        episode_profile=EPISODE.name,
        speaker_profile=SPEAKERS.name,
        episode_name=episode_name,
        source_ids=[SOURCE.source_id],
    )


def wait_for(probe: Callable[[], T | None], *, timeout: float = 15.0, interval: float = 0.05, what: str = "") -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or probe}")
        time.sleep(interval)


def finished(store: Store, run_id: str, *, timeout: float = 15.0) -> Run:
    """Wait until the run is terminal; the run."""
    return wait_for(
        lambda: (run := store.get_run(run_id)) is not None and run.is_terminal and run,
        timeout=timeout,
        what=f"{run_id} to finish",
    )


def worker_env(*, data_dir: Path, broker_url: str, **settings: str) -> dict[str, str]:
    """The environment of a worker subprocess: short time settings, test generators."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PODFLOW_", "MONGODB_"))}
    env.update(
        {
            "PODFLOW_DATA_DIR": str(data_dir),
            "PODFLOW_BROKER_URL": broker_url,
            "PODFLOW_GENERATOR": "tests.generators:by_name",
            "PODFLOW_HEARTBEAT_INTERVAL": "0.2",
            "PODFLOW_HEARTBEAT_TIMEOUT": "1.5",
            "PODFLOW_SOFT_TIME_LIMIT": "20",
            "PODFLOW_TIME_LIMIT": "60",
            "PODFLOW_RETRY_BACKOFF": "0.1",
            "PODFLOW_RETRY_BACKOFF_MAX": "0.5",
            "PODFLOW_TEST_EVENTS": str(data_dir / "events.jsonl"),
            # Dramatiq's idle poll (ms): delayed retries become due sooner
            "dramatiq_worker_timeout": "100",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(settings)
    return env


class WorkerProcess:
    """``dramatiq podflow.actors`` (or any command) in its own process group, logging to a file.

    ``ready_text``: the log line that says the process is ready (Dramatiq's by default).
    """

    def __init__(
        self,
        env: Mapping[str, str],
        log_path: Path,
        argv: list[str] | None = None,
        *,
        ready_text: str = "ready for action",
    ) -> None:
        self.argv = argv or [
            str(Path(sys.executable).parent / "dramatiq"),
            "podflow.actors",
            "--processes",
            "1",
            "--threads",
            "2",
        ]
        self.env = dict(env)
        self.log_path = log_path
        self.ready_text = ready_text
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, ready: bool = True) -> WorkerProcess:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        if ready:
            wait_for(lambda: self.ready_text in self.log() or self._died(), timeout=20, what="worker boot")
            assert not self._died(), f"worker exited early:\n{self.log()}"
        return self

    def _died(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL the whole process group: the worker dies mid-run, like a crashed host."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    @contextlib.contextmanager
    def frozen(self, store_path: Path | None = None) -> Iterator[None]:
        """The whole process group stopped (SIGSTOP) for the block, continued (SIGCONT)
        after. With ``store_path`` (a SQLite store's file), never stopped while it holds
        that store's write lock, which the block's writes would then wait for until the
        end of the block."""
        assert self.proc is not None
        pgid = self.proc.pid
        fd = os.open(f"{store_path}.lock", os.O_RDWR | os.O_CREAT, 0o660) if store_path else None
        try:
            while True:
                os.killpg(pgid, signal.SIGSTOP)
                wait_for(lambda: _group_stopped(pgid), timeout=5, what="the workers to stop")
                if fd is None:
                    break
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:  # stopped inside a write: let it finish, and stop it again
                    os.killpg(pgid, signal.SIGCONT)
                    time.sleep(0.02)
                    continue
                fcntl.flock(fd, fcntl.LOCK_UN)
                break
            try:
                yield
            finally:
                os.killpg(pgid, signal.SIGCONT)
        finally:
            if fd is not None:
                os.close(fd)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM to the main process only (like systemd's ``KillMode=mixed``:
        Dramatiq forwards it, and a worker process that gets a second SIGTERM
        exits at once), then SIGKILL to the group after ``timeout``. Returns
        the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
            except ProcessLookupError:
                pass
        with contextlib.suppress(ProcessLookupError):  # children left in the group (never, normally) go too
            os.killpg(self.proc.pid, signal.SIGKILL)
        return self.proc.returncode


def _group_stopped(pgid: int) -> bool:
    """Whether every process of the group ``pgid`` is stopped (state T in /proc)."""
    states = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rpartition(")")[2].split()
            if int(fields[2]) == pgid:  # state, ppid, pgrp, ...
                states.append(fields[0])
    return bool(states) and all(state in "Tt" for state in states)


@contextlib.contextmanager
def one_thread_worker(data_dir: Path, broker_url: str) -> Iterator[tuple[Store, Any, WorkerProcess]]:
    """A seeded SQLite store, a QueueDispatcher and one real worker process with one
    thread on ``broker_url``: (store, dispatcher, worker); all closed after."""
    from podflow.dispatch.queue import QueueDispatcher
    from podflow.settings import load_settings
    from podflow.store.sqlite import SqliteStore
    from podflow.worker.broker import build_broker, close_broker

    store = seed(SqliteStore(data_dir / "podflow.sqlite3"))
    broker = build_broker(load_settings(env_file=None, broker_url=broker_url, data_dir=data_dir), role="test")
    worker = WorkerProcess(worker_env(data_dir=data_dir, broker_url=broker_url), data_dir / "worker.log")
    worker.argv[-1] = "1"  # --threads 1
    try:
        worker.start()
        yield store, QueueDispatcher(broker=broker), worker
    finally:
        worker.stop()
        close_broker(broker)
        store.close()


class FakeDispatcher:
    """A dispatcher that records what it sends; ``down`` makes sends and look-ups fail.

    ``held``: the message ids its broker holds (None: it cannot tell, as RabbitMQ);
    what it sends is held from then on.
    """

    def __init__(self, *, mode: str = "queue", durable: bool = True, store: Store | None = None) -> None:
        self.mode = mode
        self.durable = durable
        self.down = False
        self.held: set[str] | None = set()
        self.sent: list[tuple[str, str | None]] = []
        self.store_ids: list[str | None] = []
        #: (priority, start_at) of each send
        self.timings: list[tuple[str, Any]] = []
        self.requeues = 0
        self._store = store
        self._ids = 0
        #: the run as stored at the moment it was sent (to check the outbox came first)
        self.seen: list[object] = []

    def _check(self, action: str) -> None:
        from podflow.errors import BrokerUnavailable

        if self.down:
            raise BrokerUnavailable(f"{action}: broker unreachable: connection refused")

    def missing(self, refs: Sequence[RunRef]) -> set[str] | None:
        self._check("look up messages")
        if self.held is None:
            return None
        return {ref.run_id for ref in refs if ref.current_message_id not in self.held}

    def requeue_orphans(self) -> None:
        self._check("requeue")
        self.requeues += 1

    def new_message_id(self) -> str | None:
        if self.mode == "thread":
            return None
        self._ids += 1
        return f"msg-{self._ids}"

    def send(
        self,
        run_id: str,
        message_id: str | None,
        *,
        store_id: str | None = None,
        priority: str = "normal",
        start_at: Any = None,
        now: Any = None,
    ) -> None:
        if self._store is not None:
            self.seen.append(self._store.get_run(run_id))
        self._check("enqueue")
        self.sent.append((run_id, message_id))
        self.store_ids.append(store_id)
        self.timings.append((priority, start_at))
        if self.held is not None and message_id is not None:
            self.held.add(message_id)
