"""Body limits: 413 on Content-Length before reading, else as soon as the bytes read pass the limit."""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest
from starlette.requests import Request
from starlette.types import Message

from api.errors import PayloadTooLarge
from api.limits import MAX_JSON_BYTES, limited, read_body
from tests.api.conftest import Api, error


class Body:
    """An ASGI receive() handing out ``chunks`` of a body, counting the calls."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.calls = 0

    async def __call__(self) -> Message:
        self.calls += 1
        chunk = self.chunks[self.calls - 1]
        return {"type": "http.request", "body": chunk, "more_body": self.calls < len(self.chunks)}


def request(body: Body, content_length: int | None = None) -> Request:
    headers = [(b"content-length", str(content_length).encode())] if content_length is not None else []
    return Request({"type": "http", "method": "POST", "path": "/", "headers": headers}, body)


def test_a_json_body_over_one_mebibyte_is_a_413(api: Api) -> None:
    big = {"content": "a" * MAX_JSON_BYTES}
    assert "1048576" in error(api.client.post("/api/sources", json=big), 413, "payload_too_large")["message"]
    error(api.client.post("/api/podcast/generate", json=big), 413, "payload_too_large")


def test_a_chunked_body_without_a_length_is_cut_off_at_the_limit(api: Api) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"content": "'
        for _ in range(40):
            yield b"a" * 65536

    error(api.client.post("/api/sources", content=chunks()), 413, "payload_too_large")


def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    body = Body([b"x" * 10])
    with pytest.raises(PayloadTooLarge):
        anyio.run(lambda: read_body(request(body, content_length=101), limit=100))
    with pytest.raises(PayloadTooLarge):
        limited(request(body, content_length=101), limit=100)
    assert body.calls == 0


def test_reading_stops_at_the_first_chunk_past_the_limit() -> None:
    body = Body([b"x" * 60] * 10)
    with pytest.raises(PayloadTooLarge):
        anyio.run(lambda: read_body(request(body), limit=100))
    assert body.calls == 2
    streamed = Body([b"x" * 60] * 10)

    async def drain() -> None:
        async for _ in limited(request(streamed), limit=100).stream():
            pass

    with pytest.raises(PayloadTooLarge):
        anyio.run(drain)
    assert streamed.calls == 2
    assert anyio.run(lambda: read_body(request(Body([b"x" * 50, b"y" * 50])), limit=100)) == b"x" * 50 + b"y" * 50
