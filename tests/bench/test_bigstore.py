"""The big-store benchmark's figures: p50/p99 against the target, retention per deleted run over the baseline."""

from __future__ import annotations

from bench.bigstore import LISTING_P99_MS, _rows


def test_each_listing_query_has_a_p99_judged_and_retention_is_judged_per_deleted_run() -> None:
    timings = {"first page": [0.001] * 99 + [0.2], "status FAILURE": [0.002] * 100}
    # a 0.5 s sweep with nothing to delete; 1 ms per deleted run at both sizes: proportional
    deletions = {0: [0.5, 0.5], 1000: [1.5, 1.5], 10000: [10.5, 10.5]}
    rows = {row.figure_name: row for row in _rows("SQLite", 1_000_000, timings, deletions)}
    assert rows["first page: p99"].figure.median == 1.0 and rows["first page: p99"].met  # nearest rank: 99th of 100
    assert rows["status FAILURE: p50"].figure.median == 2.0 and rows["status FAILURE: p50"].met is None
    assert rows["first page: p99"].target == f"< {LISTING_P99_MS:g}"
    assert rows["retention: per deleted run (deleting 10,000)"].figure.median == 1.0
    ratio = rows["cost per deleted run, 10,000 / 1,000"]
    assert abs(ratio.figure.median - 1.0) < 1e-9 and ratio.met
    slower = _rows("SQLite", 1_000_000, timings, {0: [0.5], 1000: [1.5], 10000: [20.5]})
    assert [row.met for row in slower if row.figure_name.startswith("cost per deleted")] == [False]
