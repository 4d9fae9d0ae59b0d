"""Runs as PostgreSQL rows: timestamptz, jsonb for nested values and the history
(whose ``at`` is an ISO-8601 string)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from psycopg.types.json import Jsonb

from ...models import Run, SourceInfo
from ..sql import RUN_COLUMNS, SOURCE_INFO_COLUMNS

__all__ = ["RUN_COLUMNS", "SOURCE_INFO_COLUMNS", "jsonb", "run_of", "run_values", "source_info"]



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
    for name in ("progress", "error", "result", "webhook"):
        values[name] = jsonb(getattr(run, name))
    return values


def source_info(row: Mapping[str, Any]) -> SourceInfo:
    return SourceInfo.model_validate(row)
