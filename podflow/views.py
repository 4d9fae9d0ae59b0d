"""A run as clients see it: ``GET /api/podcast/runs/{run_id}`` and the completion webhook's ``data``.

One rendering for both, so a webhook's ``data`` is exactly what the API shows
for the run. Links are made by a :class:`PathFor`: the API's follows its route
table (``url_path_for``, under the proxy's root path); the webhook's,
:func:`template_paths`, fills :data:`ROUTE_PATHS` after PODFLOW_PUBLIC_URL
(a test checks that the two agree). What clients must not rely on (files'
places on disk, the request fingerprint, the outbox marks) is not shown.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from .models import ErrorInfo, Mode, Priority, Progress, Run, StageCalls, Transition
from .paths import RESULT_FILES
from .states import RunStatus

__all__ = [
    "ROUTE_PATHS",
    "PathFor",
    "ResultView",
    "RunLinks",
    "RunView",
    "WebhookState",
    "WebhookView",
    "template_paths",
]

#: the API routes a run's view links to, by route name
ROUTE_PATHS: dict[str, str] = {
    "get_run": "/api/podcast/runs/{run_id}",
    "run_events": "/api/podcast/runs/{run_id}/events",
    "cancel_run": "/api/podcast/runs/{run_id}/cancel",
    "retry_run": "/api/podcast/runs/{run_id}/retry",
    "get_task": "/api/podcast/tasks/{message_id}",
    **{f"run_{name}": f"/api/podcast/runs/{{run_id}}/{name}" for name in RESULT_FILES},
}


class PathFor(Protocol):
    """The path (or URL) of a named API route with its parameters."""

    def __call__(self, name: str, /, **params: str) -> str: ...


def template_paths(base_url: str = "") -> PathFor:
    """Paths from :data:`ROUTE_PATHS`, after ``base_url`` (e.g. ``https://podflow.example.com``;
    empty: paths alone, as the API shows them behind no proxy)."""
    base = base_url.rstrip("/")

    def path_for(name: str, /, **params: str) -> str:
        return base + ROUTE_PATHS[name].format(**params)

    return path_for


class _View(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class RunLinks(_View):
    self: str
    events: str
    cancel: str
    retry: str
    #: the old ``/celery/task/{id}``: the run found by its message id
    task: str | None = None

    @classmethod
    def of(cls, run: Run, path: PathFor) -> RunLinks:
        return cls(
            self=path("get_run", run_id=run.run_id),
            events=path("run_events", run_id=run.run_id),
            cancel=path("cancel_run", run_id=run.run_id),
            retry=path("retry_run", run_id=run.run_id),
            task=path("get_task", message_id=run.message_id) if run.message_id else None,
        )


class ResultView(_View):
    """What a successful run produced: URLs of its files (null: not produced)."""

    duration_s: float | None = None
    audio_url: str | None = None
    transcript_url: str | None = None
    outline_url: str | None = None
    #: per stage: results computed, and reused from checkpoints (earlier attempts, the retried run)
    stages: dict[str, StageCalls] = Field(default_factory=dict)
    #: of the reused results, those taken from the run this one retries
    reused_from_retried: int = 0

    @classmethod
    def of(cls, run: Run, path: PathFor) -> ResultView | None:
        if run.result is None:
            return None
        urls = {
            f"{name}_url": path(f"run_{name}", run_id=run.run_id)
            for name, attr in RESULT_FILES.items()
            if getattr(run.result, attr)
        }
        return cls(
            duration_s=run.result.duration_s,
            stages=run.result.stages,
            reused_from_retried=run.result.reused_from_retried,
            **urls,
        )


#: waiting: the run has not ended yet; pending: its event is due or being retried;
#: delivered: a 2xx was received; expired: PODFLOW_WEBHOOK_MAX_AGE passed without one
WebhookState = Literal["waiting", "pending", "delivered", "expired"]


class WebhookView(_View):
    """The run's completion webhook and its delivery so far."""

    url: str
    state: WebhookState
    #: delivery attempts made (or under way)
    attempts: int
    #: when the next attempt is due (pending only)
    next_attempt_at: datetime | None = None
    last_attempt_at: datetime | None = None
    #: the receiver's HTTP status on the last attempt (null: no reply, see last_error)
    last_status: int | None = None
    last_error: str | None = None
    #: the start of the receiver's last reply body
    reply_excerpt: str | None = None
    delivered_at: datetime | None = None

    @classmethod
    def of(cls, run: Run) -> WebhookView | None:
        if run.callback_url is None:
            return None
        delivery = run.webhook
        state: WebhookState = "pending" if run.webhook_due_at is not None else "waiting"
        if delivery is not None and delivery.outcome in ("delivered", "expired") and run.webhook_due_at is None:
            state = "delivered" if delivery.outcome == "delivered" else "expired"
        shown = delivery.model_dump(exclude={"outcome"}) if delivery is not None else {}
        return cls(
            url=run.callback_url,
            state=state,
            attempts=run.webhook_attempts,
            next_attempt_at=run.webhook_due_at,
            **shown,
        )


class RunView(_View):
    """A run, whole: request, status, attempts, progress, history, outcome, webhook, links."""

    run_id: str
    status: RunStatus
    episode_profile: str
    speaker_profile: str
    episode_name: str
    source_ids: list[str]
    briefing_suffix: str | None
    #: its band: queued high runs start before normal ones, normal before low
    priority: Priority
    #: scheduled: PENDING until this time (null: as soon as possible)
    start_at: datetime | None
    mode: Mode
    attempt: int
    #: the attempts that count toward PODFLOW_MAX_ATTEMPTS: those released because
    #: their worker stopped (a deploy, a scale-down) do not
    attempts_counted: int
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    message_id: str | None
    enqueued_at: datetime | None
    #: why the last enqueue failed; the sweep sends the run when the broker is back
    enqueue_error: str | None
    progress: Progress | None
    error: ErrorInfo | None
    result: ResultView | None
    history: list[Transition]
    idempotency_key: str | None
    retry_of: str | None
    #: the completion webhook (null: the run has none)
    webhook: WebhookView | None = None
    links: RunLinks

    @classmethod
    def of(cls, run: Run, path: PathFor) -> RunView:
        fields = run.model_dump(include=set(cls.model_fields) - {"result", "links", "webhook"})
        return cls(
            **fields, result=ResultView.of(run, path), webhook=WebhookView.of(run), links=RunLinks.of(run, path)
        )
