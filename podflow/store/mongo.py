"""The production store on MongoDB (pymongo).

Every status change is one ``find_one_and_update`` (or, in the sweep, one
``UpdateOne`` of a ``bulk_write``) whose filter carries the whole
precondition: the run's status as the state machine allows it and the
attempt that was read. History entries carry the attempt, so the write
names the attempt it expects; if another writer got there first the filter
matches nothing and the caller re-reads (optimistic concurrency, never a
blind overwrite). Indexes are created idempotently on open. The layout is
documented in :mod:`podflow.store.base`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar

import pymongo
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.errors import ConnectionFailure, DuplicateKeyError, PyMongoError

from ..errors import AlreadyExists, ProfileNotFound, StoreError, StoreUnavailable
from ..models import (
    ErrorInfo,
    Lease,
    Progress,
    Run,
    RunPage,
    RunRef,
    RunResult,
    Source,
    SourceInfo,
)
from ..states import TERMINAL, RunStatus, allowed_sources
from ..timeutil import from_ms, to_ms
from .base import (
    DEFAULT_BATCH,
    PROFILE_MODELS,
    MinuteCount,
    Profile,
    ProfileKind,
    StoreStats,
    decode_cursor,
    encode_cursor,
    finish_status,
    lease_of,
    profile_kind,
)
from .counters import CREATED, SWEEP_LAST_AT, finished_increments, sweep_increments

__all__ = ["MongoStore"]

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

#: a read-then-conditional-write loses a race at most this often before giving up
_CAS_ROUNDS = 8
_LEASE_FIELDS = {"status": 1, "attempt": 1, "released": 1}
_RUN_REF = {"_id": 0, "run_id": 1, "attempt": 1, "mode": 1, "message_id": 1}
#: the ``stats`` document holding every counter
_COUNTERS = {"_id": "counters"}


def _guarded(method: Callable[P, T]) -> Callable[P, T]:
    """Translate pymongo's errors into podflow's."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return method(*args, **kwargs)
        except ConnectionFailure as exc:
            raise StoreUnavailable(f"MongoDB unavailable: {exc}") from exc
        except PyMongoError as exc:
            raise StoreError(f"MongoDB error: {exc}") from exc

    return wrapper


def _entry(status: RunStatus | str, now: datetime, attempt: int, reason: str) -> dict[str, Any]:
    return {"status": str(status), "at": now, "attempt": attempt, "reason": reason}


def _dump(model: Any) -> Any:
    return None if model is None else model.model_dump(mode="python")


class MongoStore:
    """The MongoDB store (see :mod:`podflow.store.base` for the contract).

    Parameters:
      uri: a ``mongodb://`` connection string (ignored when ``client`` is given).
      database: the database name.
      client: an existing ``MongoClient`` (tests pass mongomock's); it must be
        ``tz_aware``. Closed by :meth:`close` only if the store created it.
      heartbeat_timeout_s, max_attempts: execution policy (see the protocol).
      server_selection_timeout_ms: how long an operation waits for a server.
    """

    def __init__(
        self,
        uri: str = "",
        *,
        database: str = "podcast_db",
        client: Any = None,
        heartbeat_timeout_s: float = 120.0,
        max_attempts: int = 3,
        server_selection_timeout_ms: int = 5000,
    ) -> None:
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.max_attempts = max_attempts
        self._owns_client = client is None
        if client is None:
            options: dict[str, Any] = {"tz_aware": True, "appname": "podflow"}
            if "serverselectiontimeoutms" not in uri.lower():  # the URI's own value wins
                options["serverSelectionTimeoutMS"] = server_selection_timeout_ms
            client = pymongo.MongoClient(uri, **options)
        self.client = client
        db = self.client[database]
        self.runs = db["runs"]
        self.sources = db["sources"]
        self.profiles = {kind: db[f"{kind}_profiles"] for kind in PROFILE_MODELS}
        self.seeded = db["seeded"]
        self.leases = db["leases"]
        self.stats_collection = db["stats"]
        try:
            self.ensure_indexes()
            self._ensure_counters()
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"MongoStore(database={self.runs.database.name!r})"

    @_guarded
    def ensure_indexes(self) -> None:
        """Create every index; a no-op when they exist."""
        self.runs.create_index("run_id", unique=True)
        self.runs.create_index("idempotency_key", unique=True, sparse=True)
        self.runs.create_index("message_id")
        self.runs.create_index([("status", ASCENDING), ("heartbeat_at", ASCENDING)])
        self.runs.create_index([("status", ASCENDING), ("started_at", ASCENDING)])
        self.runs.create_index([("status", ASCENDING), ("outbox_at", ASCENDING)])
        self.runs.create_index([("status", ASCENDING), ("enqueued_at", ASCENDING)])
        self.runs.create_index([("status", ASCENDING), ("created_at", DESCENDING), ("run_id", DESCENDING)])
        self.runs.create_index([("created_at", DESCENDING), ("run_id", DESCENDING)])
        self.runs.create_index("finished_at", sparse=True)
        self.sources.create_index("source_id", unique=True)
        self.sources.create_index("sha256", unique=True)
        self.sources.create_index([("created_at", DESCENDING), ("source_id", DESCENDING)])
        for collection in self.profiles.values():
            collection.create_index("name", unique=True)
        self.seeded.create_index([("kind", ASCENDING), ("name", ASCENDING)], unique=True)
        self.leases.create_index("name", unique=True)

    @_guarded
    def _ensure_counters(self) -> None:
        """Create the counters document from the runs already there, if it is missing
        (a database from before it existed). Best effort under concurrency: another
        process's ``$inc`` may create it first, and then the existing runs go uncounted."""
        if self.stats_collection.find_one(_COUNTERS, {"_id": 1}) is not None:
            return
        counts: Counter[str] = Counter({CREATED: self.runs.count_documents({})})
        ended = self.runs.find(
            {"status": {"$in": [str(s) for s in TERMINAL]}},
            {"_id": 0, "status": 1, "started_at": 1, "finished_at": 1, "updated_at": 1, "error.type": 1},
        )
        for doc in ended:
            counts.update(self._finished_increments(doc))
        with contextlib.suppress(DuplicateKeyError):  # another process made it first
            self.stats_collection.insert_one({**_COUNTERS, **counts})

    @staticmethod
    def _finished_increments(doc: Mapping[str, Any]) -> dict[str, int]:
        return finished_increments(
            doc["status"],
            started_at=doc.get("started_at"),
            finished_at=doc.get("finished_at") or doc["updated_at"],
            error_type=(doc.get("error") or {}).get("type"),
        )

    def _count(self, increments: Mapping[str, int]) -> None:
        """``$inc`` the counters after a transition was written: best effort (see
        podflow.store.base, ``stats``), so the transition is never reported as failed."""
        if not increments:
            return
        try:
            self.stats_collection.update_one(_COUNTERS, {"$inc": dict(increments)}, upsert=True)
        except PyMongoError as exc:
            log.warning("counters not updated (%s): %s", ", ".join(increments), exc)

    @_guarded
    def ping(self) -> None:
        self.client.admin.command("ping")

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

    # -- conversion -------------------------------------------------------------
    @staticmethod
    def _run(doc: Mapping[str, Any]) -> Run:
        return Run.model_validate({k: v for k, v in doc.items() if k != "_id"})

    @staticmethod
    def _run_doc(run: Run) -> dict[str, Any]:
        doc = run.model_dump(mode="python")
        doc["status"] = str(run.status)
        doc["history"] = [_entry(h.status, h.at, h.attempt, h.reason) for h in run.history]
        if doc["idempotency_key"] is None:
            del doc["idempotency_key"]  # the unique index is sparse: absent, not null
        return doc

    def _fence(self, run_id: str, attempt: int) -> dict[str, Any]:
        return {"run_id": run_id, "attempt": attempt, "status": str(RunStatus.STARTED), "released": False}

    def _bulk(
        self,
        candidates: list[dict[str, Any]],
        precondition: dict[str, Any],
        update: Callable[[int], dict[str, Any]],
        written: dict[str, Any],
    ) -> list[dict[str, Any]]:
        """Apply ``update(attempt)`` to each candidate that still matches
        ``precondition`` and the attempt it was read with.

        One ``update_many`` per distinct attempt (at most max_attempts round
        trips per batch): the history entry names the attempt, so runs are
        grouped by it. Returns the candidates written; if a concurrent writer
        won some, ours are told apart by ``written``, a filter only our write
        satisfies.
        """
        by_attempt: dict[int, list[str]] = {}
        for c in candidates:
            by_attempt.setdefault(c["attempt"], []).append(c["run_id"])
        modified = 0
        for attempt, run_ids in by_attempt.items():
            result = self.runs.update_many(
                {**precondition, "run_id": {"$in": run_ids}, "attempt": attempt}, update(attempt)
            )
            modified += result.modified_count
        if modified == len(candidates):
            return candidates
        ids = {
            d["run_id"]
            for d in self.runs.find({"run_id": {"$in": [c["run_id"] for c in candidates]}, **written}, {"run_id": 1})
        }
        return [c for c in candidates if c["run_id"] in ids]

    # -- run records ------------------------------------------------------------
    @_guarded
    def create_run(self, run: Run) -> tuple[Run, bool]:
        for _ in range(_CAS_ROUNDS):
            try:
                self.runs.insert_one(self._run_doc(run))
                self._count({CREATED: 1})
                return run, True
            except DuplicateKeyError:
                if run.idempotency_key is None:
                    raise
                existing = self.runs.find_one({"idempotency_key": run.idempotency_key})
                if existing is not None:
                    return self._run(existing), False
        raise StoreError(f"could not create run {run.run_id}: idempotency key keeps changing hands")

    @_guarded
    def get_run(self, run_id: str) -> Run | None:
        doc = self.runs.find_one({"run_id": run_id})
        return None if doc is None else self._run(doc)

    @_guarded
    def get_run_by_message_id(self, message_id: str) -> Run | None:
        doc = self.runs.find_one({"message_id": message_id})
        return None if doc is None else self._run(doc)

    @_guarded
    def list_runs(
        self, *, status: RunStatus | None = None, limit: int = 50, cursor: str | None = None
    ) -> RunPage:
        query: dict[str, Any] = {}
        if status is not None:
            query["status"] = str(status)
        if cursor:
            created_at, run_id = decode_cursor(cursor)
            query["$or"] = [
                {"created_at": {"$lt": created_at}},
                {"created_at": created_at, "run_id": {"$lt": run_id}},
            ]
        docs = list(
            self.runs.find(query).sort([("created_at", DESCENDING), ("run_id", DESCENDING)]).limit(limit + 1)
        )
        runs = [self._run(doc) for doc in docs[:limit]]
        next_cursor = encode_cursor(runs[-1].created_at, runs[-1].run_id) if len(docs) > limit else None
        return RunPage(runs=runs, next_cursor=next_cursor)

    @_guarded
    def delete_run(self, run_id: str) -> bool:
        result = self.runs.delete_one({"run_id": run_id, "status": {"$ne": str(RunStatus.STARTED)}})
        return bool(result.deleted_count == 1)

    @_guarded
    def count_by_status(self) -> dict[RunStatus, int]:
        counts = {status: 0 for status in RunStatus}
        for row in self.runs.aggregate([{"$group": {"_id": "$status", "n": {"$sum": 1}}}]):
            counts[RunStatus(row["_id"])] = row["n"]
        return counts

    @_guarded
    def oldest_pending_created_at(self) -> datetime | None:
        doc = self.runs.find_one(
            {
                "status": str(RunStatus.PENDING),
                "$or": [{"outbox_at": {"$ne": None}}, {"enqueued_at": {"$ne": None}}],
            },
            {"created_at": 1},
            sort=[("created_at", ASCENDING)],
        )
        return None if doc is None else doc["created_at"]

    # -- dispatch bookkeeping ---------------------------------------------------
    @_guarded
    def request_start(self, run_id: str, *, message_id: str | None, now: datetime) -> Run | None:
        startable = {"run_id": run_id, "status": str(RunStatus.PENDING), "outbox_at": None, "enqueued_at": None}
        stamp = {"outbox_at": now, "updated_at": now}
        # Keep a message id the run already has; else take the caller's.
        doc = self.runs.find_one_and_update(
            {**startable, "message_id": None},
            {"$set": {**stamp, "message_id": message_id}},
            return_document=ReturnDocument.AFTER,
        ) or self.runs.find_one_and_update(
            {**startable, "message_id": {"$ne": None}},
            {"$set": stamp},
            return_document=ReturnDocument.AFTER,
        )
        return None if doc is None else self._run(doc)

    @_guarded
    def mark_enqueued(self, run_id: str, *, now: datetime) -> bool:
        confirmed = {"outbox_at": None, "enqueue_error": None}
        first = self.runs.update_one(
            {"run_id": run_id, "enqueued_at": None}, {"$set": {**confirmed, "enqueued_at": now}}
        )
        if first.matched_count:
            return True
        return bool(self.runs.update_one({"run_id": run_id}, {"$set": confirmed}).matched_count == 1)

    @_guarded
    def mark_enqueue_failed(self, run_id: str, *, error: str, now: datetime) -> bool:
        result = self.runs.update_one(
            {"run_id": run_id, "outbox_at": {"$ne": None}},
            {"$set": {"enqueue_error": error, "updated_at": now}},
        )
        return bool(result.matched_count == 1)

    # -- execution --------------------------------------------------------------
    @_guarded
    def claim(self, run_id: str, *, now: datetime) -> int | None:
        stale_before = now - timedelta(seconds=self.heartbeat_timeout_s)
        for _ in range(_CAS_ROUNDS):
            doc = self.runs.find_one(
                {"run_id": run_id}, {"status": 1, "attempt": 1, "released": 1, "heartbeat_at": 1, "enqueued_at": 1}
            )
            if doc is None:
                return None
            status, attempt = RunStatus(doc["status"]), doc["attempt"]
            precondition: dict[str, Any] = {"run_id": run_id, "status": str(status), "attempt": attempt}
            if status is RunStatus.PENDING:
                reason = "claimed"
            elif status is RunStatus.STARTED and attempt < self.max_attempts and doc.get("released"):
                reason = "retry"
                precondition["released"] = True
            elif (
                status is RunStatus.STARTED
                and attempt < self.max_attempts
                and doc.get("heartbeat_at") is not None
                and doc["heartbeat_at"] < stale_before
            ):
                reason = "reclaimed: heartbeat stale"
                precondition["heartbeat_at"] = {"$lt": stale_before}
            else:
                return None
            updated = self.runs.find_one_and_update(
                precondition,
                {
                    "$set": {
                        "status": str(RunStatus.STARTED),
                        "attempt": attempt + 1,
                        "started_at": now,
                        "heartbeat_at": now,
                        "updated_at": now,
                        "released": False,
                        "progress": None,
                        "outbox_at": None,
                        "enqueued_at": doc.get("enqueued_at") or now,
                    },
                    "$push": {"history": _entry(RunStatus.STARTED, now, attempt + 1, reason)},
                },
                projection={"attempt": 1},
            )
            if updated is not None:
                return int(attempt) + 1
        return None

    @_guarded
    def heartbeat(self, run_id: str, attempt: int, *, now: datetime) -> Lease:
        result = self.runs.update_one(self._fence(run_id, attempt), {"$set": {"heartbeat_at": now}})
        if result.matched_count:
            return Lease(owned=True, status=RunStatus.STARTED)
        return lease_of(self.runs.find_one({"run_id": run_id}, _LEASE_FIELDS), attempt)

    @_guarded
    def lease(self, run_id: str, attempt: int) -> Lease:
        return lease_of(self.runs.find_one({"run_id": run_id}, _LEASE_FIELDS), attempt)

    @_guarded
    def heartbeat_many(self, leases: Mapping[str, int], *, now: datetime) -> dict[str, Lease]:
        if not leases:
            return {}
        self.runs.update_many(
            {
                "$or": [{"run_id": run_id, "attempt": attempt} for run_id, attempt in leases.items()],
                "status": str(RunStatus.STARTED),
                "released": False,
            },
            {"$set": {"heartbeat_at": now}},
        )
        docs = {
            doc["run_id"]: doc
            for doc in self.runs.find(
                {"run_id": {"$in": list(leases)}}, {"run_id": 1, **_LEASE_FIELDS}
            )
        }
        return {run_id: lease_of(docs.get(run_id), attempt) for run_id, attempt in leases.items()}

    @_guarded
    def set_progress(self, run_id: str, attempt: int, progress: Progress, *, now: datetime) -> Lease:
        result = self.runs.update_one(
            self._fence(run_id, attempt),
            {"$set": {"progress": _dump(progress), "heartbeat_at": now, "updated_at": now}},
        )
        if result.matched_count:
            return Lease(owned=True, status=RunStatus.STARTED)
        return lease_of(self.runs.find_one({"run_id": run_id}, _LEASE_FIELDS), attempt)

    @_guarded
    def release(self, run_id: str, attempt: int, *, error: ErrorInfo, now: datetime) -> bool:
        result = self.runs.update_one(
            self._fence(run_id, attempt),
            {
                "$set": {"released": True, "heartbeat_at": now, "updated_at": now, "error": _dump(error)},
                "$push": {
                    "history": _entry(RunStatus.STARTED, now, attempt, f"released for retry: {error.type}")
                },
            },
        )
        return bool(result.modified_count == 1)

    @_guarded
    def finish(
        self,
        run_id: str,
        attempt: int,
        *,
        status: RunStatus,
        now: datetime,
        result: RunResult | None = None,
        error: ErrorInfo | None = None,
        reason: str = "",
    ) -> Run | None:
        status = finish_status(status)
        doc = self.runs.find_one_and_update(
            self._fence(run_id, attempt),
            {
                "$set": {
                    "status": str(status),
                    "finished_at": now,
                    "updated_at": now,
                    "result": _dump(result),
                    "error": _dump(error),
                },
                "$push": {"history": _entry(status, now, attempt, reason or status.lower())},
            },
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            return None
        self._count(self._finished_increments(doc))
        return self._run(doc)

    @_guarded
    def cancel(self, run_id: str, *, now: datetime, reason: str = "cancelled") -> Run | None:
        sources = {str(s) for s in allowed_sources(RunStatus.REVOKED)}
        for _ in range(_CAS_ROUNDS):
            doc = self.runs.find_one({"run_id": run_id}, {"status": 1, "attempt": 1})
            if doc is None or doc["status"] not in sources:
                return None
            updated = self.runs.find_one_and_update(
                {"run_id": run_id, "status": doc["status"], "attempt": doc["attempt"]},
                {
                    "$set": {
                        "status": str(RunStatus.REVOKED),
                        "finished_at": now,
                        "updated_at": now,
                        "released": False,
                        "outbox_at": None,
                        "error": _dump(ErrorInfo(type="revoked", message=reason)),
                    },
                    "$push": {"history": _entry(RunStatus.REVOKED, now, doc["attempt"], reason)},
                },
                return_document=ReturnDocument.AFTER,
            )
            if updated is not None:
                self._count(self._finished_increments(updated))
                return self._run(updated)
        return None

    # -- sweep ------------------------------------------------------------------
    def _fail_matching(self, match: dict[str, Any], error: ErrorInfo, now: datetime, limit: int) -> list[str]:
        candidates = list(self.runs.find(match, {"_id": 0, "run_id": 1, "attempt": 1, "started_at": 1}).limit(limit))
        written = self._bulk(
            candidates,
            match,
            lambda attempt: {
                "$set": {
                    "status": str(RunStatus.FAILURE),
                    "finished_at": now,
                    "updated_at": now,
                    "error": _dump(error),
                    "released": False,
                    "outbox_at": None,
                },
                "$push": {"history": _entry(RunStatus.FAILURE, now, attempt, error.type)},
            },
            {"status": str(RunStatus.FAILURE), "finished_at": now, "error.type": error.type},
        )
        counts: Counter[str] = Counter()
        for c in written:  # started_at is the one read: the attempt, hence the start, is unchanged
            counts.update(
                finished_increments(
                    RunStatus.FAILURE, started_at=c.get("started_at"), finished_at=now, error_type=error.type
                )
            )
        self._count(counts)
        return [c["run_id"] for c in written]

    @_guarded
    def fail_started_before(
        self, *, started_before: datetime, error: ErrorInfo, now: datetime, limit: int = DEFAULT_BATCH
    ) -> list[str]:
        return self._fail_matching(
            {"status": str(RunStatus.STARTED), "started_at": {"$lt": started_before}}, error, now, limit
        )

    @_guarded
    def fail_lost(
        self, *, heartbeat_before: datetime, error: ErrorInfo, now: datetime, limit: int = DEFAULT_BATCH
    ) -> list[str]:
        return self._fail_matching(
            {
                "status": str(RunStatus.STARTED),
                "heartbeat_at": {"$lt": heartbeat_before},
                "attempt": {"$gte": self.max_attempts},
            },
            error,
            now,
            limit,
        )

    @_guarded
    def release_lost(
        self, *, heartbeat_before: datetime, now: datetime, limit: int = DEFAULT_BATCH
    ) -> list[RunRef]:
        match = {
            "status": str(RunStatus.STARTED),
            "heartbeat_at": {"$lt": heartbeat_before},
            "attempt": {"$lt": self.max_attempts},
        }
        candidates = list(self.runs.find(match, _RUN_REF).limit(limit))
        written = self._bulk(
            candidates,
            match,
            lambda attempt: {
                "$set": {"released": True, "heartbeat_at": now, "updated_at": now},
                "$push": {
                    "history": _entry(RunStatus.STARTED, now, attempt, "lost: heartbeat stale; re-dispatched")
                },
            },
            {"status": str(RunStatus.STARTED), "released": True, "heartbeat_at": now},
        )
        return [RunRef(**c) for c in written]

    def _pending_before(self, field: str, cutoff: datetime, limit: int) -> list[RunRef]:
        """PENDING runs whose ``field`` (outbox_at or enqueued_at) is before the cutoff, oldest first."""
        docs = (
            self.runs.find({"status": str(RunStatus.PENDING), field: {"$lt": cutoff}}, _RUN_REF)
            .sort(field, ASCENDING)
            .limit(limit)
        )
        return [RunRef(**doc) for doc in docs]

    @_guarded
    def list_outbox(self, *, requested_before: datetime, limit: int = DEFAULT_BATCH) -> list[RunRef]:
        return self._pending_before("outbox_at", requested_before, limit)

    @_guarded
    def list_enqueued(self, *, enqueued_before: datetime, limit: int = DEFAULT_BATCH) -> list[RunRef]:
        return self._pending_before("enqueued_at", enqueued_before, limit)

    @_guarded
    def fail_pending_enqueued_before(
        self, *, enqueued_before: datetime, error: ErrorInfo, now: datetime, limit: int = DEFAULT_BATCH
    ) -> list[str]:
        return self._fail_matching(
            {"status": str(RunStatus.PENDING), "enqueued_at": {"$lt": enqueued_before}}, error, now, limit
        )

    # -- sources ----------------------------------------------------------------
    @_guarded
    def add_source(self, source: Source) -> tuple[SourceInfo, bool]:
        for _ in range(_CAS_ROUNDS):
            try:
                self.sources.insert_one(source.model_dump(mode="python"))
                return source.info(), True
            except DuplicateKeyError:
                existing = self.sources.find_one({"sha256": source.sha256}, {"_id": 0, "text": 0})
                if existing is not None:
                    return SourceInfo.model_validate(existing), False
        raise StoreError(f"could not store source {source.source_id}")

    @_guarded
    def get_source(self, source_id: str) -> Source | None:
        doc = self.sources.find_one({"source_id": source_id}, {"_id": 0})
        return None if doc is None else Source.model_validate(doc)

    @_guarded
    def list_sources(self, *, limit: int = 100) -> list[SourceInfo]:
        docs = (
            self.sources.find({}, {"_id": 0, "text": 0})
            .sort([("created_at", DESCENDING), ("source_id", DESCENDING)])
            .limit(limit)
        )
        return [SourceInfo.model_validate(doc) for doc in docs]

    @_guarded
    def delete_source(self, source_id: str) -> bool:
        return bool(self.sources.delete_one({"source_id": source_id}).deleted_count == 1)

    @_guarded
    def missing_sources(self, source_ids: Sequence[str]) -> list[str]:
        if not source_ids:
            return []
        found = {
            doc["source_id"]
            for doc in self.sources.find({"source_id": {"$in": list(source_ids)}}, {"source_id": 1})
        }
        return [source_id for source_id in source_ids if source_id not in found]

    # -- profiles ---------------------------------------------------------------
    @_guarded
    def get_profile(self, kind: ProfileKind, name: str) -> Profile | None:
        doc = self.profiles[kind].find_one({"name": name}, {"_id": 0, "updated_at": 0})
        return None if doc is None else PROFILE_MODELS[kind].model_validate(doc)

    @_guarded
    def list_profiles(self, kind: ProfileKind) -> list[Profile]:
        docs = self.profiles[kind].find({}, {"_id": 0, "updated_at": 0}).sort("name", ASCENDING)
        return [PROFILE_MODELS[kind].model_validate(doc) for doc in docs]

    @_guarded
    def create_profile(self, profile: Profile, *, now: datetime) -> None:
        kind = profile_kind(profile)
        try:
            self.profiles[kind].insert_one({**profile.model_dump(mode="python"), "updated_at": now})
        except DuplicateKeyError:
            raise AlreadyExists(f"{kind} profile {profile.name!r} already exists") from None

    @_guarded
    def update_profile(self, profile: Profile, *, now: datetime) -> None:
        kind = profile_kind(profile)
        doc = {**profile.model_dump(mode="python"), "updated_at": now}
        result = self.profiles[kind].replace_one({"name": profile.name}, doc)
        if result.matched_count == 0:
            raise ProfileNotFound(profile.name)

    @_guarded
    def delete_profile(self, kind: ProfileKind, name: str) -> bool:
        return bool(self.profiles[kind].delete_one({"name": name}).deleted_count == 1)

    @_guarded
    def seed_profiles(self, profiles: Sequence[Profile], *, now: datetime) -> list[str]:
        inserted = []
        for profile in profiles:
            kind = profile_kind(profile)
            first_time = self.seeded.update_one(
                {"kind": kind, "name": profile.name},
                {"$setOnInsert": {"kind": kind, "name": profile.name}},
                upsert=True,
            ).upserted_id
            if first_time is None:
                continue
            try:
                self.profiles[kind].insert_one({**profile.model_dump(mode="python"), "updated_at": now})
                inserted.append(profile.name)
            except DuplicateKeyError:  # the user made one of that name first: theirs wins
                pass
        return inserted

    # -- monitoring -------------------------------------------------------------
    @_guarded
    def stats(self) -> StoreStats:
        doc = self.stats_collection.find_one(_COUNTERS) or {}
        return StoreStats.parse({k: v for k, v in doc.items() if k != "_id"})

    @_guarded
    def record_sweep(self, counts: Mapping[str, int], *, now: datetime) -> None:
        self.stats_collection.update_one(
            _COUNTERS, {"$inc": sweep_increments(counts), "$max": {SWEEP_LAST_AT: to_ms(now)}}, upsert=True
        )

    @_guarded
    def finished_per_minute(self, *, since: datetime) -> list[MinuteCount]:
        counts: Counter[tuple[int, str]] = Counter()
        for doc in self.runs.find({"finished_at": {"$gte": since}}, {"_id": 0, "finished_at": 1, "status": 1}):
            counts[(to_ms(doc["finished_at"]) // 60000, doc["status"])] += 1
        return [
            MinuteCount(from_ms(minute * 60000), RunStatus(status), n)
            for (minute, status), n in sorted(counts.items())
        ]

    # -- leases -----------------------------------------------------------------
    @_guarded
    def acquire_lease(self, name: str, *, holder: str, now: datetime, ttl_s: float) -> bool:
        try:
            self.leases.find_one_and_update(
                {"name": name, "$or": [{"expires_at": {"$lte": now}}, {"holder": holder}]},
                {"$set": {"holder": holder, "expires_at": now + timedelta(seconds=ttl_s)}},
                upsert=True,
            )
        except DuplicateKeyError:  # someone else holds a valid lease
            return False
        return True

    @_guarded
    def release_lease(self, name: str, *, holder: str) -> None:
        self.leases.delete_one({"name": name, "holder": holder})
