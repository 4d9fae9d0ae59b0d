"""Where podflow's time goes (``python -m bench --profile``).

Two kinds of evidence:

- **Store statements per run**: no-op runs submitted and executed in this
  process (the production ``submit`` and ``Runner``, a dispatcher that sends
  nothing), on SQLite and PostgreSQL, with :mod:`tests.statements` counting
  the statements each side sends (SQLite's trace callback, psycopg's cursors);
  against :data:`BEFORE`, the counts before issue 18.
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
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from podflow.store.base import Store
from podflow.store.postgres import PostgresStore
from podflow.store.sqlite import SqliteStore
from tests.execution import seed
from tests.postgres import scratch_database
from tests.statements import noop_runs

from .report import Row
from .scale import Scale
from .stats import Figure
from .systems import PodflowSystem

__all__ = ["BEFORE", "count_statements", "measure_statements", "profile_podflow", "summarize"]

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


#: what a no-op run cost before issue 18, on SQLite and PostgreSQL alike (counted with
#: the same harness at the commit before it): submit = profile, profile, sources, insert,
#: enqueue mark; execute = claim, run, profile, profile, source, lease, finish
BEFORE = {"submit": {"reads": 3, "writes": 2}, "execute": {"reads": 5, "writes": 2}}
#: runs counted per figure (a confirmation batch is shared by all of them)
_COUNTED_RUNS = 100


def count_statements(work_dir: Path) -> dict[str, dict[str, dict[str, float]]]:
    """Statements per no-op run, per SQL store (``sqlite``, and ``postgres`` where a
    server answers): ``submit`` and ``execute`` in a process that has met the profiles
    (their confirmations batched, as the API's), and ``first submit`` in a fresh one;
    each ``{"reads": n, "writes": n}`` (:func:`tests.statements.noop_runs`)."""
    found: dict[str, dict[str, dict[str, float]]] = {}

    def counted(store: Store, data_dir: Path) -> dict[str, dict[str, float]]:
        cold = noop_runs(seed(store), data_dir, runs=1, warm=False)["submit"].as_dict()
        warm = noop_runs(store, data_dir, runs=_COUNTED_RUNS)
        per_run = {part: {k: v / _COUNTED_RUNS for k, v in c.as_dict().items()} for part, c in warm.items()}
        return {**per_run, "first submit": {k: float(v) for k, v in cold.items()}}

    data_dir = work_dir / "count"
    sqlite = SqliteStore(data_dir / "podflow.sqlite3")
    try:
        found["sqlite"] = counted(sqlite, data_dir)
    finally:
        sqlite.close()
    try:
        with scratch_database("count") as url:
            postgres = PostgresStore(url, pool_size=2)
            try:
                found["postgres"] = counted(postgres, work_dir / "count-postgres")
            finally:
                postgres.close()
    except RuntimeError:  # no server answers
        pass
    return found


#: the targets per no-op run (issue 18): submit = one insert and a share of one confirmation, execute = claim + finish
STATEMENT_TARGETS = {"submit": 1.5, "execute": 2.0}


def measure_statements(work_dir: Path) -> tuple[list[Row], dict[str, Any], list[str]]:
    """The statement counts as rows (one count each, so ``reps`` is 1), with their targets."""
    statements = count_statements(work_dir)
    rows = []
    for name, parts in statements.items():
        for part, bound in STATEMENT_TARGETS.items():
            total = parts[part]["reads"] + parts[part]["writes"]
            was = BEFORE[part]["reads"] + BEFORE[part]["writes"]
            rows.append(Row("Store statements", f"{name}: {part}, per no-op run (before issue 18: {was})",
                            "statements", Figure.of([total]), f"<= {bound:g}", met=total <= bound))
    return rows, {"statements_per_run": statements, "statements_before": BEFORE}, statement_notes(statements)


def statement_notes(statements: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    """One line per store: a no-op run's statements now, against :data:`BEFORE`."""

    def spell(c: dict[str, float]) -> str:
        return f"{c['reads']:g} reads + {c['writes']:g} writes"

    notes = []
    for name, c in statements.items():
        notes.append(
            f"Store statements per no-op run ({name}, {_COUNTED_RUNS} runs counted): submit {spell(c['submit'])} "
            f"(before issue 18: {spell(BEFORE['submit'])}), execute {spell(c['execute'])} (before: "
            f"{spell(BEFORE['execute'])}); a process's first submit {spell(c['first submit'])} (it reads the "
            "profiles it has not met). Submit = one insert that also checks the run's profiles and sources, and "
            "a share of one batched confirmation; execute = one claim returning the run, its profiles and "
            "sources, and one finish."
        )
    return notes


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
    """py-spy profiles of podflow batches; ``notes`` summarise them."""
    result: dict[str, Any] = {}
    notes: list[str] = []
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
