"""Runs as SQLite rows: times as INTEGER ms since the epoch, nested values as JSON text."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any

from ...models import ErrorInfo, Progress, Run, RunResult, SourceInfo, Transition, WebhookDelivery
from ...timeutil import from_ms, to_ms
from ..sql import RUN_COLUMNS, SOURCE_INFO_COLUMNS

__all__ = ["RUN_COLUMNS", "SOURCE_INFO_COLUMNS", "dt", "placeholders", "run_of", "run_values", "source_info"]


def _ms(value: datetime | None) -> int | None:
    return None if value is None else to_ms(value)


def dt(ms: int | None) -> datetime | None:
    return None if ms is None else from_ms(ms)


def _json(model: Any) -> str | None:
    return None if model is None else str(model.model_dump_json())


def placeholders(n: int) -> str:
    return ", ".join("?" * n)


def run_of(row: sqlite3.Row) -> Run:
    return Run(
        run_id=row["run_id"],
        status=row["status"],
        episode_profile=row["episode_profile"],
        speaker_profile=row["speaker_profile"],
        episode_name=row["episode_name"],
        source_ids=json.loads(row["source_ids"]),
        briefing_suffix=row["briefing_suffix"],
        mode=row["mode"],
        attempt=row["attempt"],
        created_at=from_ms(row["created_at"]),
        updated_at=from_ms(row["updated_at"]),
        started_at=dt(row["started_at"]),
        finished_at=dt(row["finished_at"]),
        heartbeat_at=dt(row["heartbeat_at"]),
        released=bool(row["released"]),
        message_id=row["message_id"],
        outbox_at=dt(row["outbox_at"]),
        enqueued_at=dt(row["enqueued_at"]),
        enqueue_error=row["enqueue_error"],
        progress=Progress.model_validate_json(row["progress"]) if row["progress"] else None,
        error=ErrorInfo.model_validate_json(row["error"]) if row["error"] else None,
        result=RunResult.model_validate_json(row["result"]) if row["result"] else None,
        history=[
            Transition(status=h["status"], at=from_ms(h["at"]), attempt=h["attempt"], reason=h["reason"])
            for h in json.loads(row["history"])
        ],
        idempotency_key=row["idempotency_key"],
        request_hash=row["request_hash"],
        retry_of=row["retry_of"],
        current_message_id=row["current_message_id"],
        callback_url=row["callback_url"],
        webhook_due_at=dt(row["webhook_due_at"]),
        webhook_attempts=row["webhook_attempts"],
        webhook=WebhookDelivery.model_validate_json(row["webhook"]) if row["webhook"] else None,
        priority=row["priority"],
        start_at=dt(row["start_at"]),
        attempts_counted=row["attempts_counted"],
    )


def run_values(run: Run) -> tuple[Any, ...]:
    """The INSERT values of ``run``, in :data:`RUN_COLUMNS` order."""
    history = [
        {"status": str(h.status), "at": to_ms(h.at), "attempt": h.attempt, "reason": h.reason} for h in run.history
    ]
    return (
        run.run_id,
        str(run.status),
        run.episode_profile,
        run.speaker_profile,
        run.episode_name,
        json.dumps(run.source_ids),
        run.briefing_suffix,
        run.mode,
        run.attempt,
        to_ms(run.created_at),
        to_ms(run.updated_at),
        _ms(run.started_at),
        _ms(run.finished_at),
        _ms(run.heartbeat_at),
        int(run.released),
        run.message_id,
        _ms(run.outbox_at),
        _ms(run.enqueued_at),
        run.enqueue_error,
        _json(run.progress),
        _json(run.error),
        _json(run.result),
        json.dumps(history),
        run.idempotency_key,
        run.request_hash,
        run.retry_of,
        run.current_message_id,
        run.callback_url,
        _ms(run.webhook_due_at),
        run.webhook_attempts,
        _json(run.webhook),
        run.priority,
        _ms(run.start_at),
        run.attempts_counted,
    )


def source_info(row: sqlite3.Row) -> SourceInfo:
    return SourceInfo(**{**dict(row), "created_at": from_ms(row["created_at"])})
