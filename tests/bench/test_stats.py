from __future__ import annotations

import pytest

from bench.stats import Figure, format_value, percentile


def test_percentile_is_nearest_rank_so_always_one_of_the_samples() -> None:
    samples = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert percentile(samples, 50) == 3.0
    assert percentile(samples, 0) == 1.0
    assert percentile(samples, 100) == 5.0
    assert percentile(list(range(1, 101)), 99) == 99
    assert percentile([1.0, 2.0, 3.0], 99) == 3.0  # fewer than 100 samples: p99 is the largest


def test_percentile_refuses_no_samples_and_out_of_range_ranks() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_a_figure_is_the_median_with_min_and_max_of_its_repetitions() -> None:
    figure = Figure.of([3.0, 1.0, 10.0, 2.0])
    assert (figure.median, figure.min, figure.max, figure.reps) == (2.5, 1.0, 10.0, 4)
    assert figure.scaled(1000) == Figure(2500.0, 1000.0, 10000.0, 4)
    assert figure.as_dict() == {"median": 2.5, "min": 1.0, "max": 10.0, "reps": 4}
    with pytest.raises(ValueError):
        Figure.of([])


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0.0, "0"), (7.0, "7"), (0.12345, "0.123"), (1.5, "1.50"), (12.345, "12.3"), (123.4, "123"),
        (12345.6, "12,300"), (99.9996, "100"),
    ],
)
def test_values_show_three_significant_figures_and_counts_as_they_are(value: float, shown: str) -> None:
    assert format_value(value) == shown
