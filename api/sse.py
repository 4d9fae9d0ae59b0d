"""Server-Sent Events of one run: an event per status or progress change.

The stream follows its run through the process's shared poller
(:class:`api.watch.RunWatcher`: one store read per interval for every stream)
and sends::

    id: 3
    event: progress
    data: {"run_id": "run_…", "status": "STARTED", "attempt": 1, "progress": {…}, …}

``event: status`` when the status (or the attempt) changed (the first event
always is one, sent at once from the run as the request read it),
``event: progress`` when only the progress did; ``data`` is an
:class:`api.schemas.RunEvent`. A comment line (``: keep-alive``) goes out after
``keepalive_s`` without events, so proxies keep the connection open. The
stream ends right after the event with a terminal status, or with
``event: deleted`` if the run disappears. When the client disconnects,
Starlette cancels the stream and its subscription ends with it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Protocol

from podflow.models import Run

from .schemas import RunEvent

__all__ = ["Snapshots", "format_event", "run_events"]

KEEPALIVE = ": keep-alive\n\n"


class Snapshots(Protocol):
    """Where a stream's snapshots of its run come from (:class:`api.watch.Subscription`)."""

    @property
    def latest(self) -> Run | None: ...

    async def wait(self, timeout_s: float) -> bool: ...


def _change(last: RunEvent | None, now: RunEvent) -> str | None:
    """``status`` (or a new attempt), ``progress``, or None when nothing changed."""
    if last is None or (now.status, now.attempt) != (last.status, last.attempt):
        return "status"
    return "progress" if now.progress != last.progress else None


def format_event(event_id: int, event: str, data: str) -> str:
    return f"id: {event_id}\nevent: {event}\ndata: {data}\n\n"


async def run_events(snapshots: Snapshots, *, keepalive_s: float) -> AsyncIterator[str]:
    """The event stream of the run ``snapshots`` follows."""
    sent = 0
    last: RunEvent | None = None
    quiet_since = time.monotonic()
    while True:
        run = snapshots.latest
        if run is None:
            sent += 1
            yield format_event(sent, "deleted", "{}")
            return
        event = RunEvent.of(run)
        kind = _change(last, event)
        if kind is not None:
            last = event
            sent += 1
            quiet_since = time.monotonic()
            yield format_event(sent, kind, event.model_dump_json())
        if run.is_terminal:
            return
        while not await snapshots.wait(max(0.0, keepalive_s - (time.monotonic() - quiet_since))):
            quiet_since = time.monotonic()
            yield KEEPALIVE
