"""The HTTP client of the commands that talk to the API (``podflow submit``).

It speaks the API of README.md, "HTTP API": sources go up as multipart files,
runs are submitted with an ``Idempotency-Key``, and a run is followed through
its Server-Sent Events. Every failure becomes an :class:`ApiError` carrying one
line to print and the exit code to leave with:

- no answer at all (nothing listens, a timeout, a dropped connection):
  69 (RET_UNAVAILABLE), :class:`ApiUnreachable`;
- an error answer: the ``message`` of its JSON error body and its status;
  69 for 502, 503 and 504, 70 (RET_ERROR) for other 5xx, 1 (RET_FAILED_RUN)
  for a 4xx, whose message names the field at fault.

A request whose answer may have been lost (a timeout, a dropped connection, a
502/503/504 from a proxy or a store blip) is sent again, at most
:data:`ATTEMPTS` times in all; that is safe because uploads are deduplicated by
content and submits carry an Idempotency-Key. A refused connection means
nothing was sent and fails at once.
"""

from __future__ import annotations

import contextlib
import http
import json
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from ..exitcodes import RET_ERROR, RET_FAILED_RUN, RET_UNAVAILABLE
from ..sources import EXTENSIONS
from ..states import TERMINAL

__all__ = ["ATTEMPTS", "ApiClient", "ApiError", "ApiUnreachable", "SseEvent", "Submitted", "follow_run", "parse_sse"]

#: how many times a request whose answer was lost is sent
ATTEMPTS = 3
#: seconds before the second attempt; doubled for each further one
RETRY_DELAY_S = 0.5
#: the API sends a keep-alive every 15 s: a stream silent this long has dropped
STREAM_READ_TIMEOUT_S = 45.0
_GATEWAY = {502, 503, 504}


class ApiError(Exception):
    """The API refused a request, or could not be reached: ``str()`` is one line to show."""

    def __init__(
        self, message: str, *, exit_code: int, status: int | None = None, code: str | None = None, details: Any = None
    ) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.status = status
        self.code = code
        self.details = details


class ApiUnreachable(ApiError):
    """No answer: nothing listens at the URL, or the connection timed out or dropped."""

    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=RET_UNAVAILABLE)


@dataclass(frozen=True, slots=True)
class Submitted:
    """The answer to a submit: the run, and whether it was handed to the broker."""

    run_id: str
    status: str
    #: False when the API recorded the run but the broker was down: the sweep enqueues it later
    enqueued: bool
    #: True when the Idempotency-Key had been used already: this is the run it made
    replayed: bool
    #: the API's note when the run was not enqueued
    note: str | None
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SseEvent:
    event: str
    data: dict[str, Any]
    id: str | None = None


def parse_sse(lines: Iterator[str]) -> Iterator[SseEvent]:
    """Server-Sent Events from a stream's lines; comments (keep-alives) and events
    whose data is not a JSON object are skipped."""
    fields: dict[str, list[str]] = {}
    for line in lines:
        if not line:
            try:
                data = json.loads("\n".join(fields["data"]))
            except (KeyError, ValueError):
                data = None
            if isinstance(data, dict):
                yield SseEvent(fields.get("event", ["message"])[-1], data, fields.get("id", [None])[-1])
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields.setdefault(name, []).append(value.removeprefix(" "))


def _refusal(response: httpx.Response) -> ApiError:
    """The error a non-2xx answer stands for, with its JSON error body's message."""
    status = response.status_code
    code = RET_UNAVAILABLE if status in _GATEWAY else RET_ERROR if status >= 500 else RET_FAILED_RUN
    try:
        error = response.json()["error"]
        message, name, details = str(error["message"]), str(error["code"]), error.get("details")
    except (ValueError, KeyError, TypeError):  # not the API's error body: a proxy's page, say
        try:
            phrase = f" {http.HTTPStatus(status).phrase}"
        except ValueError:
            phrase = ""
        request = response.request
        return ApiError(f"HTTP {status}{phrase} from {request.method} {request.url}", exit_code=code, status=status)
    if status == 401:
        message += "; pass the API's token with --token or set PODFLOW_API_TOKEN"
    return ApiError(f"{message} (HTTP {status} {name})", exit_code=code, status=status, code=name, details=details)


def _lost(exc: httpx.TransportError, url: str) -> ApiUnreachable:
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return ApiUnreachable(f"cannot reach the API at {url} ({exc}); is it running? (make run, or pass --api URL)")
    if isinstance(exc, httpx.TimeoutException):
        return ApiUnreachable(f"the API at {url} did not answer in time ({type(exc).__name__})")
    return ApiUnreachable(f"lost the connection to the API at {url} ({exc or type(exc).__name__})")


class ApiClient:
    """The API at ``base_url`` (a path prefix, for an API behind a proxy, is kept).

    ``transport`` replaces the network, for tests; ``sleep`` paces retries.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str = "",
        timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=base_url, headers=headers, timeout=httpx.Timeout(timeout_s, connect=5.0), transport=transport
        )

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def url(self, path: str) -> str:
        """The absolute URL of a path the API answered with (a run's links)."""
        return str(self._http.base_url.join(path))

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The answer to a request, sent again while its answer is lost (see the module docstring).

        Raises:
          ApiUnreachable: still no answer after :data:`ATTEMPTS` tries.
        """
        delay = RETRY_DELAY_S
        for attempt in range(1, ATTEMPTS + 1):
            try:
                response = self._http.request(method, path, **kwargs)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # nothing was sent
                raise _lost(exc, self.base_url) from None
            except httpx.TransportError as exc:
                if attempt == ATTEMPTS:
                    raise _lost(exc, self.base_url) from None
            else:
                lost = response.status_code in _GATEWAY and _refusal(response).code != "broker_unavailable"
                if not lost or attempt == ATTEMPTS:
                    return response
            self._sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def _json(self, method: str, path: str, *, ok: tuple[int, ...] = (200,), **kwargs: Any) -> dict[str, Any]:
        response = self._send(method, path, **kwargs)
        if response.status_code not in ok:
            raise _refusal(response)
        body: dict[str, Any] = response.json()
        return body

    def upload(self, path: Path, content: bytes) -> dict[str, Any]:
        """Upload a document as a source: its content type comes from its extension
        (an unknown one is left to the API, which names it). The source, with
        ``created`` false when the same text was stored already.

        Raises:
          ApiError: refused (422 naming the field, 413 too large) or unreachable.
        """
        content_type = EXTENSIONS.get(path.suffix.lower(), "application/octet-stream")
        files = {"file": (path.name, content, content_type)}
        return self._json("POST", "/api/sources", ok=(200, 201), files=files)

    def submit(self, body: Mapping[str, Any], *, idempotency_key: str) -> Submitted:
        """``POST /api/podcast/generate``. A 503 naming a run that was recorded while
        the broker was down is not an error: that run is returned, not enqueued.

        Raises:
          ApiError: refused (422 naming the field, 409 a key reused with another body) or unreachable.
        """
        headers = {"Idempotency-Key": idempotency_key}
        response = self._send("POST", "/api/podcast/generate", json=dict(body), headers=headers)
        if response.status_code in (200, 202):
            answer = response.json()
            replayed = response.status_code == 200
            return Submitted(answer["run_id"], answer["status"], True, replayed, None, answer)
        refusal = _refusal(response)
        details = refusal.details if isinstance(refusal.details, dict) else {}
        if refusal.code == "broker_unavailable" and details.get("run_id"):
            message = str(refusal).removesuffix(f" (HTTP {refusal.status} {refusal.code})")
            return Submitted(details["run_id"], details.get("status", "PENDING"), False, False, message, details)
        raise refusal

    def check_profiles(self, episode_profile: str, speaker_profile: str) -> None:
        """Both profiles exist (before anything is uploaded).

        Raises:
          ApiError: a profile is unknown (exit 1, naming it and the known ones), or the API refused or is away.
        """
        for kind, name, option in (("episode", episode_profile, "--episode-profile"),
                                   ("speaker", speaker_profile, "--speaker-profile")):  # fmt: skip
            response = self._send("GET", f"/api/podcast/{kind}-profiles/{quote(name, safe='')}")
            if response.status_code == 200:
                continue
            if response.status_code != 404:
                raise _refusal(response)
            known = sorted(p["name"] for p in self._json("GET", f"/api/podcast/{kind}-profiles")["profiles"])
            raise ApiError(
                f"{option}: unknown {kind} profile {name!r}; known: {', '.join(known) or 'none'} (HTTP 404 not_found)",
                exit_code=RET_FAILED_RUN,
                status=404,
                code="not_found",
            )

    def get_run(self, run_id: str) -> dict[str, Any]:
        """The whole run (``GET /api/podcast/runs/{run_id}``).

        Raises:
          ApiError: unknown run (404) or unreachable.
        """
        return self._json("GET", f"/api/podcast/runs/{run_id}")

    def events(self, run_id: str) -> Generator[SseEvent, None, None]:
        """The run's Server-Sent Events until the API ends the stream.

        Raises:
          ApiUnreachable: the stream could not be opened, or dropped.
          ApiError: the API refused it (404: unknown run).
        """
        timeout = httpx.Timeout(STREAM_READ_TIMEOUT_S, connect=5.0)
        try:
            with self._http.stream("GET", f"/api/podcast/runs/{run_id}/events", timeout=timeout) as response:
                if response.status_code != 200:
                    response.read()
                    raise _refusal(response)
                yield from parse_sse(response.iter_lines())
        except httpx.TransportError as exc:
            raise _lost(exc, self.base_url) from None


def follow_run(
    client: ApiClient,
    run_id: str,
    on_update: Callable[[Mapping[str, Any]], None],
    *,
    give_up_after_s: float = 300.0,
    retry_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Follow a run until its status is terminal; the run's last state (the fields
    of a ``RunEvent``: run_id, status, attempt, progress, error, ...).

    ``on_update`` gets each state as it comes. When the event stream drops, or
    ends before a terminal status (the API restarted), the run is read once
    with ``GET /api/podcast/runs/{run_id}`` and the stream opened again
    ``retry_s`` later, for as long as the API answers within ``give_up_after_s``.

    Raises:
      ApiUnreachable: no answer from the API for ``give_up_after_s``.
      ApiError: the API refused (the run is unknown, or was deleted).
    """
    silent_since: float | None = None
    while True:
        try:
            with contextlib.closing(client.events(run_id)) as events:
                for event in events:
                    if event.event == "deleted":
                        raise ApiError(f"run {run_id} was deleted", exit_code=RET_FAILED_RUN)
                    on_update(event.data)
                    if event.data.get("status") in TERMINAL:
                        return event.data
        except ApiError as exc:
            if not _passing(exc):
                raise
        # the stream dropped, or ended before a terminal status (a restarted API):
        # read the run, then listen again
        try:
            state = client.get_run(run_id)
        except ApiError as exc:
            if not _passing(exc):
                raise
            silent_since = clock() if silent_since is None else silent_since
            if clock() - silent_since >= give_up_after_s:
                raise ApiUnreachable(f"{exc}; gave up following {run_id} after {give_up_after_s:g} s") from None
        else:
            silent_since = None
            on_update(state)
            if state["status"] in TERMINAL:
                return state
        sleep(retry_s)


def _passing(exc: ApiError) -> bool:
    """Whether following may go on after ``exc``: the API is away, not refusing."""
    return isinstance(exc, ApiUnreachable) or exc.status in _GATEWAY
