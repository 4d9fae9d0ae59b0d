"""UTC time at millisecond precision, the resolution both stores keep.

MongoDB stores dates in milliseconds, so every timestamp podflow writes is
truncated to the millisecond first; then a value read back compares equal to
the value written, on either store.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["EPOCH", "from_ms", "seconds", "to_ms", "utc", "utcnow"]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def utc(dt: datetime) -> datetime:
    """``dt`` as an aware UTC datetime truncated to the millisecond.

    Naive datetimes are taken to be UTC already (that is how pymongo returns
    them without ``tz_aware``).
    """
    if dt.tzinfo is UTC and not dt.microsecond % 1000:  # already so (what from_ms and utcnow give)
        return dt
    dt = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    return dt.replace(microsecond=dt.microsecond - dt.microsecond % 1000)


def utcnow() -> datetime:
    """The current time, UTC, millisecond precision."""
    return utc(datetime.now(UTC))


def to_ms(dt: datetime) -> int:
    """Milliseconds since the Unix epoch."""
    delta = utc(dt) - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def from_ms(ms: int) -> datetime:
    """The inverse of :func:`to_ms`."""
    return EPOCH + timedelta(milliseconds=ms)


def seconds(value: float) -> timedelta:
    return timedelta(seconds=value)
