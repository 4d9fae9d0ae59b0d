"""A total time limit on one HTTP exchange, whatever phase it is in.

httpx's timeouts bound each phase (connect, each write, each read), not the
whole: a receiver that sends its reply one byte at a time keeps every read
short and the POST open for as long as it likes — past the delivery's lease,
when a second claim sends the event again. A :class:`Deadline` follows the
exchange's sockets through httpx's ``trace`` request extension (each TCP
connection as it is opened, and its TLS socket) and shuts them down when the
time is up, from a timer thread: a blocked read or write then returns at once
and httpx raises. Shutting down (rather than closing) is what wakes a thread
blocked in ``recv`` on Linux. The caller asks :attr:`Deadline.passed` to tell
that error from a receiver's fault.

Name resolution happens before there is a socket and is bounded by the
resolver, not by the deadline.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import TracebackType
from typing import Any

__all__ = ["Deadline"]

#: the trace events whose ``return_value`` is a connection's network stream
_STREAM_EVENTS = (".connect_tcp.complete", ".start_tls.complete")


class Deadline:
    """Ends an HTTP exchange ``timeout_s`` after it is entered (a context manager).

    Pass :meth:`trace` as the request's ``trace`` extension, and :meth:`watch` any
    network stream obtained otherwise (a reused connection's, from the response).
    """

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._at = time.monotonic() + timeout_s
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._expired = False
        self._timer = threading.Timer(timeout_s, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> Deadline:
        self._at = time.monotonic() + self.timeout_s
        self._timer.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._timer.cancel()

    @property
    def passed(self) -> bool:
        """True once the time is up."""
        return self._expired or time.monotonic() >= self._at

    def remaining_s(self) -> float:
        """The time left (0 once it is up)."""
        return max(0.0, self._at - time.monotonic())

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpx's ``trace`` extension: watch each connection's stream as it is opened."""
        if event.endswith(_STREAM_EVENTS):
            self.watch(info.get("return_value"))

    def watch(self, stream: Any) -> None:
        """Shut ``stream``'s socket down at the deadline (at once if it has passed)."""
        sock = stream.get_extra_info("socket") if hasattr(stream, "get_extra_info") else None
        if not isinstance(sock, socket.socket):
            return
        with self._lock:
            if not self._expired:
                self._sockets.append(sock)
                return
        _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self._expired = True
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    # the plain socket's method, also for a TLS socket: SSLSocket.shutdown would
    # drop the TLS state under the thread still reading through it
    # (OSError: already closed, the exchange having ended, or detached when TLS wrapped it)
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
