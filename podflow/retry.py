"""The retry policy: which failures are worth another attempt, how often, and how long to wait.

- transient (:func:`is_transient`): TransientGenerationError, StoreUnavailable,
  BrokerUnavailable and the broker clients' connection errors (redis-py,
  pika): a later attempt may well succeed;
- :class:`~podflow.errors.WorkerShutdown`: the process went away under the
  run, which was released first, so another worker takes it;
- anything else is permanent (a bug, bad input, a time limit): the run fails at once.

The runner releases a retryable failure for the next attempt instead of
failing the run (while PODFLOW_MAX_ATTEMPTS allows); then whoever executes it
sends it again after :func:`backoff_ms`: Dramatiq's Retries middleware in a
worker (:func:`podflow.worker.broker.retry_when`, which adds Dramatiq's own
connection and shutdown errors), a timer in thread mode. Nothing here imports
Dramatiq: thread mode runs without a broker.

A run released without any failure (:func:`resumes_at_once`: a shutdown, or
the soft time limit of an attempt that stored new checkpoints) is sent again at
once: its next attempt goes on from the checkpoints, and the backoff meant for
a failing provider would only delay it.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable

import redis

from .errors import (
    BrokerUnavailable,
    SoftTimeLimitExceeded,
    StoreUnavailable,
    TransientGenerationError,
    WorkerShutdown,
)

__all__ = [
    "MAX_MESSAGE_RETRIES",
    "RESUME_DELAY_MS",
    "RESUMED",
    "backoff_ms",
    "connection_errors",
    "is_retryable",
    "is_transient",
    "resumes_at_once",
    "should_retry",
]

#: Re-deliveries of one message, at most. Attempts of a run are bounded by
#: PODFLOW_MAX_ATTEMPTS in the store; this caps the retries of failures that
#: happen before a claim (the store or broker down), so an outage cannot make
#: a message bounce forever (about 2 h with the defaults).
MAX_MESSAGE_RETRIES = 20

#: redis-py's connection errors; re-trying later may succeed
_REDIS_ERRORS: tuple[type[BaseException], ...] = (redis.ConnectionError, redis.TimeoutError)
#: failures of podflow's own worth another attempt later (with the clients' connection errors)
_TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    TransientGenerationError,
    StoreUnavailable,
    BrokerUnavailable,
)


def connection_errors() -> tuple[type[BaseException], ...]:
    """The broker clients' connection errors (redis-py, and pika once it is in use);
    re-trying later may succeed.

    pika is imported only by a RabbitMQ broker (``dramatiq[rabbitmq]``): a process
    that has not imported it cannot meet its errors, and a Redis worker is spared
    its import (about 1.8 MiB of RSS per worker process, 20 ms at start).
    """
    pika_errors = sys.modules.get("pika.exceptions")
    if pika_errors is None:
        return _REDIS_ERRORS
    return (*_REDIS_ERRORS, pika_errors.AMQPConnectionError)


#: what the runner re-raises after releasing a run that did not fail (a worker
#: injects its own time-limit error too, see podflow.worker.actors)
RESUMED: tuple[type[BaseException], ...] = (WorkerShutdown, SoftTimeLimitExceeded)
#: the delay before a resumed run is sent again: none
RESUME_DELAY_MS = 0


def resumes_at_once(exc: BaseException) -> bool:
    """Whether an execution that raised ``exc`` released its run without a failure,
    for a next attempt now (the runner raises these only after a release)."""
    return isinstance(exc, RESUMED)


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is worth retrying (never a time limit, never a bug)."""
    return isinstance(exc, (*_TRANSIENT_ERRORS, *connection_errors()))


def is_retryable(exc: BaseException) -> bool:
    """Whether an execution that ended with ``exc`` should be tried again later:
    a transient failure, or the executing process shutting down."""
    return is_transient(exc) or isinstance(exc, WorkerShutdown)


def should_retry(retries: int, exc: BaseException) -> bool:
    """Whether to send a run again after ``retries`` retries ended with ``exc``."""
    return retries < MAX_MESSAGE_RETRIES and is_retryable(exc)


def backoff_ms(
    retries: int, *, min_ms: int, max_ms: int, uniform: Callable[[float, float], float] = random.uniform
) -> int:
    """The delay before retry ``retries + 1``: ``min_ms`` doubled per retry, with
    jitter up to twice that, kept within ``max_ms`` (and then 50-100 % of it).

    The same delays as Dramatiq's Retries middleware (``dramatiq.common.compute_backoff``),
    so a run waits as long in thread mode as in a worker.
    """
    delay = min_ms * 2 ** min(retries, 32)
    delay = int(delay * uniform(1, 2))
    if delay > max_ms:
        delay = int(max_ms * uniform(0.5, 1))
    return delay
