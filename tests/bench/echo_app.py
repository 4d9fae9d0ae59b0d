"""A tiny Starlette app to exercise the load generator: ``uvicorn tests.bench.echo_app:app``."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route


async def generate(request: Request) -> JSONResponse:
    body = await request.json()
    return JSONResponse({"run_id": "run_" + "0" * 32, "episode_name": body["episode_name"]}, status_code=202)


async def stream(request: Request) -> StreamingResponse:
    async def chunks():
        for part in (b"one", b"two", b"three"):
            yield part

    return StreamingResponse(chunks(), media_type="text/plain")


app = Starlette(routes=[Route("/api/podcast/generate", generate, methods=["POST"]), Route("/stream", stream)])
