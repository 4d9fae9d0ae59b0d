"""Runs as PostgreSQL rows: timestamptz, jsonb for nested values and the history
(whose ``at`` is an ISO-8601 string)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from psycopg.types.json import Jsonb

from ...models import Run, SourceInfo

__all__ = ["RUN_COLUMNS", "SOURCE_INFO_COLUMNS", "jsonb", "run_of", "run_values", "source_info"]

RUN_COLUMNS = (
    "run_id, status, episode_profile, speaker_profile, episode_name, source_ids, briefing_suffix, mode,"
    " attempt, created_at, updated_at, started_at, finished_at, heartbeat_at, released, message_id,"
    " outbox_at, enqueued_at, enqueue_error, progress, error, result, history, idempotency_key,"
    " request_hash, retry_of"
)
SOURCE_INFO_COLUMNS = "source_id, title, filename, content_type, byte_size, sha256, created_at"


def jsonb(model: Any) -> Jsonb | None:
    return None if model is None else Jsonb(model.model_dump(mode="json"))


def run_of(row: Mapping[str, Any]) -> Run:
    return Run.model_validate(row)


def run_values(run: Run) -> dict[str, Any]:
    """The INSERT parameters of ``run``, by :data:`RUN_COLUMNS` name."""
    values = run.model_dump(mode="python")
    values["status"] = str(run.status)
    values["source_ids"] = Jsonb(run.source_ids)
    values["history"] = Jsonb(
        [
            {"status": str(h.status), "at": h.at.isoformat(), "attempt": h.attempt, "reason": h.reason}
            for h in run.history
        ]
    )
    for name in ("progress", "error", "result"):
        values[name] = jsonb(getattr(run, name))
    return values


def source_info(row: Mapping[str, Any]) -> SourceInfo:
    return SourceInfo.model_validate(row)
