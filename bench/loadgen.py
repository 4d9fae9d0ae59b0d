"""A small HTTP/1.1 load generator: C keep-alive connections, each sending its
requests one after another, timing each from the first byte written to the
last byte of the response read.

Plain asyncio streams rather than an HTTP client library, so that the client
costs as little CPU as possible on a machine it shares with the server.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LoadResult", "run_load"]


@dataclass
class LoadResult:
    #: seconds per request, in completion order
    latencies_s: list[float] = field(default_factory=list)
    #: seconds from the first request sent to the last response read
    elapsed_s: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    #: the first response whose status was not the expected one
    unexpected: str | None = None

    @property
    def requests_per_s(self) -> float:
        return len(self.latencies_s) / self.elapsed_s if self.elapsed_s else 0.0


def _request_bytes(host: str, port: int, method: str, path: str, body: Any, headers: dict[str, str]) -> bytes:
    payload = b"" if body is None else json.dumps(body).encode()
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(payload)}"]
    if body is not None:
        lines.append("Content-Type: application/json")
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split(" ", 2)[1])
    fields = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    if "chunked" in fields.get("transfer-encoding", "").lower():
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                return status, body
            body += chunk[:-2]
    return status, await reader.readexactly(int(fields.get("content-length", "0")))


async def _connection(
    host: str, port: int, request: bytes, count: int, expect: int, result: LoadResult
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for _ in range(count):
            began = time.perf_counter()
            writer.write(request)
            status, body = await _read_response(reader)
            result.latencies_s.append(time.perf_counter() - began)
            result.statuses[status] += 1
            if status != expect and result.unexpected is None:
                result.unexpected = f"{status} {body[:300].decode(errors='replace')}"
    finally:
        writer.close()
        await writer.wait_closed()


def run_load(
    *,
    host: str,
    port: int,
    path: str,
    requests: int,
    concurrency: int,
    method: str = "POST",
    body: Any = None,
    headers: dict[str, str] | None = None,
    expect: int = 200,
) -> LoadResult:
    """Send ``requests`` requests over ``concurrency`` connections; what happened."""
    request = _request_bytes(host, port, method, path, body, headers or {})
    share, extra = divmod(requests, concurrency)
    counts = [share + (i < extra) for i in range(concurrency)]
    result = LoadResult()

    async def main() -> None:
        began = time.perf_counter()
        await asyncio.gather(*(_connection(host, port, request, n, expect, result) for n in counts if n))
        result.elapsed_s = time.perf_counter() - began

    asyncio.run(main())
    return result
