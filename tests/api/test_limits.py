"""Body limits: 413 on Content-Length before reading, else as soon as the bytes read pass
the limit; the 413 names the setting; and every client can read it (the rest of the
body is read and discarded first, up to a bound), urllib included."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Message, Receive, Scope, Send

from api.app import create_app
from api.errors import PayloadTooLarge
from api.limits import DRAIN_MIN_BYTES, BodyLimit, DrainUnreadBody, drain_limit, limited, read_body
from tests.api.conftest import Api, error, serve, settings_for

MiB = 1024 * 1024
LIMIT = BodyLimit(100, "a test body", "PODFLOW_TEST_BYTES", 100)


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


def multipart(size: int) -> tuple[bytes, str]:
    """A multipart upload of a ``size``-byte text file, and its Content-Type."""
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n'
        "Content-Type: text/plain\r\n\r\n"
    ).encode()
    return head + b"a" * size + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def urllib_post(url: str, data: Any, content_type: str, **headers: str) -> tuple[int, dict[str, Any]]:
    """POST with Python's urllib (which sends the whole body before reading, with
    ``Connection: close``): the status and the JSON body it could read."""
    req = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": content_type, **headers})
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.load(exc)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The app with the default limits (PODFLOW_MAX_SOURCE_BYTES=5 MiB, PODFLOW_MAX_JSON_BYTES=1 MiB)."""
    settings = settings_for(tmp_path_factory.mktemp("limits"), broker_url="redis://127.0.0.1:1/0")
    with serve(create_app(settings)) as api:
        yield api


# -- what the 413 says ---------------------------------------------------------------


def test_a_json_body_over_its_limit_is_a_413_naming_the_setting(served: Api) -> None:
    big = {"content": "a" * MiB}
    body = error(served.client.post("/api/sources", json=big), 413, "payload_too_large")
    assert "the limit of a JSON body (PODFLOW_MAX_JSON_BYTES=1048576)" in body["message"]
    assert "upload a bigger source as a multipart file (up to PODFLOW_MAX_SOURCE_BYTES=5242880)" in body["message"]
    assert body["details"] == {"limit_bytes": MiB, "setting": "PODFLOW_MAX_JSON_BYTES", "setting_value": MiB}
    run_body = error(served.client.post("/api/podcast/generate", json=big), 413, "payload_too_large")
    assert "PODFLOW_MAX_JSON_BYTES=1048576" in run_body["message"] and "multipart" not in run_body["message"]


def test_the_json_limit_is_the_setting(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, broker_url="redis://127.0.0.1:1/0", max_json_bytes=2048)
    with serve(create_app(settings)) as api:
        body = error(api.client.post("/api/sources", json={"content": "a" * 3000}), 413, "payload_too_large")
        assert "> 2048 bytes, the limit of a JSON body (PODFLOW_MAX_JSON_BYTES=2048)" in body["message"]
        assert api.client.post("/api/sources", json={"content": "a" * 1500}).status_code == 201


def test_an_upload_over_its_limit_names_the_source_setting_and_the_form_margin(served: Api) -> None:
    content, content_type = multipart(6 * MiB)
    response = served.client.post("/api/sources", content=content, headers={"Content-Type": content_type})
    body = error(response, 413, "payload_too_large")
    assert body["message"] == (
        f"request body too large: {len(content)} bytes > {5 * MiB + 65536} bytes, the limit of a source upload "
        "(PODFLOW_MAX_SOURCE_BYTES=5242880, plus 65536 bytes for the multipart form)"
    )


def test_a_chunked_body_without_a_length_is_cut_off_at_the_limit_and_named(served: Api) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"content": "'
        for _ in range(40):
            yield b"a" * 65536

    body = error(served.client.post("/api/sources", content=chunks()), 413, "payload_too_large")
    assert body["message"].startswith("request body too large: more > 1048576 bytes, the limit of a JSON body")


def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    body = Body([b"x" * 10])
    with pytest.raises(PayloadTooLarge, match="101 bytes > 100 bytes, the limit of a test body"):
        anyio.run(lambda: read_body(request(body, content_length=101), limit=LIMIT))
    with pytest.raises(PayloadTooLarge):
        limited(request(body, content_length=101), limit=LIMIT)
    assert body.calls == 0


def test_reading_stops_at_the_first_chunk_past_the_limit() -> None:
    body = Body([b"x" * 60] * 10)
    with pytest.raises(PayloadTooLarge, match=r"more > 100 bytes, .* \(PODFLOW_TEST_BYTES=100\)"):
        anyio.run(lambda: read_body(request(body), limit=LIMIT))
    assert body.calls == 2
    streamed = Body([b"x" * 60] * 10)

    async def drain() -> None:
        async for _ in limited(request(streamed), limit=LIMIT).stream():
            pass

    with pytest.raises(PayloadTooLarge):
        anyio.run(drain)
    assert streamed.calls == 2
    assert anyio.run(lambda: read_body(request(Body([b"x" * 50, b"y" * 50])), limit=LIMIT)) == b"x" * 50 + b"y" * 50


# -- every client can read it ------------------------------------------------------------


@pytest.mark.parametrize("size_mib", [6, 50])
def test_urllib_uploading_too_large_a_file_reads_the_413(served: Api, size_mib: int) -> None:
    content, content_type = multipart(size_mib * MiB)
    status, body = urllib_post(served.url + "/api/sources", content, content_type)
    assert status == 413 and body["error"]["code"] == "payload_too_large"
    assert "PODFLOW_MAX_SOURCE_BYTES=5242880" in body["error"]["message"]
    assert body["error"]["details"]["setting"] == "PODFLOW_MAX_SOURCE_BYTES"


def test_urllib_sending_a_chunked_or_json_body_too_large_reads_the_413(served: Api) -> None:
    content, content_type = multipart(6 * MiB)

    def chunks() -> Iterator[bytes]:  # no length: urllib sends it chunked
        for start in range(0, len(content), 65536):
            yield content[start : start + 65536]

    status, body = urllib_post(served.url + "/api/sources", chunks(), content_type)
    assert status == 413 and "more > 5308416 bytes" in body["error"]["message"]
    assert "PODFLOW_MAX_SOURCE_BYTES" in body["error"]["message"]
    status, body = urllib_post(served.url + "/api/podcast/generate", b"[" + b"1," * 3 * MiB + b"1]", "application/json")
    assert status == 413 and "PODFLOW_MAX_JSON_BYTES=1048576" in body["error"]["message"]


def test_urllib_reads_any_answer_given_before_its_body_was_read(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, broker_url="redis://127.0.0.1:1/0", api_token="s3cret")
    with serve(create_app(settings)) as api:
        content, content_type = multipart(6 * MiB)
        status, body = urllib_post(api.url + "/api/sources", content, content_type)  # no token
        assert status == 401 and body["error"]["code"] == "unauthorized"
        status, body = urllib_post(api.url + "/healthz", content, content_type)
        assert status == 405 and body["error"]["code"] == "method_not_allowed"


def test_httpx_and_curl_read_the_413_too(served: Api, tmp_path: Path) -> None:
    content, content_type = multipart(6 * MiB)
    with httpx.Client(base_url=served.url, timeout=30) as client:  # one keep-alive connection
        response = client.post("/api/sources", content=content, headers={"Content-Type": content_type})
        assert "PODFLOW_MAX_SOURCE_BYTES" in error(response, 413, "payload_too_large")["message"]
        assert client.get("/healthz").status_code == 200  # the connection survived: the body was read
    big = tmp_path / "big.txt"
    big.write_bytes(b"a" * 6 * MiB)
    curl = shutil.which("curl")
    assert curl, "make test installs curl"
    out = subprocess.run(
        [curl, "-sS", "-F", f"file=@{big};type=text/plain", served.url + "/api/sources"],
        capture_output=True, text=True, timeout=60, check=True,
    )
    assert json.loads(out.stdout)["error"]["code"] == "payload_too_large"


def raw_request(url: str, head: str, body: bytes = b"") -> bytes:
    """Send ``head`` (and ``body``) on a socket of its own; everything the server answers until it closes."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode() + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_a_body_beyond_the_bound_or_awaiting_100_continue_is_answered_at_once_and_closed(served: Api) -> None:
    boundary = "x" * 16
    for extra in (f"Content-Length: {drain_limit(served.settings) + 1}\r\n",
                  f"Content-Length: {6 * MiB}\r\nExpect: 100-continue\r\n"):
        answer = raw_request(
            served.url,
            f"POST /api/sources HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
            f"{extra}\r\n",
        )  # and not one byte of the body
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 413 ") and b"100 Continue" not in head
        assert b"connection: close" in head.lower()
        assert json.loads(body)["error"]["code"] == "payload_too_large"


def test_the_drain_bound_is_a_few_times_the_largest_body_accepted(tmp_path: Path) -> None:
    assert drain_limit(settings_for(tmp_path)) == DRAIN_MIN_BYTES == 64 * MiB
    assert drain_limit(settings_for(tmp_path, max_source_bytes=100 * MiB)) == 4 * (100 * MiB + 65536)


async def _refuse(scope: Scope, receive: Receive, send: Send) -> None:
    await JSONResponse({"refused": True}, status_code=413)(scope, receive, send)


def drained(chunks: list[bytes], *, max_bytes: int, stall: bool = False, **headers: str) -> tuple[Message, int]:
    """What DrainUnreadBody sends as the response start to an app that reads nothing,
    and how many body chunks it read; ``stall``: the client stops sending after ``chunks``."""
    taken = 0
    sent: list[Message] = []

    async def receive() -> Message:
        nonlocal taken
        if taken == len(chunks):  # only a stalled client is asked for more
            await anyio.sleep_forever()
        taken += 1
        return {"type": "http.request", "body": chunks[taken - 1], "more_body": stall or taken < len(chunks)}

    async def send(message: Message) -> None:
        sent.append(message)

    raw = [(name.replace("_", "-").lower().encode(), value.encode()) for name, value in headers.items()]
    scope = {"type": "http", "method": "POST", "path": "/", "headers": raw}
    anyio.run(DrainUnreadBody(_refuse, max_bytes=max_bytes, timeout_s=0.2), scope, receive, send)
    return sent[0], taken


def test_the_middleware_reads_what_is_left_within_its_bounds_and_closes_past_them() -> None:
    start, taken = drained([b"x" * 10] * 5, max_bytes=100, content_length="50")
    assert taken == 5 and (b"connection", b"close") not in start["headers"]  # all read: the connection can stay
    start, taken = drained([b"x" * 60] * 5, max_bytes=100, transfer_encoding="chunked")
    assert taken == 2 and (b"connection", b"close") in start["headers"]  # past max_bytes
    start, taken = drained([b"x" * 10], max_bytes=100, stall=True, transfer_encoding="chunked")
    assert taken == 1 and (b"connection", b"close") in start["headers"]  # slower than timeout_s
    start, taken = drained([b"x" * 10], max_bytes=100, content_length="10", expect="100-continue")
    assert taken == 0 and (b"connection", b"close") in start["headers"]  # never invites the body
    start, taken = drained([b""], max_bytes=100)
    assert taken == 0 and (b"connection", b"close") not in start["headers"]  # no body at all
