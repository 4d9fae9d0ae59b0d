"""Request size limits, and reading request bodies within them.

A body over its limit is refused with 413 (:class:`api.errors.PayloadTooLarge`)
on its Content-Length before anything is read, and otherwise as soon as the
bytes read pass the limit: nothing buffers an unbounded body.

- JSON bodies: :data:`MAX_JSON_BYTES` (1 MiB).
- Source uploads (multipart): PODFLOW_MAX_SOURCE_BYTES for the document itself
  (refused by ``podflow.sources.ingest_source``), plus
  :data:`MULTIPART_OVERHEAD_BYTES` for the form's boundaries and fields.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.types import Message

from podflow.errors import InvalidInput

from .errors import PayloadTooLarge

__all__ = ["MAX_JSON_BYTES", "MULTIPART_OVERHEAD_BYTES", "limited", "read_body", "read_json"]

MAX_JSON_BYTES = 1024 * 1024
MULTIPART_OVERHEAD_BYTES = 64 * 1024


def _check_length(request: Request, limit: int) -> None:
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(limit, int(length))


async def read_body(request: Request, *, limit: int) -> bytes:
    """The whole body, at most ``limit`` bytes.

    Raises:
      PayloadTooLarge
    """
    _check_length(request, limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, *, limit: int = MAX_JSON_BYTES) -> Any:
    """The body parsed as JSON (whatever the Content-Type says).

    Raises:
      PayloadTooLarge: more than ``limit`` bytes.
      InvalidInput: ``field="body"``: empty, or not JSON.
    """
    body = await read_body(request, limit=limit)
    if not body.strip():
        raise InvalidInput("a JSON body is required", field="body")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc}", field="body") from None


def limited(request: Request, *, limit: int) -> Request:
    """``request`` with a body stream that raises :class:`PayloadTooLarge` past
    ``limit`` bytes, for parsers that read the stream themselves (multipart forms).

    Raises:
      PayloadTooLarge: at once, when Content-Length says so.
    """
    _check_length(request, limit)
    received = 0

    async def receive() -> Message:
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise PayloadTooLarge(limit)
        return message

    return Request(request.scope, receive)
