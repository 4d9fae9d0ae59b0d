"""The completion event of a run: its type, its stable id, its body.

Body (JSON)::

    {"type": "run.succeeded" | "run.failed" | "run.revoked",
     "timestamp": <when the run ended, ISO 8601>,
     "data": <the run as GET /api/podcast/runs/{run_id} shows it>}

``data.result.audio_url`` is the episode's URL (after PODFLOW_PUBLIC_URL). The
delivery's own state is left out of ``data`` so that every attempt sends the same
body; its ``webhook-id`` is the same on every attempt too, for receivers to deduplicate.
"""

from __future__ import annotations

import json

from ..models import Run
from ..states import RunStatus
from ..views import PathFor, RunView

__all__ = ["EVENT_TYPES", "event_body", "event_id"]

EVENT_TYPES: dict[RunStatus, str] = {
    RunStatus.SUCCESS: "run.succeeded",
    RunStatus.FAILURE: "run.failed",
    RunStatus.REVOKED: "run.revoked",
}


def event_id(run: Run) -> str:
    """The event's ``webhook-id``: one per run's end (a run ends once), the same on every retry."""
    return f"msg_{run.run_id.removeprefix('run_')}_{run.status.lower()}"


def event_body(run: Run, path: PathFor) -> str:
    """The event of the ended ``run``, as sent (and signed)."""
    view = RunView.of(run, path).model_dump(mode="json", exclude={"webhook"})
    # when it ended, written as the API writes every time (UTC, ms, "Z")
    event = {"type": EVENT_TYPES[run.status], "timestamp": view["finished_at"] or view["updated_at"], "data": view}
    return json.dumps(event, separators=(",", ":"))
