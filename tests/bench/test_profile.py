"""The profile's plumbing: statement counts of one run, and py-spy output summarised."""

from __future__ import annotations

from pathlib import Path

from bench.profile import count_statements, summarize

RAW = """\
process 1:"python -m dramatiq";Thread._bootstrap (threading.py:1002);WorkerThread.run (dramatiq/worker.py:534);\
Runner.execute (podflow/runner.py:180);SqliteStore.claim (podflow/store/sqlite.py:461) 6
process 1:"python -m dramatiq";WorkerThread.run (dramatiq/worker.py:534);Runner.execute (podflow/runner.py:180);\
Runner._run (podflow/runner.py:230);rmtree (shutil.py:736) 2
process 1:"python -m dramatiq";_ConsumerThread.run (dramatiq/worker.py:300);\
AbstractConnection.send_packed_command (redis/connection.py:1349) 2
not a stack line
"""


def test_samples_are_charged_to_the_innermost_known_family_and_podflow_function() -> None:
    summary = summarize(RAW)
    assert summary["samples"] == 10
    assert dict(summary["families_pct"]) == {
        "SQLite store (podflow/store/sqlite.py)": 60.0,
        "staging files (mkdir, rmtree, replace)": 20.0,
        "Redis client": 20.0,
    }
    assert dict(summary["podflow_functions_pct"]) == {
        "SqliteStore.claim (store/sqlite.py)": 60.0,
        "Runner._run (runner.py)": 20.0,
    }


def test_a_summary_within_a_function_keeps_only_its_stacks() -> None:
    summary = summarize(RAW, within="Runner.execute")
    assert summary["samples"] == 8 and dict(summary["families_pct"])["SQLite store (podflow/store/sqlite.py)"] == 75.0
    assert summarize("", within="Runner.execute") == {"samples": 0, "families_pct": [], "podflow_functions_pct": []}


def test_one_run_costs_the_store_a_few_reads_and_writes_on_each_side(tmp_path: Path) -> None:
    counts = count_statements(tmp_path)
    assert set(counts) == {"submit", "execute"}
    for side in counts.values():
        assert side["writes"] >= 1 and side["reads"] >= 1
    assert counts["submit"]["writes"] + counts["execute"]["writes"] <= 10, counts
