"""Runs: submit, create and start, list and get, cancel, retry, delete.

Every use-case is :mod:`podflow.lifecycle`'s; this module only maps them to HTTP.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response

from podflow import lifecycle
from podflow.errors import InvalidInput
from podflow.lifecycle import Submission
from podflow.models import RunRequest

from ..errors import POLL_AFTER_S, RunNotEnqueued
from ..routing import Header, RouteTable
from ..schemas import RunList, RunListQuery, RunView, SubmitResponse, paths, respond, run_path
from ..services import services

__all__ = ["IDEMPOTENCY_KEY", "idempotency_key", "routes"]

routes = RouteTable("runs")

_KEY = re.compile(r"[!-~]{1,255}")
IDEMPOTENCY_KEY = Header(
    "Idempotency-Key",
    "makes retries safe: the same key and body return the same run (200); the same key with another "
    "body is a 422, and while the first request is still handing its run over, a 409 (Retry-After). "
    "Keys are shared by every route that accepts one, and kept as long as the run they made.",
    {"type": "string", "pattern": f"^{_KEY.pattern}$"},
)


def idempotency_key(request: Request) -> str | None:
    """The request's Idempotency-Key: 1 to 255 visible ASCII characters.

    Raises:
      InvalidInput: a malformed key.
    """
    key = request.headers.get("idempotency-key")
    if key is not None and not _KEY.fullmatch(key):
        raise InvalidInput("must be 1 to 255 visible ASCII characters", field="Idempotency-Key")
    return key


def _located(request: Request, run_id: str, *, poll: bool = False) -> dict[str, str]:
    """``Location`` (the run), and with ``poll`` a ``Retry-After`` polling hint."""
    headers = {"Location": run_path(request, run_id)}
    if poll:
        headers["Retry-After"] = str(POLL_AFTER_S)
    return headers


def _accepted(request: Request, submission: Submission) -> Response:
    """202 for a run handed to the broker (or pool); 503 naming it when it could not be."""
    if not submission.enqueued:
        raise RunNotEnqueued(submission)
    run = submission.run
    return respond(SubmitResponse.of(run, request), 202, _located(request, run.run_id, poll=True))


def _replayed(request: Request, submission: Submission, body: RunRequest, *, retry_of: str | None = None) -> Response:
    run = lifecycle.replay(submission, body, now=services(request).clock(), retry_of=retry_of)
    return respond(SubmitResponse.of(run, request), 200, _located(request, run.run_id))


@routes.post(
    "/api/podcast/generate",
    {202: SubmitResponse, 200: SubmitResponse},
    body=RunRequest,
    headers=(IDEMPOTENCY_KEY,),
    errors=(409,),
)
def generate(request: Request, body: RunRequest) -> Response:
    """Submit a run: record it, then enqueue it.

    202 with the new run (`Location`: the run; `Retry-After`: when to poll it). An
    unknown profile or source is a 422 naming the field, and nothing is recorded.
    `priority` (`high`, `normal`, `low`) puts it in a band: queued high runs start
    before normal ones submitted earlier, normal before low. `start_at` (ISO 8601
    with a zone, in the future, at most PODFLOW_MAX_SCHEDULE_AHEAD ahead; else a
    422 naming it) keeps it PENDING, scheduled, until then; it can be cancelled meanwhile.
    With an Idempotency-Key already used for the same body, 200 with that run (409
    while that first request is still in flight; 422 for another body). The response
    also carries `celery_task_id` (= `message_id`, deprecated) for clients of the old
    module. If the broker is down the run is still recorded: 503
    `broker_unavailable` names it (details: run_id, status, enqueued: false) and
    the sweep enqueues it once the broker is back; do not resubmit.
    """
    api = services(request)
    submission = lifecycle.submit(
        api.store,
        api.dispatcher,
        body,
        now=api.clock(),
        idempotency_key=idempotency_key(request),
        marks=api.marks,
        webhooks=api.settings.webhook_targets,
        max_schedule_ahead_s=api.settings.max_schedule_ahead_s,
        schedule_horizon_s=api.settings.schedule_horizon_s,
    )
    if not submission.created:
        return _replayed(request, submission, body)
    return _accepted(request, submission)


@routes.post(
    "/api/podcast/runs", {201: RunView, 200: RunView}, body=RunRequest, headers=(IDEMPOTENCY_KEY,), errors=(409,)
)
def create_run(request: Request, body: RunRequest) -> Response:
    """Create a run without starting it (start it with POST /api/podcast/runs/{run_id}/start).

    201 with the run (`Location`: the run); 200 with the existing run for a repeated
    Idempotency-Key and body (422 for another body).
    """
    api = services(request)
    key = idempotency_key(request)
    run, created = lifecycle.create(
        api.store,
        api.dispatcher,
        body,
        now=api.clock(),
        idempotency_key=key,
        webhooks=api.settings.webhook_targets,
        max_schedule_ahead_s=api.settings.max_schedule_ahead_s,
    )
    if not created:
        lifecycle.ensure_same_request(run, body)
    return respond(RunView.of(run, paths(request)), 201 if created else 200, _located(request, run.run_id))


@routes.post("/api/podcast/runs/{run_id}/start", {202: SubmitResponse}, errors=(409,))
def start_run(request: Request, run_id: str) -> Response:
    """Start a run created with POST /api/podcast/runs.

    409 when the run is not PENDING or was already started; 503 naming the run
    when the broker is down (the sweep enqueues it later).
    """
    api = services(request)
    horizon_s = api.settings.schedule_horizon_s
    return _accepted(
        request, lifecycle.start(api.store, api.dispatcher, run_id, now=api.clock(), schedule_horizon_s=horizon_s)
    )


@routes.get("/api/podcast/runs", {200: RunList}, query=RunListQuery)
def list_runs(request: Request, query: RunListQuery) -> Response:
    """List runs, newest first.

    Filter by `status` (any case), `q` (the start of the run id, or of the episode
    name in any case), `episode_profile`, `speaker_profile`, `error_type`,
    `retry_of` (the retries of a run) and `created_after` (inclusive) /
    `created_before` (exclusive, ISO 8601; UTC when no offset is given); at most
    `limit` (≤ 200) per page; pass `next_cursor` as `cursor` for the next page.
    """
    page = services(request).store.list_runs(limit=query.limit, cursor=query.cursor, where=query.filter())
    views = [RunView.of(run, paths(request)) for run in page.runs]
    return respond(RunList(runs=views, next_cursor=page.next_cursor))


@routes.get("/api/podcast/runs/{run_id}", {200: RunView})
def get_run(request: Request, run_id: str) -> Response:
    """Get a run: status, attempt, progress, history, error, result and links."""
    return respond(RunView.of(lifecycle.get_run(services(request).store, run_id), paths(request)))


@routes.post("/api/podcast/runs/{run_id}/cancel", {200: RunView}, errors=(409,))
def cancel_run(request: Request, run_id: str) -> Response:
    """Cancel a PENDING or STARTED run: it is REVOKED at once.

    A running generation stops within two heartbeat intervals and its partial
    files are removed. 409 when the run is already finished.
    """
    api = services(request)
    return respond(RunView.of(lifecycle.cancel(api.store, run_id, now=api.clock()), paths(request)))


@routes.post(
    "/api/podcast/runs/{run_id}/retry",
    {202: SubmitResponse, 200: SubmitResponse},
    headers=(IDEMPOTENCY_KEY,),
    errors=(409,),
)
def retry_run(request: Request, run_id: str) -> Response:
    """Retry a FAILURE or REVOKED run as a new run (`retry_of` names the original).

    202 with the new run; 409 for a run in any other state; 422 when a profile or
    source it names was deleted since. With an Idempotency-Key (the dashboard sends
    one per click) a repeated request returns the same new run.
    """
    api = services(request)
    key = idempotency_key(request)
    webhooks = api.settings.webhook_targets
    submission = lifecycle.retry(
        api.store, api.dispatcher, run_id, now=api.clock(), idempotency_key=key, marks=api.marks, webhooks=webhooks
    )
    if not submission.created:
        original = lifecycle.get_run(api.store, run_id)
        return _replayed(request, submission, original.request, retry_of=run_id)
    return _accepted(request, submission)


@routes.delete("/api/podcast/runs/{run_id}", {204: None}, errors=(409,))
def delete_run(request: Request, run_id: str) -> Response:
    """Delete a run's record and its files. 409 while it is STARTED (cancel it first)."""
    api = services(request)
    lifecycle.delete(api.store, run_id, data_dir=api.settings.data_dir)
    return Response(status_code=204)
