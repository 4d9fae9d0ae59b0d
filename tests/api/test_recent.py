"""The dashboard overview's per-process cache: one computation per ttl for every request."""

from __future__ import annotations

import pytest

from api.recent import Recent


def test_a_recent_value_is_reused_until_it_is_ttl_old() -> None:
    ticks = [0.0]
    recent = Recent[int](ttl_s=1.0, monotonic=lambda: ticks[0])
    values = iter(range(10))
    assert [recent.get(lambda: next(values)) for _ in range(50)] == [0] * 50  # 50 browsers, one read
    ticks[0] = 1.0
    assert recent.get(lambda: next(values)) == 1 and recent.computed == 2


def test_a_cleared_value_is_computed_again() -> None:
    recent = Recent[int](ttl_s=60.0)
    values = iter(range(10))
    recent.get(lambda: next(values))
    recent.clear()
    assert recent.get(lambda: next(values)) == 1


def test_a_failed_computation_keeps_nothing() -> None:
    recent = Recent[int](ttl_s=1.0)

    def fail() -> int:
        raise RuntimeError("store down")

    with pytest.raises(RuntimeError):
        recent.get(fail)
    assert recent.get(lambda: 7) == 7
