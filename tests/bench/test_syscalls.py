"""System calls per job: strace's summary read, and counted on a real process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.syscalls import count_syscalls, parse_summary, strace_binary

SUMMARY = """\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 59.76   27.847844       13624      2044           clock_nanosleep
 20.11    9.371230         131     71280     10001 futex
  1.02    0.474201          15     30260           pread64
------ ----------- ----------- --------- --------- ----------------
100.00   46.597860         250    103584     10001 total
"""


def test_the_summary_gives_calls_per_system_call_with_or_without_errors() -> None:
    assert parse_summary(SUMMARY) == {"clock_nanosleep": 2044, "futex": 71280, "pread64": 30260, "total": 103584}


class Writer:
    """A process that makes ``os.getppid`` calls while a 'batch' runs (a signal file exists)."""

    name = "writer"

    def __init__(self, tmp_path: Path) -> None:
        self.flag = tmp_path / "go"
        code = (
            "import os, sys, time\n"
            f"flag = {str(self.flag)!r}\n"
            "while True:\n"
            "    if os.path.exists(flag):\n"
            "        for _ in range(500): os.getppid()\n"
            "        os.remove(flag)\n"
            "    time.sleep(0.01)\n"
        )
        self.proc = subprocess.Popen([sys.executable, "-c", code])

    def pids(self) -> list[int]:
        return [self.proc.pid]

    def run_batch(self, n: int) -> float:
        self.flag.touch()
        while self.flag.exists():
            time.sleep(0.01)
        return 1.0


@pytest.mark.skipif(strace_binary() is None, reason="strace is not installed (make bench installs it)")
@pytest.mark.skipif(os.geteuid() != 0, reason="attaching strace to a running process needs ptrace rights")
def test_a_batch_under_strace_counts_its_calls_per_job(tmp_path: Path) -> None:
    pytest.importorskip("psutil", reason="psutil comes with the bench extra")
    writer = Writer(tmp_path)
    try:
        rows, details, notes = count_syscalls([writer], 100, tmp_path, lambda _: None)
    finally:
        writer.proc.kill()
        writer.proc.wait()
    counted = details["syscalls"]["writer"]
    assert counted["calls"]["getppid"] == 500 and counted["jobs"] == 100
    assert rows[0].figure_name == "writer workers" and rows[0].figure.median >= 5  # 500 calls over 100 jobs, and more
    assert "getppid 5.0" in notes[0]
