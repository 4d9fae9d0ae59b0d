"""Runs as MongoDB documents (BSON dates, nested documents)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...models import Run
from ..counters import finished_increments

__all__ = ["COUNTERS", "LEASE_FIELDS", "RUN_REF", "dump", "finished_increments_of", "run_doc", "run_of"]

LEASE_FIELDS = {"run_id": 1, "status": 1, "attempt": 1, "released": 1}
RUN_REF = {"_id": 0, "run_id": 1, "attempt": 1, "mode": 1, "message_id": 1}
#: the ``stats`` document holding every counter
COUNTERS = {"_id": "counters"}


def dump(model: Any) -> Any:
    return None if model is None else model.model_dump(mode="python")


def run_of(doc: Mapping[str, Any]) -> Run:
    return Run.model_validate({k: v for k, v in doc.items() if k != "_id"})


def run_doc(run: Run) -> dict[str, Any]:
    doc = run.model_dump(mode="python")
    doc["status"] = str(run.status)
    doc["history"] = [
        {"status": str(h.status), "at": h.at, "attempt": h.attempt, "reason": h.reason} for h in run.history
    ]
    if doc["idempotency_key"] is None:
        del doc["idempotency_key"]  # the unique index is sparse: absent, not null
    return doc


def finished_increments_of(doc: Mapping[str, Any]) -> dict[str, int]:
    """What the ended run ``doc`` adds to the counters."""
    return finished_increments(
        doc["status"],
        started_at=doc.get("started_at"),
        finished_at=doc.get("finished_at") or doc["updated_at"],
        error_type=(doc.get("error") or {}).get("type"),
    )
