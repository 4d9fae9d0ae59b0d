"""A fake OpenAI-compatible provider: real HTTP on a free port, for the real ``openai`` SDK.

Endpoints (under ``/v1``, so the SDK's ``base_url`` is :attr:`FakeProvider.url`):

- ``POST /v1/chat/completions``: a ``chat.completion``. With ``response_format``
  ``{"type": "json_schema", ...}`` the assistant's content is JSON generated from
  the schema (every property, ``minItems`` items or a few, ``enum`` values in turn,
  recognisable strings ``"Fake <field> <n>."``), so it honours any schema. With
  ``vary_by_prompt`` the strings carry a digest of the messages
  (``"Fake <field> <n> (<digest>)."``): like a real model, another prompt gets another reply.
- ``POST /v1/audio/speech``: real audio of the requested ``response_format``
  (``wav`` and ``pcm`` written here; ``mp3``, ``flac``, ``opus``, ``aac`` by
  ffmpeg), a 24 kHz mono tone lasting :attr:`seconds_per_char` per input character.
- ``GET /v1/models``: the models list.

Scripting: :meth:`script` queues replies for the next calls to an endpoint
(``"chat"`` or ``"speech"``): a status with headers (429 with ``Retry-After``,
500, 401...), raw content (not JSON), a delay, or a hang that lasts until the
client gives up (recorded as ``aborted``). :attr:`latency_s` adds a fixed delay
per endpoint. :attr:`api_key` (when set) must come as the bearer token, else 401;
:attr:`voices` (when set) lists the voices speech knows, else 400.

Counters: :meth:`calls` (every request with its times, status and body),
:meth:`peak` (the most calls in flight at once) per endpoint.

Run in-process (``with FakeProvider() as fake``) or as a process:
``python -m tests.fake_provider --port N [--latency-chat S] [--latency-speech S]``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import select
import shutil
import socket
import subprocess
import threading
import time
import wave
from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Call", "FakeProvider", "Reply", "schema_instance"]

RATE = 24000
_CONTENT_TYPES = {
    "mp3": "audio/mpeg",
    "wav": "audio/wav",
    "flac": "audio/flac",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "pcm": "audio/pcm",
}
_FFMPEG_FORMATS = {"mp3": "mp3", "flac": "flac", "opus": "ogg", "aac": "adts"}
_ENDPOINTS = {"/v1/chat/completions": "chat", "/v1/audio/speech": "speech"}


@dataclass(frozen=True)
class Reply:
    """One scripted answer. ``hang_s``: wait that long (or until the client leaves)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    #: chat: the assistant's content, as a JSON value (serialised) or a raw string
    content: Any = None
    #: an error body; by default OpenAI's ``{"error": {...}}`` with a message per status
    error: str | None = None
    delay_s: float = 0.0
    hang_s: float = 0.0
    finish_reason: str = "stop"


@dataclass
class Call:
    endpoint: str
    started: float
    body: dict[str, Any]
    ended: float | None = None
    status: int | None = None
    aborted: bool = False


def _strings() -> Iterator[int]:
    n = 0
    while True:
        n += 1
        yield n


def schema_instance(
    schema: dict[str, Any],
    counter: Iterator[int] | None = None,
    name: str = "value",
    enums: dict[str, int] | None = None,
    tag: str = "",
) -> Any:
    """A JSON value that ``schema`` accepts (the subset structured output uses): strings
    numbered in order (with `` (<tag>)`` when given), each ``enum``'s values taken in turn."""
    counter = counter or _strings()
    enums = {} if enums is None else enums
    if "enum" in schema:
        values = schema["enum"]
        taken = enums.get(name, 0)
        enums[name] = taken + 1
        return values[taken % len(values)]
    if "anyOf" in schema:
        return schema_instance(schema["anyOf"][0], counter, name, enums, tag)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next(k for k in kind if k != "null")
    if kind == "object":
        properties = schema.get("properties", {}).items()
        return {key: schema_instance(sub, counter, key, enums, tag) for key, sub in properties}
    if kind == "array":
        low, high = schema.get("minItems", 0), schema.get("maxItems", 1000)
        count = min(high, max(low, 2))
        return [schema_instance(schema.get("items", {}), counter, name, enums, tag) for _ in range(count)]
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 1))
    if kind == "boolean":
        return True
    return f"Fake {name} {next(counter)}{f' ({tag})' if tag else ''}."


_PERIOD = b"".join(  # one period of a 240 Hz tone at 24 kHz: 100 samples
    round(3000 * math.sin(2 * math.pi * i / 100)).to_bytes(2, "little", signed=True) for i in range(100)
)


def tone(seconds: float) -> bytes:
    """Mono 16-bit PCM at 24 kHz: a quiet 240 Hz tone, ``seconds`` long (to the sample)."""
    count = max(1, round(seconds * RATE))
    return (_PERIOD * (count // 100 + 1))[: 2 * count]


def encode(pcm: bytes, fmt: str) -> bytes:
    """``pcm`` (24 kHz mono s16le) in the container/codec ``fmt``."""
    if fmt == "pcm":
        return pcm
    if fmt == "wav":
        out = io.BytesIO()
        with wave.open(out, "wb") as w:
            w.setparams((1, 2, RATE, 0, "NONE", "not compressed"))
            w.writeframes(pcm)
        return out.getvalue()
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RuntimeError("the fake provider needs ffmpeg for response_format=" + fmt)
    done = subprocess.run(
        [ffmpeg, "-v", "error", "-f", "s16le", "-ar", str(RATE), "-ac", "1", "-i", "pipe:0",
         "-f", _FFMPEG_FORMATS[fmt], "pipe:1"],
        input=pcm, capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    return done.stdout


class FakeProvider:
    """The fake server. ``start()``/``stop()``, or use it as a context manager."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_s: dict[str, float] | None = None,
        seconds_per_char: float = 0.01,
        api_key: str | None = None,
        voices: set[str] | None = None,
        vary_by_prompt: bool = False,
    ) -> None:
        self.latency_s: dict[str, float] = dict(latency_s or {})
        self.vary_by_prompt = vary_by_prompt
        self.seconds_per_char = seconds_per_char
        self.api_key = api_key
        self.voices = voices
        self._scripts: dict[str, deque[Reply]] = defaultdict(deque)
        self._calls: list[Call] = []
        self._in_flight: dict[str, int] = defaultdict(int)
        self._peak: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer((host, port), _handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The SDK's ``base_url``: ``http://127.0.0.1:<port>/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeProvider:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-provider", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- scripting and counters -----------------------------------------------------
    def script(self, endpoint: str, *replies: Reply) -> None:
        """The next ``len(replies)`` calls to ``endpoint`` get these answers, in order."""
        with self._lock:
            self._scripts[endpoint].extend(replies)

    def calls(self, endpoint: str | None = None) -> list[Call]:
        with self._lock:
            return [c for c in self._calls if endpoint is None or c.endpoint == endpoint]

    def peak(self, endpoint: str) -> int:
        with self._lock:
            return self._peak[endpoint]

    def in_flight(self, endpoint: str) -> int:
        with self._lock:
            return self._in_flight[endpoint]

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()
            self._peak.clear()
            self._scripts.clear()

    # -- what the handler calls -------------------------------------------------------
    def _begin(self, endpoint: str, body: dict[str, Any]) -> tuple[Call, Reply]:
        with self._lock:
            call = Call(endpoint=endpoint, started=time.time(), body=body)
            self._calls.append(call)
            self._in_flight[endpoint] += 1
            self._peak[endpoint] = max(self._peak[endpoint], self._in_flight[endpoint])
            script = self._scripts[endpoint]
            reply = script.popleft() if script else Reply()
        return call, reply

    def _end(self, call: Call, status: int | None, *, aborted: bool = False) -> None:
        with self._lock:
            call.ended, call.status, call.aborted = time.time(), status, aborted
            self._in_flight[call.endpoint] -= 1

    def _wait(self, seconds: float, sock: socket.socket) -> bool:
        """Sleep ``seconds``; False as soon as the client closed its connection."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0 and not self._stopping.is_set():
            readable, _, _ = select.select([sock], [], [], min(left, 0.02))
            if readable:
                try:
                    if sock.recv(1, socket.MSG_PEEK) == b"":
                        return False
                except OSError:
                    return False
        return True

    def _chat(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        content = reply.content
        if content is None:
            fmt = body.get("response_format") or {}
            if fmt.get("type") == "json_schema":
                prompt = json.dumps(body.get("messages"), sort_keys=True).encode()
                tag = hashlib.sha256(prompt).hexdigest()[:6] if self.vary_by_prompt else ""
                content = schema_instance(fmt["json_schema"]["schema"], tag=tag)
            else:
                content = "Fake reply."
        text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
        return {
            "id": f"chatcmpl-fake-{len(self._calls)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": reply.finish_reason,
                    "logprobs": None,
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
        }

    def _speech(self, body: dict[str, Any]) -> tuple[bytes, str]:
        fmt = body.get("response_format", "mp3")
        seconds = min(30.0, max(0.2, len(body.get("input", "")) * self.seconds_per_char))
        return encode(tone(seconds), fmt), _CONTENT_TYPES[fmt]


_MESSAGES = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("invalid_request_error", "Incorrect API key provided."),
    403: ("permission_denied", "You do not have access to this model."),
    404: ("invalid_request_error", "The model does not exist."),
    422: ("invalid_request_error", "Unprocessable request."),
    429: ("rate_limit_exceeded", "Too many concurrent requests for this model."),
    500: ("server_error", "The server had an error while processing your request."),
    503: ("server_error", "The engine is currently overloaded."),
}


def _handler(fake: FakeProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            if self.path.rstrip("/") == "/v1/models":
                self._json(200, {"object": "list", "data": [{"id": "fake", "object": "model", "owned_by": "fake"}]})
            else:
                self._json(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            endpoint = _ENDPOINTS.get(self.path.split("?")[0].rstrip("/"))
            if endpoint is None:
                self._json(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})
                return
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                body = {}
            call, reply = fake._begin(endpoint, body)
            status: int | None = None
            try:
                wait = fake.latency_s.get(endpoint, 0.0) + reply.delay_s + reply.hang_s
                if wait and not fake._wait(wait, self.connection):
                    fake._end(call, None, aborted=True)
                    self.close_connection = True
                    return
                status = self._answer(endpoint, body, reply)
            except (BrokenPipeError, ConnectionResetError):
                fake._end(call, status, aborted=True)
                return
            fake._end(call, status)

        def _answer(self, endpoint: str, body: dict[str, Any], reply: Reply) -> int:
            status = reply.status
            auth = self.headers.get("authorization", "")
            if fake.api_key is not None and auth != f"Bearer {fake.api_key}":
                status = 401
            elif (
                endpoint == "speech" and status == 200 and fake.voices is not None
                and body.get("voice") not in fake.voices
            ):  # fmt: skip
                return self._error(400, {}, f"Voice '{body.get('voice')}' not found.")
            if status != 200:
                return self._error(status, reply.headers, reply.error)
            if endpoint == "chat":
                self._json(200, fake._chat(body, reply), reply.headers)
            else:
                audio, content_type = fake._speech(body)
                self._send(200, audio, content_type, reply.headers)
            return 200

        def _error(self, status: int, headers: dict[str, str], message: str | None) -> int:
            kind, default = _MESSAGES.get(status, ("error", f"HTTP {status}"))
            self._json(status, {"error": {"message": message or default, "type": kind, "code": None}}, headers)
            return status

        def _json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
            self._send(status, json.dumps(data, ensure_ascii=False).encode(), "application/json", headers)

        def _send(self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-chat", type=float, default=0.0)
    parser.add_argument("--latency-speech", type=float, default=0.0)
    parser.add_argument("--seconds-per-char", type=float, default=0.01)
    args = parser.parse_args()
    fake = FakeProvider(
        port=args.port,
        latency_s={"chat": args.latency_chat, "speech": args.latency_speech},
        seconds_per_char=args.seconds_per_char,
    )
    print(f"fake provider on {fake.url}", flush=True)
    fake._server.serve_forever()


if __name__ == "__main__":
    main()
