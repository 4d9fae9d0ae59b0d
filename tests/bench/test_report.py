from __future__ import annotations

import json
from pathlib import Path

from bench.report import Report, Row
from bench.stats import Figure


def _report() -> Report:
    return Report(
        scale="quick",
        machine={"cpu": "Test CPU", "cores": "2"},
        rows=[
            Row("Throughput", "podflow", "runs/s", Figure.of([100.0, 120.0, 110.0])),
            Row("Throughput", "podflow / Dramatiq", "x", Figure.of([0.8]), ">= 0.7", met=True),
            Row("Throughput", "podflow / Celery", "x", Figure.of([1.2]), ">= 1.5", met=False),
            Row("Submit path", "POST /api/podcast/generate", note="api.app is not importable"),
            Row("Sweep cost", "—", error="BenchError: boom"),
        ],
        notes=["measured on a noisy machine"],
        details={"sweep_query_plans": [{"statement": "SELECT … WHERE status = ?", "plan": ["SEARCH runs"],
                                        "indexed": True}]},
    )


def test_each_row_says_whether_its_target_is_met_skipped_or_failed() -> None:
    assert [row.status for row in _report().rows] == ["", "met", "MISSED", "skipped", "FAILED"]


def test_the_table_is_aligned_markdown_with_median_min_and_max() -> None:
    lines = _report().table().splitlines()
    assert lines[0].split("|")[1:-1] == [
        f" {h.ljust(len(c) - 2)} " for h, c in zip(
            ["benchmark", "figure", "median", "min", "max", "unit", "reps", "target", "status"],
            lines[0].split("|")[1:-1], strict=True)
    ]
    assert len({len(line) for line in lines}) == 1  # padded: reads as plain text too
    podflow = lines[2]
    assert "| 110 " in podflow and "| 100 " in podflow and "| 120 " in podflow and "| 3 " in podflow
    assert "skipped: api.app is not importable" in lines[5]
    assert "FAILED: BenchError: boom" in lines[6]


def test_written_json_and_markdown_hold_the_machine_rows_notes_and_plans(tmp_path: Path) -> None:
    json_path, md_path = _report().write(tmp_path / "results", "quick-test")
    data = json.loads(json_path.read_text())
    assert data["scale"] == "quick" and data["machine"]["cpu"] == "Test CPU"
    assert data["rows"][0]["value"] == {"median": 110.0, "min": 100.0, "max": 120.0, "reps": 3}
    assert data["rows"][2]["met"] is False and data["rows"][3]["value"] is None
    markdown = md_path.read_text()
    assert "- cpu: Test CPU" in markdown and "| podflow / Celery" in markdown
    assert "measured on a noisy machine" in markdown and "SEARCH runs" in markdown
