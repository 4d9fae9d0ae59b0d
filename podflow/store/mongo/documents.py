"""Runs as MongoDB documents (BSON dates, nested documents)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...models import Run
from ..base import RunFilter, name_key, prefix_range
from ..counters import finished_increments
from ..transitions import REF_FIELDS

__all__ = [
    "COUNTERS",
    "DERIVED",
    "LEASE_FIELDS",
    "RUN_REF",
    "dump",
    "finished_increments_of",
    "listing_filter",
    "run_doc",
    "run_of",
]

#: fields a run document carries besides the model's (derived at insert, for queries)
DERIVED = ("_id", "name_key")

LEASE_FIELDS = {"run_id": 1, "status": 1, "attempt": 1, "released": 1}
RUN_REF = {"_id": 0, **{name: 1 for name in REF_FIELDS}}
#: the ``stats`` document holding every counter
COUNTERS = {"_id": "counters"}


def dump(model: Any) -> Any:
    return None if model is None else model.model_dump(mode="python")


def run_of(doc: Mapping[str, Any]) -> Run:
    return Run.model_validate({k: v for k, v in doc.items() if k not in DERIVED})


def run_doc(run: Run) -> dict[str, Any]:
    doc = run.model_dump(mode="python")
    doc["status"] = str(run.status)
    doc["history"] = [
        {"status": str(h.status), "at": h.at, "attempt": h.attempt, "reason": h.reason} for h in run.history
    ]
    if doc["idempotency_key"] is None:
        del doc["idempotency_key"]  # the unique index is sparse: absent, not null
    doc["name_key"] = name_key(run.episode_name)
    return doc


def listing_filter(where: RunFilter) -> dict[str, Any]:
    """The listing's query: each condition an equality or a range on an index
    (see :mod:`podflow.store.base`)."""
    conds: list[dict[str, Any]] = []
    if where.status is not None:
        conds.append({"status": str(where.status)})
    if where.search_key is not None and where.search_id is not None:
        (name_lo, name_hi), (id_lo, id_hi) = prefix_range(where.search_key), prefix_range(where.search_id)
        conds.append(
            {"$or": [{"name_key": {"$gte": name_lo, "$lt": name_hi}}, {"run_id": {"$gte": id_lo, "$lt": id_hi}}]}
        )
    for field in ("episode_profile", "speaker_profile", "retry_of"):
        if getattr(where, field) is not None:
            conds.append({field: getattr(where, field)})
    if where.error_type is not None:
        conds.append({"error.type": where.error_type})
    created: dict[str, Any] = {}
    if where.created_after is not None:
        created["$gte"] = where.created_after
    if where.created_before is not None:
        created["$lt"] = where.created_before
    if created:
        conds.append({"created_at": created})
    return {"$and": conds} if conds else {}


def finished_increments_of(doc: Mapping[str, Any]) -> dict[str, int]:
    """What the ended run ``doc`` adds to the counters."""
    return finished_increments(
        doc["status"],
        started_at=doc.get("started_at"),
        finished_at=doc.get("finished_at") or doc["updated_at"],
        error_type=(doc.get("error") or {}).get("type"),
    )
