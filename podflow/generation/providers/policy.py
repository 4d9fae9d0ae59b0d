"""The in-attempt retry policy for provider calls: pure decisions, time as a parameter.

One call (one request to ``/chat/completions`` or ``/audio/speech``) is tried
until it succeeds or :func:`next_wait` says to give up:

- a 429 is backpressure: it is waited out, never sooner than the provider's
  ``Retry-After`` (seconds, an HTTP date, or OpenAI's ``retry-after-ms``), with
  exponential backoff when it gives none, until the waits of this call would
  exceed ``rate_limit_wait_s`` (PODFLOW_PROVIDER_RATE_LIMIT_WAIT). Only then
  does the call cost the run an attempt;
- a transient failure (5xx, timeout, connection) is retried ``retries`` times
  (PODFLOW_PROVIDER_RETRIES) with backoff (PODFLOW_PROVIDER_BACKOFF, doubling,
  at most ``backoff_max_s``), then the attempt is given up and podflow
  retries the run (PODFLOW_RETRY_BACKOFF, PODFLOW_MAX_ATTEMPTS);
- a permanent failure is never retried.

The SDK's own retries are off (``max_retries=0``): its 429 handling ignores a
``Retry-After`` above 60 s and shares one count with 5xx, so this module is
the only in-attempt layer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .errors import Failure

__all__ = ["RetryPolicy", "Tries", "next_wait", "retry_after_s"]

#: the longest Retry-After podflow believes (a larger one is a provider bug; the bound applies anyway)
_RETRY_AFTER_MAX_S = 24 * 3600.0
_JITTER = 0.25


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How one provider call is retried inside an attempt (from the PODFLOW_PROVIDER_* settings)."""

    retries: int = 2
    backoff_s: float = 1.0
    backoff_max_s: float = 30.0
    rate_limit_wait_s: float = 300.0


@dataclass(slots=True)
class Tries:
    """What one call went through so far."""

    transient: int = 0
    rate_limited: int = 0
    rate_limit_waited_s: float = 0.0


def retry_after_s(headers: Mapping[str, str], *, now: datetime) -> float | None:
    """The wait a response asks for: ``retry-after-ms``, else ``Retry-After`` in
    seconds or as an HTTP date (relative to ``now``, aware UTC); None if absent or unreadable."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return _bounded(float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return _bounded(float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # an HTTP date is GMT
        return None
    return _bounded((when - now).total_seconds())


def _bounded(seconds: float) -> float | None:
    if seconds != seconds:  # NaN
        return None
    return min(max(0.0, seconds), _RETRY_AFTER_MAX_S)


def next_wait(failure: Failure, tries: Tries, policy: RetryPolicy, *, jitter: float = 0.0) -> float | None:
    """Seconds to wait before sending the call again, or None to give up.

    ``jitter`` in [0, 1) lengthens a backoff by up to a quarter (never a
    ``Retry-After``, which is waited exactly: never sooner). Updates ``tries``.
    """
    if failure.kind == "permanent":
        return None
    if failure.kind == "rate_limited":
        wait = failure.retry_after_s
        if wait is None:
            wait = _backoff(tries.rate_limited, policy, jitter)
        if tries.rate_limit_waited_s + wait > policy.rate_limit_wait_s:
            return None
        tries.rate_limited += 1
        tries.rate_limit_waited_s += wait
        return wait
    if tries.transient >= policy.retries:
        return None
    wait = _backoff(tries.transient, policy, jitter)
    tries.transient += 1
    return max(wait, failure.retry_after_s or 0.0)


def _backoff(done: int, policy: RetryPolicy, jitter: float) -> float:
    return min(policy.backoff_max_s, policy.backoff_s * 2.0**done) * (1 + _JITTER * jitter)
