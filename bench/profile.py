"""Where podflow's time goes (``python -m bench --profile``).

Two kinds of evidence:

- **Store statements per run**: one run submitted and executed in this process
  (the production ``submit`` and ``Runner``, the ``noop`` generator, a
  dispatcher that sends nothing), with SQLite's trace callback counting the
  statements each side sends; every write is its own commit (the new run's
  is fsynced before submit returns, after the write lock is released).
- **Sampling profiles** (py-spy, from the ``bench`` extra) of the worker
  processes and of this process's submit loop during one more throughput
  batch. Each sample is charged to the innermost frame that belongs to a
  known family (the SQLite store, pydantic, logging, the Redis client, Dramatiq,
  the runner's file handling); the rest is "other".
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from podflow.heartbeat import HeartbeatMonitor
from podflow.lifecycle import submit
from podflow.runner import Runner
from podflow.store.sqlite import SqliteStore
from podflow.timeutil import utcnow
from tests.execution import request, seed

from .generators import noop
from .scale import Scale
from .systems import BenchError, PodflowSystem

__all__ = ["count_statements", "profile_podflow", "summarize"]

#: (family, pattern on a frame's file), checked from the innermost frame outwards;
#: py-spy names library files relative to their sys.path entry (``redis/client.py``)
FAMILIES = (
    ("SQLite store (podflow/store/sqlite.py)", re.compile(r"podflow/store/")),
    ("pydantic (models, validation)", re.compile(r"(^|/)pydantic(_core)?/|podflow/models\.py")),
    ("logging", re.compile(r"(^|/)logging/")),
    ("Redis client", re.compile(r"(^|/)redis/")),
    ("staging files (mkdir, rmtree, replace)", re.compile(r"^(shutil|pathlib|os|genericpath)\.py$|posixpath")),
    ("Dramatiq (broker, worker, middleware)", re.compile(r"(^|/)dramatiq/")),
    ("runner, heartbeat, dispatch", re.compile(r"podflow/")),
    ("waiting (conditions, queues, sockets)", re.compile(r"^(threading|queue|selectors|socket)\.py$")),
)
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


class _NullDispatcher:
    """Sends nothing: only the store's statements are counted."""

    mode = "queue"
    durable = True

    def new_message_id(self) -> str:
        return str(uuid.uuid4())

    def send(self, run_id: str, message_id: str | None, **options: object) -> None:
        pass

    def missing(self, refs: object) -> None:
        return None

    def requeue_orphans(self) -> None:
        return None


def count_statements(work_dir: Path) -> dict[str, dict[str, int]]:
    """Statements one no-op run costs the store: ``{"submit": {...}, "execute": {...}}``,
    each ``{"reads": n, "writes": n}``."""
    data_dir = work_dir / "count"
    store = seed(SqliteStore(data_dir / "podflow.sqlite3"))
    monitor = HeartbeatMonitor(store=store, interval_s=3600)
    runner = Runner(store=store, generator=noop, monitor=monitor, data_dir=data_dir)
    counts: dict[str, Counter[str]] = {"submit": Counter(), "execute": Counter()}
    phase = "submit"
    previous = ""

    def trace(sql: str) -> None:
        nonlocal previous
        # a statement that fires triggers is traced again for each trigger
        # program, with the same (outer) text: count it once
        if sql == previous:
            return
        previous = sql
        verb = sql.lstrip().split(None, 1)[0].upper()
        if verb in ("SELECT", "WITH"):
            counts[phase]["reads"] += 1
        elif verb in ("INSERT", "UPDATE", "DELETE", "REPLACE"):
            counts[phase]["writes"] += 1

    conn = store._conn()  # the store's own connection (this thread's): the only way to see its statements
    conn.set_trace_callback(trace)
    try:
        run = submit(store, _NullDispatcher(), request("noop"), now=utcnow()).run
        phase = "execute"
        outcome = runner.execute(run.run_id)
        if outcome.kind != "succeeded":
            raise BenchError(f"the counted run did not succeed: {outcome}")
    finally:
        conn.set_trace_callback(None)
        store.close()
    return {name: {"reads": c["reads"], "writes": c["writes"]} for name, c in counts.items()}


def summarize(raw: str, *, within: str | None = None, top: int = 12) -> dict[str, Any]:
    """Shares of samples per family and per innermost podflow function, from
    py-spy's raw output; with ``within``, only of the stacks through that function."""
    families: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = [m.groupdict() for f in stack.split(";") if (m := _FRAME.match(f))]
        if within is not None and not any(frame["func"] == within for frame in frames):
            continue
        count = int(count_text)
        total += count
        family = next(
            (name for frame in reversed(frames) for name, pattern in FAMILIES if pattern.search(frame["file"])),
            "other",
        )
        families[family] += count
        own = next((f for f in reversed(frames) if "podflow/" in f["file"]), None)
        if own is not None:
            functions[f"{own['func']} ({own['file'].split('podflow/', 1)[1]})"] += count

    def shares(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(100 * n / total, 1)) for name, n in counter.most_common(top)] if total else []

    return {"samples": total, "families_pct": shares(families), "podflow_functions_pct": shares(functions)}


def _py_spy(pid: int, out: Path, *, subprocesses: bool, idle: bool = False) -> subprocess.Popen[bytes]:
    argv = [_py_spy_binary() or "py-spy", "record", "-p", str(pid), "-o", str(out), "-f", "raw", "-r", "250"]
    argv += ["--subprocesses"] * subprocesses + ["--idle"] * idle + ["--nonblocking"] * (not idle)
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _py_spy_binary() -> str | None:
    return shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")


def _recorded(
    system: PodflowSystem, n: int, spies: dict[Path, Callable[[Path], subprocess.Popen[bytes]]]
) -> dict[Path, str]:
    """Run one batch of ``n`` under the given py-spy recorders; their raw outputs."""
    running = {path: start(path) for path, start in spies.items()}
    time.sleep(1.0)  # py-spy attaches
    try:
        system.run_batch(n)
    finally:
        for spy in running.values():
            spy.send_signal(signal.SIGINT)  # py-spy writes its output and exits
        for spy in running.values():
            try:
                spy.wait(30)
            except subprocess.TimeoutExpired:
                spy.kill()
    return {path: path.read_text(errors="replace") for path in running if path.exists()}


def _shares(summary: dict[str, Any], key: str, limit: int) -> str:
    return ", ".join(f"{name} {pct:g}%" for name, pct in summary[key][:limit])


def profile_podflow(system: PodflowSystem, scale: Scale, work_dir: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """Statement counts and py-spy profiles of podflow batches; ``notes`` summarise them."""
    statements = count_statements(work_dir)
    result: dict[str, Any] = {"statements_per_run": statements}
    notes = [
        "Profile: one no-op podflow run costs the SQLite store "
        f"{statements['submit']['reads']} reads + {statements['submit']['writes']} writes to submit and "
        f"{statements['execute']['reads']} reads + {statements['execute']['writes']} writes to execute "
        "(each write is its own commit; the new run's is fsynced before submit returns; SQLite serializes "
        "the writes of every process and thread, which queue on a lock and an flock)."
    ]
    result["notes"] = notes
    if _py_spy_binary() is None:
        notes.append("py-spy is not installed (the `bench` extra): no sampling profile.")
        return result
    n = max(scale.throughput_runs, 1000)
    workers = system.pids()[0]
    cpu = _recorded(system, n, {
        work_dir / "profile-workers-cpu.txt": lambda out: _py_spy(workers, out, subprocesses=True),
        work_dir / "profile-submitter-cpu.txt": lambda out: _py_spy(os.getpid(), out, subprocesses=False),
    })
    wall = _recorded(system, n, {
        work_dir / "profile-workers-wall.txt": lambda out: _py_spy(workers, out, subprocesses=True, idle=True),
    })
    log(f"profile: two batches of {n} podflow runs under py-spy")
    views = {
        "workers_cpu": (cpu.get(work_dir / "profile-workers-cpu.txt"), None, "worker processes, CPU"),
        "submitter_cpu": (cpu.get(work_dir / "profile-submitter-cpu.txt"), None, "submit loop, CPU"),
        "run_wall": (wall.get(work_dir / "profile-workers-wall.txt"), "Runner.execute",
                     "worker threads inside Runner.execute, wall clock (waits included)"),
    }
    for key, (raw, within, what) in views.items():
        if raw is None:
            notes.append(f"py-spy wrote no profile of the {what} (is ptrace allowed?)")
            continue
        summary = summarize(raw, within=within)
        result[key] = summary
        notes.append(
            f"Profile of the {what} ({summary['samples']} samples): {_shares(summary, 'families_pct', 6)}; "
            f"innermost podflow functions: {_shares(summary, 'podflow_functions_pct', 6)}."
        )
    return result
