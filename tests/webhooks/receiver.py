"""A webhook receiver on 127.0.0.1 and a free port: answers each POST as scripted, records it."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.servers import free_port

#: a scripted answer: an HTTP status, ("hang", seconds) to answer 200 only after that,
#: ("redirect", location), or ("trickle", seconds) / ("trickle-body", seconds) to send a
#: 200 one byte every that many seconds: the whole reply, or the body after prompt headers
Answer = int | tuple[str, float] | tuple[str, str]


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes


class Receiver:
    """Answers the n-th POST with ``script[n]`` (then ``then``); ``received`` lists them all."""

    def __init__(self, script: list[Answer], *, then: int = 200, port: int | None = None) -> None:
        self.script = list(script)
        self.then = then
        self.received: list[Received] = []
        self.port = port or free_port()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/podflow"

    def _answer(self) -> Answer:
        with self._lock:
            return self.script.pop(0) if self.script else self.then

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with receiver._lock:
                    receiver.received.append(Received(dict(self.headers.items()), body))
                answer = receiver._answer()
                if isinstance(answer, tuple) and answer[0] in ("trickle", "trickle-body"):
                    self._trickle(float(answer[1]), headers_too=answer[0] == "trickle")
                    return
                if isinstance(answer, tuple) and answer[0] == "hang":
                    time.sleep(float(answer[1]))
                    answer = 200
                if isinstance(answer, tuple):  # a redirect
                    self.send_response(307)
                    self.send_header("location", str(answer[1]))
                    self.end_headers()
                    return
                reply = b"x" * 5000 if answer >= 400 else b"thanks"
                try:
                    self.send_response(answer)
                    self.send_header("content-length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                except OSError:
                    pass  # the sender gave up waiting

            def _trickle(self, every_s: float, *, headers_too: bool) -> None:
                """A 200 with a 100-byte body, one byte every ``every_s``, until the sender hangs up."""
                self.close_connection = True
                body = b"t" * 100
                head = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(body)
                try:
                    if not headers_too:
                        self.wfile.write(head)
                        self.wfile.flush()
                    for byte in (head + body if headers_too else body):
                        time.sleep(every_s)
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                except OSError:
                    pass  # the sender hung up: what the test waits for

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
