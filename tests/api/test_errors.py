"""The exception_handlers table: each error becomes its status and code, in the one error shape."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response

from api.app import ROUTE_TABLES, create_app
from api.errors import RunNotEnqueued
from api.routing import RouteTable
from podflow.errors import (
    AlreadyExists,
    BrokerUnavailable,
    IdempotencyConflict,
    InvalidInput,
    InvalidTransition,
    ProfileNotFound,
    RequestInFlight,
    SourceTooLarge,
    StoreUnavailable,
    ToolMissing,
)
from podflow.lifecycle import Submission
from tests.api.conftest import Api, error, serve, settings_for
from tests.conftest import make_run

RUN = make_run()
RAISED: dict[str, Exception] = {
    "invalid": InvalidInput("unknown profile 'x'", field="episode_profile", details={"known": ["a"]}),
    "too_large": SourceTooLarge("source too large", field="file"),
    "not_found": ProfileNotFound("x"),
    "transition": InvalidTransition("cannot cancel: run is SUCCESS", run_id="run_1", status="SUCCESS"),
    "idempotency": IdempotencyConflict("key reused"),
    "in_flight": RequestInFlight("still in flight", run_id="run_1"),
    "exists": AlreadyExists("profile 'x' already exists"),
    "store": StoreUnavailable("SQLite store unavailable: disk I/O error"),
    "broker": BrokerUnavailable("broker unreachable"),
    "tool": ToolMissing("espeak-ng is not installed"),
    "bug": ZeroDivisionError("division by zero"),
}
EXPECTED = {
    "invalid": (422, "validation_error"),
    "too_large": (413, "payload_too_large"),
    "not_found": (404, "not_found"),
    "transition": (409, "conflict"),
    "idempotency": (422, "idempotency_conflict"),
    "in_flight": (409, "request_in_flight"),
    "exists": (409, "already_exists"),
    "store": (503, "store_unavailable"),
    "broker": (503, "broker_unavailable"),
    "tool": (503, "tool_unavailable"),
    "bug": (500, "internal_error"),
}

failing = RouteTable("failing")


@failing.get("/api/raise/{name}", {200: None})
def raise_(request: Request, name: str) -> Response:
    """Raise the named error."""
    raise RAISED[name]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    settings = settings_for(tmp_path_factory.mktemp("errors"), broker_url="redis://127.0.0.1:1/0")
    with serve(create_app(settings, tables=[*ROUTE_TABLES, failing])) as served:
        yield served


def get(app: Api, path: str) -> httpx.Response:
    """GET on a connection of its own: after a 500, Starlette re-raises the error to
    the server (so that it logs it too) and uvicorn closes that connection."""
    return httpx.get(app.url + path, timeout=10)


@pytest.mark.parametrize("name", list(RAISED))
def test_each_error_becomes_its_status_and_code(app: Api, name: str, caplog: pytest.LogCaptureFixture) -> None:
    status, code = EXPECTED[name]
    with caplog.at_level(logging.ERROR, logger="api.errors"):
        body = error(get(app, f"/api/raise/{name}"), status, code)
    assert str(RAISED[name]) in body["message"] or status == 500
    assert bool(caplog.records) == (status == 500)  # only a bug is logged, with its traceback


def test_a_bug_answers_without_its_traceback(app: Api) -> None:
    body = error(get(app, "/api/raise/bug"), 500, "internal_error")
    assert "Traceback" not in str(body) and "ZeroDivisionError" not in str(body)


def test_details_name_fields_and_runs(app: Api) -> None:
    invalid = error(app.client.get("/api/raise/invalid"), 422, "validation_error")
    assert invalid["message"] == "episode_profile: unknown profile 'x'"
    assert invalid["details"] == [{"field": "episode_profile", "message": "unknown profile 'x'", "known": ["a"]}]
    assert error(app.client.get("/api/raise/transition"), 409, "conflict")["details"] == {
        "run_id": "run_1",
        "status": "SUCCESS",
    }


def test_unavailable_dependencies_say_when_to_retry(app: Api) -> None:
    for name in ("store", "broker"):
        assert app.client.get(f"/api/raise/{name}").headers["retry-after"] == "5"
    in_flight = app.client.get("/api/raise/in_flight")
    assert in_flight.headers["retry-after"] == "2" and in_flight.json()["error"]["details"] == {"run_id": "run_1"}


def test_starlettes_own_errors_have_the_same_shape(app: Api) -> None:
    assert "/nowhere" in error(app.client.get("/nowhere"), 404, "not_found")["message"]
    wrong_method = app.client.delete("/healthz")
    error(wrong_method, 405, "method_not_allowed")
    assert wrong_method.headers["allow"] == "GET, HEAD, OPTIONS"
    assert error(wrong_method, 405, "method_not_allowed")["message"] == (
        "DELETE is not allowed on /healthz; allowed: GET, HEAD, OPTIONS"
    )
    error(app.client.get("/api/raise/bug/"), 404, "not_found")  # a stray slash is not redirected


def test_a_run_not_enqueued_names_the_run() -> None:
    err = RunNotEnqueued(Submission(RUN, created=True, enqueued=False, error="broker unreachable"))
    assert err.details == {"run_id": RUN.run_id, "status": "PENDING", "enqueued": False, "error": "broker unreachable"}
    assert str(err).startswith(f"run {RUN.run_id} was recorded")
