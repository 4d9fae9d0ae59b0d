"""MongoDB's schema: the indexes, created idempotently on open, and the counters
document, counted from the runs once when it is missing."""

from __future__ import annotations

import contextlib
import secrets
from collections import Counter

from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError

from ...states import TERMINAL, RunStatus
from ..base import name_key
from ..counters import CREATED
from .connection import MongoConnection, guarded
from .documents import COUNTERS, finished_increments_of

__all__ = ["MongoMigrations"]


class MongoMigrations(MongoConnection):
    @guarded
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
        # the listing's filters (podflow.store.base.RunFilter)
        for field in ("name_key", "episode_profile", "speaker_profile"):
            self.runs.create_index([(field, ASCENDING), ("created_at", DESCENDING), ("run_id", DESCENDING)])
        self.runs.create_index("retry_of", sparse=True)
        self.ensure_webhook_index()
        self.sources.create_index("source_id", unique=True)
        self.sources.create_index("sha256", unique=True)
        self.sources.create_index([("created_at", DESCENDING), ("source_id", DESCENDING)])
        for collection in self.profiles.values():
            collection.create_index("name", unique=True)
        self.seeded.create_index([("kind", ASCENDING), ("name", ASCENDING)], unique=True)
        self.leases.create_index("name", unique=True)

    @guarded
    def ensure_webhook_index(self) -> None:
        """The completion webhooks' due times (SQLite schema 6, PostgreSQL 4): partial,
        on the runs with a delivery due, so finding them costs what is due, not what is stored."""
        self.runs.create_index(
            "webhook_due_at",
            name="runs_webhook_due",
            partialFilterExpression={"webhook_due_at": {"$type": "date"}},
        )

    @guarded
    def ensure_name_keys(self) -> None:
        """Give each run stored before name search its ``name_key`` (once: later
        inserts carry it)."""
        for doc in self.runs.find({"name_key": {"$exists": False}}, {"_id": 1, "episode_name": 1}):
            self.runs.update_one({"_id": doc["_id"]}, {"$set": {"name_key": name_key(doc["episode_name"])}})

    @guarded
    def ensure_store_id(self) -> str:
        """``meta``'s ``store_id``, made on first open (64 random bits as hex); the
        first process to insert it wins, the others read it."""
        with contextlib.suppress(DuplicateKeyError):  # two first opens at once: one upsert wins
            self.meta.update_one(
                {"_id": "store_id"}, {"$setOnInsert": {"value": secrets.token_hex(8)}}, upsert=True
            )
        return str(self.meta.find_one({"_id": "store_id"})["value"])

    @guarded
    def ensure_current_message_ids(self) -> None:
        """Give a live run stored before ``current_message_id`` existed its first
        message id as the current one (the SQL stores' schema 5 / 3, done in place)."""
        live = {"status": {"$in": [str(RunStatus.PENDING), str(RunStatus.STARTED)]}}
        for doc in self.runs.find({**live, "current_message_id": {"$exists": False}}, {"run_id": 1, "message_id": 1}):
            self.runs.update_one(
                {"run_id": doc["run_id"], "current_message_id": {"$exists": False}},
                {"$set": {"current_message_id": doc.get("message_id")}},
            )

    @guarded
    def ensure_priorities(self) -> None:
        """Give each run stored before priorities its band, ``normal`` (the SQL
        stores' schema 7 / 5 column default), so the sweep's refs always name one;
        a run stored then has no ``start_at``, which reads as unscheduled."""
        self.runs.update_many({"priority": {"$exists": False}}, {"$set": {"priority": "normal"}})

    @guarded
    def ensure_attempts_counted(self) -> None:
        """Give each run stored before ``attempts_counted`` its count: every attempt
        made so far counts toward max_attempts, as it did (the SQL stores' schema 8 / 6).
        The claim's and the sweep's filters compare it, and a missing field matches none.
        An update with a pipeline (MongoDB 4.2 or later) copies ``attempt`` in the server."""
        self.runs.update_many(
            {"attempts_counted": {"$exists": False}}, [{"$set": {"attempts_counted": "$attempt"}}]
        )

    @guarded
    def ensure_counters(self) -> None:
        """Create the counters document from the runs already there, if it is missing
        (a database from before it existed). Best effort under concurrency: another
        process's ``$inc`` may create it first, and then the existing runs go uncounted."""
        if self.stats_collection.find_one(COUNTERS, {"_id": 1}) is not None:
            return
        counts: Counter[str] = Counter({CREATED: self.runs.count_documents({})})
        ended = self.runs.find(
            {"status": {"$in": [str(s) for s in TERMINAL]}},
            {"_id": 0, "status": 1, "started_at": 1, "finished_at": 1, "updated_at": 1, "error.type": 1},
        )
        for doc in ended:
            counts.update(finished_increments_of(doc))
        with contextlib.suppress(DuplicateKeyError):  # another process made it first
            self.stats_collection.insert_one({**COUNTERS, **counts})
