"""The in-attempt retry policy: Retry-After read exactly, 429s waited out to a bound, 5xx retried a few times."""

from __future__ import annotations

import pytest

from podflow.generation.providers.errors import Failure
from podflow.generation.providers.policy import RetryPolicy, Tries, next_wait, retry_after_s
from tests.conftest import T0, at

POLICY = RetryPolicy(retries=2, backoff_s=1.0, backoff_max_s=8.0, rate_limit_wait_s=10.0)


def rate_limited(after: float | None = None) -> Failure:
    return Failure("rate_limited", "LLM at x answered 429", 429, after)


def test_retry_after_is_read_in_seconds_as_an_http_date_or_in_milliseconds() -> None:
    assert retry_after_s({"retry-after": "2"}, now=T0) == 2.0
    assert retry_after_s({"retry-after": "1.5"}, now=T0) == 1.5
    assert retry_after_s({"retry-after": "Thu, 01 Jan 2026 12:00:30 GMT"}, now=T0) == 30.0
    assert retry_after_s({"retry-after": "Thu, 01 Jan 2026 12:00:30 GMT"}, now=at(40)) == 0.0  # already past
    assert retry_after_s({"retry-after-ms": "250", "retry-after": "9"}, now=T0) == 0.25  # OpenAI's own, finer


@pytest.mark.parametrize("value", ["soon", "", "Thu, 01 Jan 2026 12:00:30", "nan"])
def test_an_unreadable_retry_after_counts_as_none(value: str) -> None:
    assert retry_after_s({"retry-after": value}, now=T0) is None


def test_a_429_is_waited_out_never_sooner_than_its_retry_after_even_with_jitter() -> None:
    tries = Tries()
    assert next_wait(rate_limited(2.0), tries, POLICY, jitter=0.99) == 2.0
    assert next_wait(rate_limited(3.0), tries, POLICY, jitter=0.0) == 3.0
    assert (tries.rate_limited, tries.rate_limit_waited_s) == (2, 5.0)


def test_429s_are_waited_out_until_the_bound_then_the_attempt_gives_up() -> None:
    tries = Tries()
    waits = [next_wait(rate_limited(3.0), tries, POLICY) for _ in range(5)]
    assert waits == [3.0, 3.0, 3.0, None, None]  # 9 s waited; a fourth wait would pass 10 s


def test_a_retry_after_past_the_bound_gives_up_at_once_rather_than_wait_for_nothing() -> None:
    assert next_wait(rate_limited(60.0), Tries(), POLICY) is None


def test_a_429_without_retry_after_backs_off_exponentially() -> None:
    tries = Tries()
    assert [next_wait(rate_limited(), tries, POLICY) for _ in range(3)] == [1.0, 2.0, 4.0]


def test_transient_failures_are_retried_a_few_times_with_backoff_then_given_up() -> None:
    tries, failure = Tries(), Failure("transient", "LLM at x answered 503", 503)
    assert [next_wait(failure, tries, POLICY) for _ in range(3)] == [1.0, 2.0, None]
    assert next_wait(Failure("transient", "503", 503, retry_after_s=5.0), Tries(), POLICY) == 5.0


def test_backoff_is_capped_and_jitter_only_lengthens_it() -> None:
    policy = RetryPolicy(retries=10, backoff_s=1.0, backoff_max_s=8.0)
    tries, failure = Tries(), Failure("transient", "x")
    waits = [next_wait(failure, tries, policy, jitter=0.5) for _ in range(6)]
    assert waits == [1.125, 2.25, 4.5, 9.0, 9.0, 9.0]


def test_a_permanent_failure_is_never_retried() -> None:
    assert next_wait(Failure("permanent", "LLM at x answered 401"), Tries(), POLICY) is None
