"""Tiny Starlette apps to exercise the submit benchmark: ``uvicorn tests.bench.echo_app:app``.

``app`` echoes (and streams, for chunked bodies); ``submit_app`` stands in for the
HTTP API's ``POST /api/podcast/generate`` (issue 5) with podflow's real submit
path, configured from the environment as the API will be.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from podflow.dispatch.queue import QueueDispatcher
from podflow.lifecycle import submit
from podflow.models import RunRequest
from podflow.settings import load_settings
from podflow.store import open_store
from podflow.timeutil import utcnow
from podflow.worker.broker import build_broker


async def generate(request: Request) -> JSONResponse:
    body = await request.json()
    return JSONResponse({"run_id": "run_" + "0" * 32, "episode_name": body["episode_name"]}, status_code=202)


async def stream(request: Request) -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        for part in (b"one", b"two", b"three"):
            yield part

    return StreamingResponse(chunks(), media_type="text/plain")


app = Starlette(routes=[Route("/api/podcast/generate", generate, methods=["POST"]), Route("/stream", stream)])


@contextlib.asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    settings = load_settings()
    app.state.store = open_store(settings)
    app.state.dispatcher = QueueDispatcher(broker=build_broker(settings))
    yield
    app.state.store.close()


async def submit_run(request: Request) -> JSONResponse:
    run_request = RunRequest.model_validate(await request.json())
    state = request.app.state
    run = (await run_in_threadpool(submit, state.store, state.dispatcher, run_request, now=utcnow())).run
    return JSONResponse({"run_id": run.run_id, "status": str(run.status)}, status_code=202)


submit_app = Starlette(routes=[Route("/api/podcast/generate", submit_run, methods=["POST"])], lifespan=_lifespan)
