"""System calls per job (``strace -c -f`` on the worker processes during one batch).

A count, not a time: it hardly moves with other work on the machine, which
the CPU and wall-clock figures do (on a small virtual machine a system call
costs microseconds, and a thread hand-off a futex or two). It shows where
podflow's workers do more than Dramatiq's: the SQLite store's page reads and
write-ahead-log frames (``pread64``, ``pwrite64``), its locks (``fcntl``,
``flock``), against the threads' hand-offs (``futex``) both have.

The processes run several times slower under strace, so calls that follow the
clock rather than the jobs (idle polls: ``clock_nanosleep``, ``poll``) count
for more than in a normal batch; the per-call counts say which is which.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from .report import Row
from .stats import Figure

__all__ = ["count_syscalls", "parse_summary", "strace_binary"]

#: the calls named in the notes, per system
_TOP = 8
_ATTACH_S = 1.0


class _Batched(Protocol):
    name: str

    def pids(self) -> list[int]: ...

    def run_batch(self, n: int) -> float: ...


def strace_binary() -> str | None:
    return shutil.which("strace")


def parse_summary(text: str) -> dict[str, int]:
    """Calls per system call from ``strace -c`` output (its ``total`` line included)."""
    calls: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        # "% time  seconds  usecs/call  calls  [errors]  syscall"
        if len(parts) in (5, 6) and parts[3].isdigit() and not line.startswith("%"):
            calls[parts[-1]] = calls.get(parts[-1], 0) + int(parts[3])
    return calls


def _counted(system: _Batched, n: int, out: Path) -> dict[str, int]:
    from .procs import tree_pids  # psutil, the bench extra: the summary parser needs none of it

    argv = [strace_binary() or "strace", "-f", "-c", "-o", str(out)]
    for pid in tree_pids(system.pids()):
        argv += ["-p", str(pid)]
    tracer = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(_ATTACH_S)
    try:
        system.run_batch(n)
    finally:
        tracer.send_signal(signal.SIGINT)  # strace detaches and writes its summary
        try:
            tracer.wait(30)
        except subprocess.TimeoutExpired:
            tracer.kill()
    return parse_summary(out.read_text(errors="replace")) if out.exists() else {}


def count_syscalls(
    systems: Sequence[_Batched], n: int, work_dir: Path, log: Callable[[str], None]
) -> tuple[list[Row], dict[str, Any], list[str]]:
    """Rows of system calls per job for each system's workers; the counts as details."""
    if strace_binary() is None:
        return [], {}, ["strace is not installed (`make bench` installs it): no system-call counts."]
    rows: list[Row] = []
    notes: list[str] = []
    details: dict[str, Any] = {}
    for system in systems:
        calls = _counted(system, n, work_dir / f"strace-{system.name.split()[0].lower()}.txt")
        log(f"system calls: {n} {system.name} jobs under strace")
        if not calls:
            notes.append(f"strace counted nothing for {system.name} (is ptrace allowed?)")
            continue
        total = calls.pop("total", sum(calls.values()))
        details.setdefault("syscalls", {})[system.name] = {"jobs": n, "total": total, "calls": calls}
        rows.append(Row("System calls per job", f"{system.name} workers", "calls", Figure.of([total / n])))
        top = sorted(calls.items(), key=lambda item: -item[1])[:_TOP]
        spelled = ", ".join(f"{name} {count / n:.1f}" for name, count in top)
        notes.append(f"System calls per job, {system.name} workers ({total / n:.0f} in all): {spelled}.")
    return rows, details, notes
