"""The profile's plumbing: statement counts of one run, and py-spy output summarised."""

from __future__ import annotations

from pathlib import Path

from bench.profile import measure_statements, summarize

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


def test_the_statement_rows_count_a_noop_run_on_each_sql_store_against_its_target(tmp_path: Path) -> None:
    rows, details, notes = measure_statements(tmp_path)
    counts = details["statements_per_run"]
    assert "sqlite" in counts and set(counts["sqlite"]) == {"submit", "execute", "first submit"}
    for store in counts.values():
        assert store["execute"] == {"reads": 0, "writes": 2}
        assert store["submit"]["reads"] == 0 and 1 <= store["submit"]["writes"] <= 1.5
        assert store["first submit"]["reads"] <= 3
    assert all(row.met and row.target for row in rows) and len(rows) == 2 * len(counts)
    assert any("before issue 18: 3 reads + 2 writes" in note for note in notes)
