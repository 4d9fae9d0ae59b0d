"""What the API reads and writes: request and response models (pydantic).

The run, source and profile models of :mod:`podflow.models` are reused where the
API shows them as they are; the views here add links and hide what clients must
not rely on (files' places on disk, the request fingerprint). The OpenAPI
components are generated from these classes (:mod:`api.openapi`), and every
response is serialized from one of them (:func:`respond`), so the two agree.

Types are what the document says: a JSON body is validated in strict mode
(:func:`validate_json`: an integer is a JSON number without a fraction, never
``"10"``, ``"1_0"`` or ``true``), and a query string's integers are plain
decimal digits (:data:`QueryInt`). As in :mod:`podflow.models`, text is stripped
before its length is checked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from podflow.errors import InvalidInput
from podflow.models import (
    PROFILE_NAME_PATTERN,
    EpisodeProfile,
    ErrorInfo,
    Mode,
    Priority,
    Progress,
    Run,
    SourceInfo,
    SpeakerProfile,
    Verbatim,
    problems,
)
from podflow.states import RunStatus
from podflow.store.base import RunFilter, Store
from podflow.views import PathFor, ResultView, RunLinks, RunView, WebhookView
from podflow.worker.deadletter import DeadMessage

__all__ = [
    "ApiError",
    "EpisodeProfileList",
    "EpisodeProfileUpdate",
    "ErrorBody",
    "Health",
    "Problem",
    "QueryInt",
    "Readiness",
    "ResultView",
    "RunEvent",
    "RunLinks",
    "RunList",
    "RunListQuery",
    "RunView",
    "SourceCreate",
    "SourceCreated",
    "SourceList",
    "SourceListQuery",
    "SourceUpload",
    "SpeakerProfileList",
    "SpeakerProfileUpdate",
    "SubmitResponse",
    "TaskView",
    "CeleryTaskView",
    "DeadLetterList",
    "DeadLetterQuery",
    "DeadLetterView",
    "respond",
    "run_path",
    "validate",
    "validate_json",
    "WebhookView",
    "paths",
]

M = TypeVar("M", bound=BaseModel)


_DECIMAL = re.compile(r"-?[0-9]+")


def _decimal(value: Any) -> Any:
    return int(value) if isinstance(value, str) and _DECIMAL.fullmatch(value) else value


#: an integer in a query string: decimal digits (``?limit=10``), not ``1_0``, `` 10`` or ``1e1``
QueryInt = Annotated[int, Strict(), BeforeValidator(_decimal)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class _Query(BaseModel):
    """Query parameters: unknown ones are ignored (cache busters, tracking), not refused."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


def respond(model: BaseModel, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """``model`` as a JSON response."""
    return Response(model.model_dump_json(), status_code=status, headers=headers, media_type="application/json")


def validate(model: type[M], data: Any, *, where: str = "body") -> M:
    """``data`` (Python values: a query string's, or a model's own dump) validated as ``model``.

    Raises:
      InvalidInput: ``field`` names the first problem, ``details`` lists every
        problem as ``{field, message}`` (``where`` stands for the whole input).
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _invalid(exc, where) from None


def validate_json(model: type[M], body: bytes) -> M:
    """A JSON document validated as ``model``, in strict mode: each value must
    have the JSON type the OpenAPI document gives it (an integer field takes
    ``10``, and refuses ``"10"``, ``10.5`` and ``true``).

    Raises:
      InvalidInput: as :func:`validate`; ``field="body"`` when it is not JSON at all.
    """
    try:
        return model.model_validate_json(body, strict=True)
    except ValidationError as exc:
        raise _invalid(exc, "body") from None


def _invalid(exc: ValidationError, where: str) -> InvalidInput:
    found = problems(exc, where=where)
    for problem, error in zip(found, exc.errors(include_url=False), strict=True):
        if error["type"] == "json_invalid":
            problem["message"] = f"the body is not valid JSON: {error['ctx']['error']}"
        elif error["type"] == "int_type" and where == "body":
            problem["message"] = "must be an integer: a JSON number like 10, not a string, a fraction or a boolean"
    return InvalidInput(found[0]["message"], field=found[0]["field"], details=found)


# -- errors -----------------------------------------------------------------------


class Problem(BaseModel):
    """One problem with the input: the field (``speakers[1].voice``) and what is wrong."""

    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)

    field: str | None = None
    message: str


class ApiError(_Model):
    #: stable, snake_case: validation_error, not_found, conflict, idempotency_conflict,
    #: unauthorized, payload_too_large, store_unavailable, broker_unavailable, ...
    code: str
    message: str
    details: list[Problem] | dict[str, Any] | None = None


class ErrorBody(_Model):
    """Every error response: ``{"error": {"code", "message", "details"}}``."""

    error: ApiError


# -- runs -------------------------------------------------------------------------


def _path(request: Request, name: str, **params: str) -> str:
    """The path of a named route (without scheme and host, which a proxy may change)."""
    root = str(request.scope.get("app_root_path", request.scope.get("root_path", "")))
    return root + str(request.app.url_path_for(name, **params))


def paths(request: Request) -> PathFor:
    """The run views' links (:mod:`podflow.views`) as this app routes them, under the proxy's root path."""

    def path_for(name: str, /, **params: str) -> str:
        return _path(request, name, **params)

    return path_for


def run_path(request: Request, run_id: str) -> str:
    """The path of a run (``Location`` of the responses that made it)."""
    return _path(request, "get_run", run_id=run_id)


class SubmitResponse(_Model):
    """A run accepted for execution."""

    run_id: str
    status: RunStatus
    created_at: datetime
    #: the broker message id (GET /api/podcast/tasks/{message_id}); null in thread mode
    message_id: str | None
    mode: Mode
    retry_of: str | None = None
    priority: Priority = "normal"
    #: scheduled: the run stays PENDING until then
    start_at: datetime | None = None
    links: RunLinks
    #: ``message_id`` again, under the old module's name (deprecated: read ``message_id``)
    celery_task_id: str | None = Field(default=None, json_schema_extra={"deprecated": True})

    @classmethod
    def of(cls, run: Run, request: Request) -> SubmitResponse:
        fields = run.model_dump(include=set(cls.model_fields) - {"links", "celery_task_id"})
        return cls(**fields, links=RunLinks.of(run, paths(request)), celery_task_id=run.message_id)


class RunList(_Model):
    runs: list[RunView]
    #: pass as ``cursor`` for the next page; null on the last page
    next_cursor: str | None = None


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _iso_time(value: Any) -> Any:
    """An ISO 8601 time (a time without an offset is UTC); not a number of seconds."""
    if not isinstance(value, str):
        return value
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("must be an ISO 8601 time, like 2026-01-31T12:00:00Z") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


#: a time in a query string: ISO 8601 (``2026-01-31T12:00:00Z``; UTC without an offset)
QueryTime = Annotated[datetime | None, BeforeValidator(_iso_time)]


class RunListQuery(_Query):
    #: any case: ``failure`` is FAILURE
    status: Annotated[RunStatus | None, BeforeValidator(_upper)] = None
    limit: QueryInt = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, max_length=200)
    #: the start of the run id, or of the episode name in any case
    q: str | None = Field(default=None, max_length=200)
    episode_profile: str | None = Field(default=None, max_length=64)
    speaker_profile: str | None = Field(default=None, max_length=64)
    error_type: str | None = Field(default=None, max_length=200)
    #: the retries of this run
    retry_of: str | None = Field(default=None, max_length=64)
    #: created at or after (ISO 8601)
    created_after: QueryTime = None
    #: created before (ISO 8601)
    created_before: QueryTime = None

    def filter(self) -> RunFilter:
        fields = self.model_dump(exclude={"limit", "cursor", "q"}, exclude_none=True)
        return RunFilter(search=self.q or None, **fields)


class RunEvent(_Model):
    """The data of one Server-Sent Event (``event: status`` or ``event: progress``)."""

    run_id: str
    status: RunStatus
    attempt: int
    progress: Progress | None
    error: ErrorInfo | None
    updated_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, run: Run) -> RunEvent:
        return cls(**run.model_dump(include=set(cls.model_fields)))


class TaskView(_Model):
    """A run seen through its broker message, like the old ``/celery/task/{id}``."""

    message_id: str
    run_id: str
    status: RunStatus
    #: the run is finished (SUCCESS, FAILURE or REVOKED)
    ready: bool
    successful: bool
    result: ResultView | None = None
    error: ErrorInfo | None = None

    @classmethod
    def of(cls, message_id: str, run: Run, request: Request) -> TaskView:
        return cls(
            message_id=message_id,
            run_id=run.run_id,
            status=run.status,
            ready=run.is_terminal,
            successful=run.status is RunStatus.SUCCESS,
            result=ResultView.of(run, paths(request)) if run.status is RunStatus.SUCCESS else None,
            error=run.error if run.is_terminal and run.status is not RunStatus.SUCCESS else None,
        )


class CeleryTaskView(_Model):
    """The old module's ``GET /api/podcast/celery/task/{celery_task_id}`` answer, read
    from the store (deprecated: use ``GET /api/podcast/runs/{run_id}``)."""

    celery_task_id: str
    #: PENDING, STARTED, SUCCESS, FAILURE or REVOKED, as Celery spelled them
    status: RunStatus
    ready: bool
    successful: bool
    #: SUCCESS: the run and its file URLs; FAILURE or REVOKED: the error as
    #: ``"Type: message"`` (Celery's result of a failed task); otherwise null
    result: dict[str, Any] | str | None = None

    @classmethod
    def of(cls, celery_task_id: str, run: Run, request: Request) -> CeleryTaskView:
        result: dict[str, Any] | str | None = None
        files = ResultView.of(run, paths(request))
        if run.status is RunStatus.SUCCESS and files is not None:
            result = {"run_id": run.run_id, **files.model_dump()}
        elif run.is_terminal and run.error is not None:
            result = f"{run.error.type}: {run.error.message}"
        return cls(
            celery_task_id=celery_task_id,
            status=run.status,
            ready=run.is_terminal,
            successful=run.status is RunStatus.SUCCESS,
            result=result,
        )


# -- sources ----------------------------------------------------------------------


class SourceCreate(_Model):
    """A source document sent as JSON (at most PODFLOW_MAX_JSON_BYTES, 1 MiB by default;
    upload bigger ones as a file)."""

    #: the document, exactly as given
    content: Verbatim = Field(min_length=1)
    title: str | None = Field(default=None, max_length=200)
    #: text/plain (default), text/markdown or text/html, optionally with a charset
    content_type: str | None = Field(default=None, max_length=200)
    #: used to guess the type when content_type is not given
    filename: str | None = Field(default=None, max_length=255)


class SourceUpload(_Model):
    """A source document uploaded as ``multipart/form-data`` (documentation only)."""

    #: the document; its part's Content-Type, else the file name's extension, gives the type
    file: bytes
    title: str = Field(default="", max_length=200)


class SourceCreated(SourceInfo):
    #: false when the same text was already stored: this is the existing source
    created: bool


class SourceList(_Model):
    sources: list[SourceInfo]


class SourceListQuery(_Query):
    limit: QueryInt = Field(default=100, ge=1, le=500)


# -- profiles ---------------------------------------------------------------------


class EpisodeProfileList(_Model):
    profiles: list[EpisodeProfile]


class SpeakerProfileList(_Model):
    profiles: list[SpeakerProfile]


class EpisodeProfileUpdate(EpisodeProfile):
    """An episode profile to replace the one named in the path; ``name``, if given, must match it."""

    name: str | None = Field(default=None, pattern=PROFILE_NAME_PATTERN)  # type: ignore[assignment]


class SpeakerProfileUpdate(SpeakerProfile):
    """A speaker profile to replace the one named in the path; ``name``, if given, must match it."""

    name: str | None = Field(default=None, pattern=PROFILE_NAME_PATTERN)  # type: ignore[assignment]


# -- dead letters -----------------------------------------------------------------


class DeadLetterView(_Model):
    """A message Dramatiq gave up on (see :mod:`podflow.worker.deadletter`)."""

    #: its entry in the dead-letter queue (requeue by it, or by ``message_id``)
    id: str
    message_id: str
    queue: str
    actor: str
    run_id: str | None
    #: the run's status now; null when the run is gone (or the message is not a run's)
    run_status: RunStatus | None
    dead_at: datetime
    enqueued_at: datetime | None
    retries: int
    error: str | None

    @classmethod
    def of(cls, message: DeadMessage, store: Store) -> DeadLetterView:
        run = store.get_run(message.run_id) if message.run_id else None
        return cls(**asdict(message), run_status=run.status if run else None)


class DeadLetterList(_Model):
    queue: str
    #: dead messages in the queue (``messages`` shows the newest ``limit``)
    total: int
    messages: list[DeadLetterView]


class DeadLetterQuery(_Query):
    limit: QueryInt = Field(default=100, ge=1, le=500)


# -- health -----------------------------------------------------------------------


class Health(_Model):
    status: Literal["ok"] = "ok"


class Readiness(_Model):
    status: Literal["ready"] = "ready"
    #: each dependency: "ok", or "not used" (the broker in thread mode)
    checks: dict[str, str]
