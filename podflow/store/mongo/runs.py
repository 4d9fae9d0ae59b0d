"""Run records, the outbox marks, and the transition table applied on MongoDB.

Every status change is one ``find_one_and_update`` per run, in the sweep's bulk
writes too, whose filter carries the whole precondition (:mod:`.render`): the
document it returns is the proof that this very call made the change. (An
``update_many`` only counts what it changed; when a concurrent sweep wrote the
same values at the same ``now``, nothing tells whose write a document carries.)
The counters are ``$inc``-ed right after, best effort (see :mod:`podflow.store.base`, ``stats``).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument, UpdateMany, UpdateOne
from pymongo.errors import DuplicateKeyError, PyMongoError

from ...errors import NamesMissing, StoreError
from ...models import Progress, Run, RunRef, Source
from ...states import TERMINAL, RunStatus
from .. import expressions as e
from .. import transitions as t
from ..base import DEFAULT_BATCH, Claimed, ProfileKind, RunFilter, lease_of
from ..counters import CREATED, finished_increments
from ..shared import WriteStore
from . import render
from .connection import MongoConnection, guarded
from .documents import COUNTERS, LEASE_FIELDS, RUN_REF, listing_filter, run_doc, run_of

__all__ = ["MongoRuns"]

log = logging.getLogger("podflow.store.mongo")

#: a read-then-conditional-write loses a race at most this often before giving up
_CAS_ROUNDS = 8
#: the terminal statuses: a run in one of them never changes again
_ENDED = sorted(str(status) for status in TERMINAL)


class MongoRuns(MongoConnection, WriteStore):
    # -- counters ---------------------------------------------------------------------
    def _count(self, increments: Mapping[str, int]) -> None:
        """``$inc`` the counters after a transition was written: best effort (see
        podflow.store.base, ``stats``), so the transition is never reported as failed."""
        if not increments:
            return
        try:
            self.stats_collection.update_one(COUNTERS, {"$inc": dict(increments)}, upsert=True)
        except PyMongoError as exc:
            log.warning("counters not updated (%s): %s", ", ".join(increments), exc)

    def _count_ended(self, write: t.Write, docs: list[Mapping[str, Any]], args: Mapping[str, Any]) -> None:
        if not write.ends_run or not docs:
            return
        error = args.get("error")
        counts: Counter[str] = Counter()
        for doc in docs:  # started_at as read: the write changed neither attempt nor start
            counts.update(
                finished_increments(
                    str(write.target),
                    started_at=doc.get("started_at"),
                    finished_at=args["now"],
                    error_type=None if error is None else error.type,
                )
            )
        self._count(counts)

    # -- the transition table ---------------------------------------------------------
    def _returned(self, write: t.Write, doc: Mapping[str, Any], row: Mapping[str, Any], args: Mapping[str, Any]) -> Any:
        match write.returning:
            case t.Returning.RUN:
                return run_of(doc)
            case t.Returning.REF:
                return RunRef.model_validate({k: row.get(k) for k in t.REF_FIELDS})
            case t.Returning.ATTEMPT:
                return int(e.evaluate(write.sets["attempt"], row, args))
            case t.Returning.RUN_ID:
                return row["run_id"]
        return True

    @guarded
    def _write_one(self, write: t.Write, args: Mapping[str, Any]) -> Any:
        reads = render.needed_reads(write)
        where = render.mongo_filter(write.where, args)
        whole = write.returning is t.Returning.RUN
        projection = None if whole else {"_id": 1, "started_at": 1}
        after = ReturnDocument.AFTER
        for _ in range(_CAS_ROUNDS if reads else 1):
            row: dict[str, Any] = render.pinned(write, args)
            query = where
            if reads:
                read = self.runs.find_one(where, {"_id": 0, **{f: 1 for f in reads}})
                if read is None:
                    return None
                row.update({f: read.get(f) for f in reads})
                query = {"$and": [where, {f: read.get(f) for f in reads}]}
            doc = self.runs.find_one_and_update(
                query, render.update(write, row, args), projection=projection, return_document=after
            )
            if doc is not None:
                self._count_ended(write, [doc], args)
                return self._returned(write, doc, row, args)
        return None

    @guarded
    def _write_many(self, write: t.Write, args: Mapping[str, Any], limit: int) -> list[Any]:
        reads = render.needed_reads(write)
        where = render.mongo_filter(write.where, args)
        fields = {"_id": 0, "started_at": 1, **{f: 1 for f in t.REF_FIELDS}}
        candidates = list(self.runs.find(where, {**fields, **{f: 1 for f in reads}}).limit(limit))
        # a write returning whole runs takes each document as written; the others need the candidate's fields
        whole = write.returning is t.Returning.RUN
        written, after = [], []
        for doc in candidates:
            read = {f: doc.get(f) for f in reads}
            change = render.update(write, {**render.pinned(write, args), **read}, args)
            query = {"$and": [where, {"run_id": doc["run_id"]}, read]}
            projection = None if whole else {"_id": 1}
            done = self.runs.find_one_and_update(
                query, change, projection=projection, return_document=ReturnDocument.AFTER
            )
            if done is not None:
                written.append(doc)
                after.append(done)
        self._count_ended(write, written, args)
        return [self._returned(write, a, d, args) for a, d in zip(after, written, strict=True)]

    @guarded
    def claim_execution(self, run_id: str, *, now: datetime) -> Claimed | None:
        run: Run | None = self._write_one(t.CLAIM_RUN, self._claim_args(run_id, now))
        if run is None:
            return None
        # no statement spans collections here: what the run names is read after its claim
        hidden = {"_id": 0, "updated_at": 0}
        profiles: dict[ProfileKind, Any] = {
            "episode": self.profiles["episode"].find_one({"name": run.episode_profile}, hidden),
            "speaker": self.profiles["speaker"].find_one({"name": run.speaker_profile}, hidden),
        }
        wanted = list(dict.fromkeys(run.source_ids))
        found = {d["source_id"]: d for d in self.sources.find({"source_id": {"$in": wanted}}, {"_id": 0})}
        sources = tuple(Source.model_validate(found[i]) for i in wanted if i in found)
        return Claimed(run=run, profiles=profiles, sources=sources)

    def _names_exist(self, run: Run) -> bool:
        wanted = list(dict.fromkeys(run.source_ids))
        return (
            self.profiles["episode"].find_one({"name": run.episode_profile}, {"_id": 1}) is not None
            and self.profiles["speaker"].find_one({"name": run.speaker_profile}, {"_id": 1}) is not None
            and self.sources.count_documents({"source_id": {"$in": wanted}}) == len(wanted)
        )

    @guarded
    def _lease_rows(self, run_ids: list[str]) -> dict[str, Mapping[str, Any]]:
        return {doc["run_id"]: doc for doc in self.runs.find({"run_id": {"$in": run_ids}}, LEASE_FIELDS)}

    @guarded
    def _beat(
        self, leases: Mapping[str, int], progress: Mapping[str, Progress], *, now: datetime
    ) -> tuple[set[str], dict[str, Mapping[str, Any]]]:
        # One bulk write: HEARTBEAT's precondition for each (run_id, attempt) without
        # a progress in one update_many, PROGRESS's for each run with one. Unlike a
        # sweep (see the module docstring), a beat need not prove whose write a
        # document carries, only that this attempt still holds the run: a hold is
        # one interval (claim .. loss; an attempt never holds its run again), so an
        # attempt the read below finds holding held it during the write, which
        # matched and refreshed it.
        def held(write: t.Write, run_id: str) -> dict[str, Any]:
            return render.mongo_filter(write.where, {"run_id": run_id, "attempt": leases[run_id]})

        beats = [held(t.HEARTBEAT, run_id) for run_id in leases if run_id not in progress]
        ops: list[Any] = [
            UpdateOne(held(t.PROGRESS, run_id), {"$set": render.sets(t.PROGRESS, {}, {"now": now, "progress": p})})
            for run_id, p in progress.items()
        ]
        if beats:
            ops.append(UpdateMany({"$or": beats}, {"$set": render.sets(t.HEARTBEAT, {}, {"now": now})}))
        self.runs.bulk_write(ops, ordered=False)
        rows = self._lease_rows(list(leases))
        return {run_id for run_id, attempt in leases.items() if lease_of(rows.get(run_id), attempt).owned}, rows

    # -- run records ------------------------------------------------------------------
    @guarded
    def create_run(self, run: Run, *, check_names: bool = False) -> tuple[Run, bool]:
        if check_names and not self._names_exist(run):  # read first: no insert is conditional on another collection
            raise NamesMissing("a profile or source the run names does not exist")
        for _ in range(_CAS_ROUNDS):
            try:
                self.runs.insert_one(run_doc(run))
                self._count({CREATED: 1})
                return run, True
            except DuplicateKeyError:
                if run.idempotency_key is None:
                    raise
                existing = self.get_run_by_idempotency_key(run.idempotency_key)
                if existing is not None:
                    return existing, False
        raise StoreError(f"could not create run {run.run_id}: idempotency key keeps changing hands")

    @guarded
    def get_run(self, run_id: str) -> Run | None:
        doc = self.runs.find_one({"run_id": run_id})
        return None if doc is None else run_of(doc)

    @guarded
    def get_runs(self, run_ids: Sequence[str]) -> dict[str, Run]:
        docs = self.runs.find({"run_id": {"$in": list(run_ids)}})
        return {run.run_id: run for run in map(run_of, docs)}

    @guarded
    def get_run_by_message_id(self, message_id: str) -> Run | None:
        doc = self.runs.find_one({"message_id": message_id})
        return None if doc is None else run_of(doc)

    @guarded
    def get_run_by_idempotency_key(self, key: str) -> Run | None:
        doc = self.runs.find_one({"idempotency_key": key})
        return None if doc is None else run_of(doc)

    @guarded
    def _runs_page(self, where: RunFilter, after: tuple[datetime, str] | None, limit: int) -> list[Run]:
        query = listing_filter(where)
        if after is not None:
            created_at, run_id = after
            older = [{"created_at": {"$lt": created_at}}, {"created_at": created_at, "run_id": {"$lt": run_id}}]
            query = {"$and": [query, {"$or": older}]}
        docs = self.runs.find(query).sort([("created_at", DESCENDING), ("run_id", DESCENDING)]).limit(limit)
        return [run_of(doc) for doc in docs]

    @guarded
    def delete_run(self, run_id: str) -> bool:
        result = self.runs.delete_one({"run_id": run_id, "status": {"$ne": str(RunStatus.STARTED)}})
        return bool(result.deleted_count == 1)

    @guarded
    def list_ended_before(self, *, finished_before: datetime, limit: int = DEFAULT_BATCH) -> list[str]:
        docs = (
            self.runs.find(
                {"finished_at": {"$lt": finished_before}, "status": {"$in": _ENDED}, "webhook_due_at": None},
                {"run_id": 1},
            )
            .sort("finished_at", ASCENDING)
            .limit(limit)
        )
        return [doc["run_id"] for doc in docs]

    @guarded
    def delete_ended(self, run_ids: Sequence[str]) -> list[str]:
        ended = {"run_id": {"$in": list(run_ids)}, "status": {"$in": _ENDED}, "webhook_due_at": None}
        found = [doc["run_id"] for doc in self.runs.find(ended, {"run_id": 1})]
        # a terminal run never changes, so what was found is what goes (a second
        # deleter at the same moment, which the sweep lease rules out, would count it too)
        self.runs.delete_many(ended)
        return found

    @guarded
    def count_by_status(self) -> dict[RunStatus, int]:
        counts = {status: 0 for status in RunStatus}
        for row in self.runs.aggregate([{"$group": {"_id": "$status", "n": {"$sum": 1}}}]):
            counts[RunStatus(row["_id"])] = row["n"]
        return counts

    @guarded
    def oldest_due_pending_at(self, *, now: datetime) -> datetime | None:
        pending = str(RunStatus.PENDING)
        asked = {"status": pending, "$or": [{"outbox_at": {"$ne": None}}, {"enqueued_at": {"$ne": None}}]}
        # the oldest unscheduled run by its creation, the oldest due scheduled one by its start
        unscheduled = self.runs.find_one(
            {**asked, "start_at": None, "created_at": {"$lte": now}},
            {"created_at": 1},
            sort=[("created_at", ASCENDING)],
        )
        due = self.runs.find_one(
            {**asked, "start_at": {"$ne": None, "$lte": now}},
            {"start_at": 1},
            sort=[("start_at", ASCENDING)],
        )
        times = [doc[key] for doc, key in ((unscheduled, "created_at"), (due, "start_at")) if doc is not None]
        return min(times, default=None)

    # -- dispatch bookkeeping ---------------------------------------------------------
    @guarded
    def request_start(
        self, run_id: str, *, message_id: str | None, now: datetime, outbox_at: datetime | None = None
    ) -> Run | None:
        startable = {"run_id": run_id, "status": str(RunStatus.PENDING), "outbox_at": None, "enqueued_at": None}
        stamp = {"outbox_at": outbox_at or now, "updated_at": now}
        # Keep a message id the run already has (compare-and-set on it); else take the caller's.
        for _ in range(_CAS_ROUNDS):
            read = self.runs.find_one(startable, {"_id": 0, "message_id": 1})
            if read is None:
                return None
            chosen = read.get("message_id") or message_id
            doc = self.runs.find_one_and_update(
                {**startable, "message_id": read.get("message_id")},
                {"$set": {**stamp, "message_id": chosen, "current_message_id": chosen}},
                return_document=ReturnDocument.AFTER,
            )
            if doc is not None:
                return run_of(doc)
        return None

    @guarded
    def mark_enqueued_many(self, sent: Mapping[str, str | None], *, now: datetime) -> int:
        if not sent:
            return 0
        confirmed = {"outbox_at": None, "enqueue_error": None}
        # a run with no current message yet (older documents) was never sent again: any message is its own
        sends = {"$or": [{"run_id": r, **({} if m is None else {"current_message_id": {"$in": [m, None]}})}
                         for r, m in sent.items()]}  # fmt: skip
        # enqueued_at only where unset (the first confirmation, or the claim's, stands), then the rest
        self.runs.update_many({**sends, "enqueued_at": None}, {"$set": {**confirmed, "enqueued_at": now}})
        return int(self.runs.update_many(sends, {"$set": confirmed}).matched_count)

    @guarded
    def mark_enqueue_failed(self, run_id: str, *, error: str, now: datetime) -> bool:
        result = self.runs.update_one(
            {"run_id": run_id, "outbox_at": {"$ne": None}}, {"$set": {"enqueue_error": error, "updated_at": now}}
        )
        return bool(result.matched_count == 1)

    @guarded
    def _page(
        self, where: e.Cond, order: str, args: Mapping[str, Any], after: tuple[datetime, str], limit: int
    ) -> list[RunRef]:
        at, run_id = after
        cursor = {"$or": [{order: {"$gt": at}}, {order: at, "run_id": {"$gt": run_id}}]}
        docs = (
            self.runs.find({"$and": [render.mongo_filter(where, args), cursor]}, {**RUN_REF, order: 1})
            .sort([(order, ASCENDING), ("run_id", ASCENDING)])
            .limit(limit)
        )
        return [RunRef(**{k: v for k, v in doc.items() if k != order}, waiting_since=doc[order]) for doc in docs]

    @guarded
    def _pending_before(self, field: str, cutoff: datetime, limit: int) -> list[RunRef]:
        """PENDING runs whose ``field`` (outbox_at) is before the cutoff, oldest first."""
        docs = (
            self.runs.find({"status": str(RunStatus.PENDING), field: {"$lt": cutoff}}, RUN_REF)
            .sort(field, ASCENDING)
            .limit(limit)
        )
        return [RunRef(**doc) for doc in docs]

