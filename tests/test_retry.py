"""The retry policy: what is retried, how often, and the backoff (the same as Dramatiq's)."""

from __future__ import annotations

import random

import dramatiq.common
import pytest
import redis
from dramatiq.common import compute_backoff

from podflow.errors import (
    BrokerUnavailable,
    GenerationError,
    LeaseLost,
    RunCancelled,
    SoftTimeLimitExceeded,
    StoreUnavailable,
    TransientGenerationError,
    WorkerShutdown,
)
from podflow.retry import (
    MAX_MESSAGE_RETRIES,
    backoff_ms,
    connection_errors,
    is_retryable,
    is_transient,
    should_retry,
)

TRANSIENT = [
    TransientGenerationError("rate limited"),
    StoreUnavailable("down"),
    BrokerUnavailable("down"),
    redis.ConnectionError("refused"),
    redis.TimeoutError("slow"),
]
PERMANENT = [ValueError("bug"), GenerationError("gone"), SoftTimeLimitExceeded(), RunCancelled(), LeaseLost()]


@pytest.mark.parametrize("exc", TRANSIENT, ids=lambda e: type(e).__name__)
def test_transient_failures_are_retried_but_not_forever(exc: BaseException) -> None:
    assert is_transient(exc) and is_retryable(exc)
    assert should_retry(MAX_MESSAGE_RETRIES - 1, exc) and not should_retry(MAX_MESSAGE_RETRIES, exc)


@pytest.mark.parametrize("exc", PERMANENT, ids=lambda e: type(e).__name__)
def test_bugs_time_limits_and_interrupts_are_never_retried(exc: BaseException) -> None:
    assert not is_retryable(exc) and not should_retry(0, exc)


def test_a_worker_shutdown_is_retried_but_is_not_a_transient_failure() -> None:
    assert is_retryable(WorkerShutdown()) and not is_transient(WorkerShutdown())


@pytest.mark.parametrize("retries", [0, 1, 5, 12, 40])
def test_the_backoff_is_dramatiqs_so_both_modes_wait_alike(retries: int, monkeypatch: pytest.MonkeyPatch) -> None:
    ours, theirs = random.Random(retries), random.Random(retries)
    monkeypatch.setattr(dramatiq.common, "uniform", theirs.uniform)
    _, expected = compute_backoff(retries, factor=15_000, max_backoff=600_000)
    assert backoff_ms(retries, min_ms=15_000, max_ms=600_000, uniform=ours.uniform) == expected


def test_the_backoff_doubles_and_stays_within_its_maximum() -> None:
    low = lambda a, b: a  # noqa: E731 - the jitter's lower end
    assert [backoff_ms(n, min_ms=1000, max_ms=6000, uniform=low) for n in range(4)] == [1000, 2000, 4000, 3000]
    assert all(backoff_ms(n, min_ms=1000, max_ms=6000) <= 6000 for n in range(50))


def test_a_rabbitmq_connection_error_is_transient_once_pika_is_in_use() -> None:
    import pika.exceptions  # what a RabbitMQ broker imports

    exc = pika.exceptions.AMQPConnectionError("refused")
    assert is_transient(exc) and should_retry(0, exc)
    assert pika.exceptions.AMQPConnectionError in connection_errors()

