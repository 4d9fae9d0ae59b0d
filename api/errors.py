"""Errors → HTTP: the one ``exception_handlers`` table the app is built with.

Every error body is ``{"error": {"code", "message", "details"}}``
(:class:`api.schemas.ErrorBody`), made by :func:`error_response` and nowhere else.

======  ========================  ==============================================
status  code                      raised as
======  ========================  ==============================================
400     invalid_range             a Range header that cannot be parsed
400     bad_request               any other HTTPException(400) Starlette raises
401     unauthorized              :class:`Unauthorized` (``WWW-Authenticate: Bearer``)
404     not_found                 ``NotFound`` (run, source, profile, result), unknown path
405     method_not_allowed        a known path with another method
409     conflict                  ``InvalidTransition`` (details: run_id, status)
409     request_in_flight         ``RequestInFlight`` (details: run_id; ``Retry-After``)
409     already_exists            ``AlreadyExists``
409     unreadable_profile        ``UnreadableProfile`` (details: kind, name, problems)
413     payload_too_large         ``SourceTooLarge``, :class:`PayloadTooLarge`
416     range_not_satisfiable     :class:`RangeNotSatisfiable` (``Content-Range``)
422     validation_error          ``InvalidInput``: details ``[{field, message}]``
422     idempotency_conflict      ``IdempotencyConflict`` (a key reused with another body)
501     not_supported             ``NotSupported`` (dead letters on RabbitMQ or in thread mode)
503     store_unavailable         ``StoreUnavailable`` (``Retry-After``)
503     broker_unavailable        ``BrokerUnavailable``; :class:`RunNotEnqueued`
                                  names the run that was recorded all the same
503     not_ready                 :class:`NotReady` (``GET /readyz``)
503     tool_unavailable          ``GenerationError`` (espeak-ng missing or broken)
500     internal_error            anything else: a bug, logged with its traceback
======  ========================  ==============================================
"""

from __future__ import annotations

import http
import logging
from collections.abc import Callable, Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from podflow.errors import (
    AlreadyExists,
    BrokerUnavailable,
    Conflict,
    GenerationError,
    IdempotencyConflict,
    InvalidInput,
    InvalidTransition,
    NotFound,
    NotSupported,
    RequestInFlight,
    SourceTooLarge,
    StoreUnavailable,
    UnreadableProfile,
)
from podflow.lifecycle import Submission

from .schemas import ApiError, ErrorBody, respond

__all__ = [
    "POLL_AFTER_S",
    "RETRY_AFTER_S",
    "InvalidRange",
    "NotReady",
    "PayloadTooLarge",
    "RangeNotSatisfiable",
    "RunNotEnqueued",
    "Unauthorized",
    "error_response",
    "exception_handlers",
]

log = logging.getLogger(__name__)

#: what a 503 tells clients to wait before trying again
RETRY_AFTER_S = 5
#: what a 202 (and a 409 for a request in flight) suggests between two polls of the run
POLL_AFTER_S = 2


class Unauthorized(Exception):
    """The request lacks the bearer token PODFLOW_API_TOKEN requires, or carries a wrong one."""

    def __init__(self, message: str, *, invalid: bool) -> None:
        super().__init__(message)
        self.invalid = invalid


class PayloadTooLarge(Exception):
    """A request body over its limit (checked on Content-Length, then while reading),
    made by :meth:`api.limits.BodyLimit.refuse`: ``details`` name the limit and the
    setting behind it."""

    def __init__(self, message: str, *, details: dict[str, Any]) -> None:
        super().__init__(message)
        self.details = details


class RangeNotSatisfiable(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(f"range not satisfiable: the file has {size} bytes")
        self.size = size


class InvalidRange(Exception):
    """A Range header that cannot be parsed."""


class RunNotEnqueued(BrokerUnavailable):
    """A run was recorded but could not be handed to the broker; the sweep sends it later."""

    def __init__(self, submission: Submission) -> None:
        run = submission.run
        later = "when the broker is back" if run.mode == "queue" else "by the API process's next sweep"
        super().__init__(
            f"run {run.run_id} was recorded and will be enqueued {later}; do not resubmit ({submission.error})"
        )
        self.details = {"run_id": run.run_id, "status": str(run.status), "enqueued": False, "error": submission.error}


class NotReady(Exception):
    """A dependency does not answer (``GET /readyz``); ``checks`` says which."""

    def __init__(self, checks: Mapping[str, str]) -> None:
        failing = "; ".join(f"{name}: {state}" for name, state in checks.items() if state not in ("ok", "not used"))
        super().__init__(f"not ready: {failing}")
        self.checks = dict(checks)


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: Mapping[str, str] | None = None
) -> Response:
    """The error response: ``{"error": {"code", "message", "details"}}``."""
    return respond(ErrorBody(error=ApiError(code=code, message=message, details=details)), status, headers)


# -- handlers, most specific first ---------------------------------------------------


def _problems(exc: InvalidInput) -> list[dict[str, Any]]:
    """``{field, message}`` per problem (a validated body lists several)."""
    if isinstance(exc.details, list):
        return exc.details
    extra = exc.details if isinstance(exc.details, dict) else {}
    return [{**extra, "field": exc.field, "message": str(exc)}]


def _invalid_input(request: Request, exc: InvalidInput) -> Response:
    message = f"{exc.field}: {exc}" if exc.field else str(exc)
    return error_response(422, "validation_error", message, _problems(exc))


def _too_large(request: Request, exc: Exception) -> Response:
    details = _problems(exc) if isinstance(exc, InvalidInput) else getattr(exc, "details", None)
    return error_response(413, "payload_too_large", str(exc), details)


def _not_found(request: Request, exc: NotFound) -> Response:
    return error_response(404, "not_found", str(exc))


def _conflict(request: Request, exc: Conflict) -> Response:
    details = {"run_id": exc.run_id, "status": exc.status} if isinstance(exc, InvalidTransition) else None
    return error_response(409, "conflict", str(exc), details)


def _idempotency_conflict(request: Request, exc: IdempotencyConflict) -> Response:
    # 422, as the IETF draft "The Idempotency-Key HTTP Header Field" asks for a key reused with another body
    return error_response(422, "idempotency_conflict", str(exc))


def _in_flight(request: Request, exc: RequestInFlight) -> Response:
    headers = {"Retry-After": str(POLL_AFTER_S)}
    return error_response(409, "request_in_flight", str(exc), {"run_id": exc.run_id}, headers=headers)


def _already_exists(request: Request, exc: AlreadyExists) -> Response:
    return error_response(409, "already_exists", str(exc))


def _unreadable_profile(request: Request, exc: UnreadableProfile) -> Response:
    details = {"kind": exc.kind, "name": exc.name, "problems": exc.problems}
    return error_response(409, "unreadable_profile", str(exc), details)


def _unauthorized(request: Request, exc: Unauthorized) -> Response:
    challenge = 'Bearer realm="podflow"' + (', error="invalid_token"' if exc.invalid else "")
    return error_response(401, "unauthorized", str(exc), headers={"WWW-Authenticate": challenge})


def _range_not_satisfiable(request: Request, exc: RangeNotSatisfiable) -> Response:
    return error_response(416, "range_not_satisfiable", str(exc), headers={"Content-Range": f"bytes */{exc.size}"})


def _invalid_range(request: Request, exc: InvalidRange) -> Response:
    return error_response(400, "invalid_range", str(exc))


def _not_supported(request: Request, exc: NotSupported) -> Response:
    return error_response(501, "not_supported", str(exc))


def _unavailable(code: str) -> Callable[[Request, Exception], Response]:
    def handler(request: Request, exc: Exception) -> Response:
        details = getattr(exc, "details", None) if code == "broker_unavailable" else None
        if isinstance(exc, NotReady):
            details = exc.checks
        return error_response(503, code, str(exc), details, headers={"Retry-After": str(RETRY_AFTER_S)})

    return handler


_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def _http(request: Request, exc: HTTPException) -> Response:
    """Starlette's own errors (unknown path, wrong method, malformed form) in the same shape."""
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail
    if exc.status_code == 405 and exc.headers and "Allow" in exc.headers:
        message = f"{request.method} is not allowed on {request.url.path}; allowed: {exc.headers['Allow']}"
    elif message == http.HTTPStatus(exc.status_code).phrase:  # say which path
        message = f"{message}: {request.url.path}"
    return error_response(exc.status_code, code, message, headers=exc.headers)


def _internal(request: Request, exc: Exception) -> Response:
    """The last resort: a bug. Logged with its traceback; the client gets no traceback."""
    log.error("unhandled error in %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "internal server error; the server log has the details")


exception_handlers: dict[Any, Callable[[Request, Any], Response]] = {
    InvalidInput: _invalid_input,
    SourceTooLarge: _too_large,
    PayloadTooLarge: _too_large,
    NotFound: _not_found,
    Conflict: _conflict,
    IdempotencyConflict: _idempotency_conflict,
    RequestInFlight: _in_flight,
    AlreadyExists: _already_exists,
    UnreadableProfile: _unreadable_profile,
    Unauthorized: _unauthorized,
    RangeNotSatisfiable: _range_not_satisfiable,
    InvalidRange: _invalid_range,
    StoreUnavailable: _unavailable("store_unavailable"),
    BrokerUnavailable: _unavailable("broker_unavailable"),
    NotSupported: _not_supported,
    NotReady: _unavailable("not_ready"),
    GenerationError: _unavailable("tool_unavailable"),
    HTTPException: _http,
    Exception: _internal,
}
