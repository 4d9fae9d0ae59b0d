"""The provider-overhead benchmark: its ideal, and one tiny run with real workers and the fake provider."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bench.providers import ideal_s, measure
from bench.scale import SCALES


def test_the_ideal_is_the_providers_time_alone_on_the_critical_path() -> None:
    assert ideal_s(8, chat_s=2.0, speech_s=0.5) == 2 * 2.0 + 2 * 0.5  # two waves of four turns
    assert ideal_s(9, chat_s=2.0, speech_s=0.5) == 4.0 + 3 * 0.5
    assert ideal_s(1, chat_s=0.0, speech_s=0.5, parallelism=1) == 0.5


@pytest.mark.slow
def test_a_tiny_run_reports_the_ratios(redis_url: str, tmp_path: Path) -> None:
    scale = replace(SCALES["quick"], reps=1, processes=1, threads=2, provider_concurrent=2,
                    provider_chat_s=0.05, provider_speech_s=0.05)  # fmt: skip
    rows, details = measure(scale, tmp_path, redis_url, lambda message: None)
    ratios = [row for row in rows if row.unit == "x"]
    assert "chat 0.05 s, speech 0.05 s per call" in rows[0].figure_name
    assert [row.figure_name.split(":")[0] for row in ratios] == ["1 run", "2 concurrent runs"]
    assert all(row.figure is not None and row.figure.median >= 1.0 for row in ratios)  # never faster than the provider
    assert len(details["providers"]) == 2  # type: ignore[arg-type]
