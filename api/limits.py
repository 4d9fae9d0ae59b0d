"""Request size limits: reading bodies within them, and answering a client still sending one.

A body over its limit is refused with 413 (:class:`api.errors.PayloadTooLarge`)
on its Content-Length before anything is read, and otherwise as soon as the
bytes read pass the limit: nothing buffers an unbounded body. The 413 names
the setting behind the limit (:class:`BodyLimit`):

- JSON bodies: PODFLOW_MAX_JSON_BYTES (1 MiB by default), :func:`json_limit`.
- Source uploads (multipart): PODFLOW_MAX_SOURCE_BYTES for the document itself
  (refused by ``podflow.sources.ingest_source``), plus
  :data:`MULTIPART_OVERHEAD_BYTES` for the form's boundaries and fields,
  :func:`upload_limit`.

An answer sent while the client is still sending its body (a 413, or a 401,
404 or 405 that needs no body) can only be read by a client that reads before
it has sent everything (curl, httpx): a server that closes a connection with
unread bytes makes the kernel reset it, and Python's urllib, which sends its
whole body first and asks for ``Connection: close``, sees "Connection reset by
peer" instead of the answer. :class:`DrainUnreadBody` therefore reads and
discards the rest of the body before the answer starts, up to
:func:`drain_limit` bytes in all and for at most :data:`DRAIN_TIMEOUT_S`
(like nginx's lingering close); past either it answers at once, with
``Connection: close``.
"""

from __future__ import annotations

from dataclasses import dataclass

import anyio
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from podflow.errors import InvalidInput
from podflow.settings import Settings

from .errors import PayloadTooLarge

__all__ = [
    "DRAIN_MIN_BYTES",
    "DRAIN_TIMEOUT_S",
    "MULTIPART_OVERHEAD_BYTES",
    "BodyLimit",
    "DrainUnreadBody",
    "drain_limit",
    "json_limit",
    "limited",
    "read_body",
    "read_json",
    "upload_limit",
]

_MiB = 1024 * 1024
MULTIPART_OVERHEAD_BYTES = 64 * 1024
#: a refused body is read to its end when it has at most this many bytes, or
#: 4 times the largest body accepted, whichever is more (a 50 MiB file sent by
#: mistake still gets a readable 413) ...
DRAIN_MIN_BYTES = 64 * _MiB
_DRAIN_FACTOR = 4
#: ... and arrives within this many seconds (nginx's ``lingering_time``)
DRAIN_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class BodyLimit:
    """The most bytes a body may have, and what a 413 tells a client that sends more."""

    max_bytes: int
    #: what is limited: "a JSON body"
    what: str
    #: the setting behind the limit, and its value
    setting: str
    setting_value: int
    #: how the limit relates to the setting, when it is not the setting itself
    margin: str = ""
    #: what the client may do instead
    hint: str = ""

    def refuse(self, size: int | None) -> PayloadTooLarge:
        """The 413 for a body of ``size`` bytes (None: more than the limit, length unknown)."""
        found = f"{size} bytes" if size is not None else "more"
        basis = f"{self.setting}={self.setting_value}" + (f", {self.margin}" if self.margin else "")
        message = f"request body too large: {found} > {self.max_bytes} bytes, the limit of {self.what} ({basis})"
        details = {"limit_bytes": self.max_bytes, "setting": self.setting, "setting_value": self.setting_value}
        return PayloadTooLarge(message + (f"; {self.hint}" if self.hint else ""), details=details)


def json_limit(settings: Settings, *, hint: str = "") -> BodyLimit:
    """The limit of a JSON body: PODFLOW_MAX_JSON_BYTES."""
    size = settings.max_json_bytes
    return BodyLimit(size, "a JSON body", "PODFLOW_MAX_JSON_BYTES", size, hint=hint)


def upload_limit(settings: Settings) -> BodyLimit:
    """The limit of a multipart source upload: PODFLOW_MAX_SOURCE_BYTES plus the form's overhead."""
    return BodyLimit(
        settings.max_source_bytes + MULTIPART_OVERHEAD_BYTES,
        "a source upload",
        "PODFLOW_MAX_SOURCE_BYTES",
        settings.max_source_bytes,
        margin=f"plus {MULTIPART_OVERHEAD_BYTES} bytes for the multipart form",
    )


def drain_limit(settings: Settings) -> int:
    """How much of a refused body :class:`DrainUnreadBody` reads before answering."""
    largest = max(json_limit(settings).max_bytes, upload_limit(settings).max_bytes)
    return max(DRAIN_MIN_BYTES, _DRAIN_FACTOR * largest)


def _declared_length(headers: Headers) -> int | None:
    length = headers.get("content-length", "")
    return int(length) if length.isdigit() else None


def _check_length(request: Request, limit: BodyLimit) -> None:
    length = _declared_length(request.headers)
    if length is not None and length > limit.max_bytes:
        raise limit.refuse(length)


async def read_body(request: Request, *, limit: BodyLimit) -> bytes:
    """The whole body, at most ``limit`` bytes.

    Raises:
      PayloadTooLarge
    """
    _check_length(request, limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit.max_bytes:
            raise limit.refuse(None)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, *, limit: BodyLimit) -> bytes:
    """The body of a JSON request (whatever the Content-Type says), not yet parsed:
    :func:`api.schemas.validate_json` parses and validates it in one pass.

    Raises:
      PayloadTooLarge: more than ``limit`` bytes.
      InvalidInput: ``field="body"``: empty.
    """
    body = await read_body(request, limit=limit)
    if not body.strip():
        raise InvalidInput("a JSON body is required", field="body")
    return body


def limited(request: Request, *, limit: BodyLimit) -> Request:
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
            if received > limit.max_bytes:
                raise limit.refuse(None)
        return message

    return Request(request.scope, receive)


class _Body:
    """What the app has received of a request's body."""

    def __init__(self) -> None:
        self.received = 0
        self.calls = 0
        self.waiting = False
        self.complete = False

    def note(self, message: Message) -> None:
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            self.complete = not message.get("more_body", False)
        elif message["type"] == "http.disconnect":
            self.complete = True


class DrainUnreadBody:
    """ASGI middleware: before a response starts, read and discard the rest of
    a request body the app left unread (see the module docstring for why),
    up to ``max_bytes`` received in all and for ``timeout_s``. A body that is
    larger, slower, or that the client has not sent yet because it waits for
    ``100 Continue``, is not read: the response says ``Connection: close``.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, timeout_s: float = DRAIN_TIMEOUT_S) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope) if scope["type"] == "http" else None
        if headers is None or ("transfer-encoding" not in headers and not _declared_length(headers)):
            await self.app(scope, receive, send)  # no body to leave unread
            return
        body = _Body()

        async def tracked_receive() -> Message:
            body.calls += 1
            body.waiting = True
            try:
                message = await receive()
            finally:
                body.waiting = False
            body.note(message)
            return message

        async def drained_send(message: Message) -> None:
            starts = message["type"] == "http.response.start"
            if starts and not body.complete and not await self._drain(receive, body, headers):
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        await self.app(scope, tracked_receive, drained_send)

    async def _drain(self, receive: Receive, body: _Body, headers: Headers) -> bool:
        """Read the rest of the body; True once it is all read."""
        if body.waiting:  # the app is reading it itself (a streaming response listening for a disconnect)
            return False
        if body.calls == 0 and headers.get("expect", "").lower() == "100-continue":
            return False  # the client waits for our word before it sends: asking for the body would invite it
        declared = _declared_length(headers)
        if declared is not None and declared > self.max_bytes:
            return False
        with anyio.move_on_after(self.timeout_s):
            while not body.complete and body.received <= self.max_bytes:
                body.note(await receive())
        return body.complete
