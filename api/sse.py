"""Server-Sent Events of one run: an event per status or progress change.

The stream polls the store every ``interval_s`` (in a worker thread: store
calls block) and sends::

    id: 3
    event: progress
    data: {"run_id": "run_…", "status": "STARTED", "attempt": 1, "progress": {…}, …}

``event: status`` when the status (or the attempt) changed (the first event
always is one),
``event: progress`` when only the progress did; ``data`` is an
:class:`api.schemas.RunEvent`. A comment line (``: keep-alive``) goes out after
``keepalive_s`` without events, so proxies keep the connection open. The
stream ends right after the event with a terminal status, or with
``event: deleted`` if the run disappears. When the client disconnects,
Starlette cancels the stream and the polling stops with it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable

import anyio
from starlette.concurrency import run_in_threadpool

from podflow.errors import StoreError
from podflow.models import Run

from .schemas import RunEvent

__all__ = ["format_event", "run_events"]

log = logging.getLogger(__name__)

KEEPALIVE = ": keep-alive\n\n"


def _change(last: RunEvent | None, now: RunEvent) -> str | None:
    """``status`` (or a new attempt), ``progress``, or None when nothing changed."""
    if last is None or (now.status, now.attempt) != (last.status, last.attempt):
        return "status"
    return "progress" if now.progress != last.progress else None


def format_event(event_id: int, event: str, data: str) -> str:
    return f"id: {event_id}\nevent: {event}\ndata: {data}\n\n"


async def run_events(
    fetch: Callable[[], Run | None], *, interval_s: float, keepalive_s: float
) -> AsyncIterator[str]:
    """The event stream of the run ``fetch`` reads (blocking; called in a thread)."""
    sent = 0
    last: RunEvent | None = None
    quiet_since = time.monotonic()
    while True:
        try:
            run = await run_in_threadpool(fetch)
        except StoreError as exc:  # a blip: keep the stream, try again next tick
            log.warning("events: store unavailable: %s", exc)
        else:
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
        if time.monotonic() - quiet_since >= keepalive_s:
            quiet_since = time.monotonic()
            yield KEEPALIVE
        await anyio.sleep(interval_s)
