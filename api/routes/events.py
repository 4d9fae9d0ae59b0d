"""A run's progress as Server-Sent Events (see :mod:`api.sse`), from the process's
shared poller (:mod:`api.watch`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from podflow import lifecycle

from ..openapi import REF
from ..routing import Media, RouteTable
from ..schemas import RunEvent
from ..services import services
from ..sse import run_events

__all__ = ["routes"]

routes = RouteTable("runs")

#: the schema of each event (OpenAPI 3.1 has ``schema`` describe one event of a stream)
EVENT_STREAM = Media(
    "text/event-stream",
    {
        "type": "object",
        "description": "events `status` and `progress`, each with a RunEvent as JSON data",
        "properties": {
            "event": {"enum": ["status", "progress"]},
            "id": {"type": "string"},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": {"$ref": REF.format(model="RunEvent")},
            },
        },
        "required": ["event", "id", "data"],
    },
    models=(RunEvent,),
)


@routes.get("/api/podcast/runs/{run_id}/events", {200: EVENT_STREAM}, name="run_events")
async def events(request: Request, run_id: str) -> Response:
    """Follow a run as Server-Sent Events.

    One event per status or progress change (`event: status`, `event: progress`,
    with `id:` lines and a RunEvent as `data:`), a `: keep-alive` comment every
    15 s, and the stream ends right after the event with a terminal status.
    An unknown run is a 404 before the stream starts.
    """
    api = services(request)
    run = await run_in_threadpool(lifecycle.get_run, api.store, run_id)

    async def stream() -> AsyncIterator[str]:
        async with api.watcher.watch(run) as snapshots:
            async for chunk in run_events(snapshots, keepalive_s=api.keepalive_s):
                yield chunk

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)
