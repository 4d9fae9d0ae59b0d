"""Sources and profiles on MongoDB."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError

from ...errors import AlreadyExists, ProfileNotFound, StoreError
from ...models import Source, SourceInfo
from ..base import PROFILE_MODELS, Profile, ProfileKind, profile_kind
from .connection import MongoConnection, guarded

__all__ = ["MongoCatalog"]

#: an insert that keeps colliding with a document deleted in between gives up after this many tries
_ROUNDS = 8


class MongoCatalog(MongoConnection):
    # -- sources ----------------------------------------------------------------------
    @guarded
    def add_source(self, source: Source) -> tuple[SourceInfo, bool]:
        for _ in range(_ROUNDS):
            try:
                self.sources.insert_one(source.model_dump(mode="python"))
                return source.info(), True
            except DuplicateKeyError:
                existing = self.sources.find_one({"sha256": source.sha256}, {"_id": 0, "text": 0})
                if existing is not None:
                    return SourceInfo.model_validate(existing), False
        raise StoreError(f"could not store source {source.source_id}")

    @guarded
    def get_source(self, source_id: str) -> Source | None:
        doc = self.sources.find_one({"source_id": source_id}, {"_id": 0})
        return None if doc is None else Source.model_validate(doc)

    @guarded
    def list_sources(self, *, limit: int = 100) -> list[SourceInfo]:
        docs = (
            self.sources.find({}, {"_id": 0, "text": 0})
            .sort([("created_at", DESCENDING), ("source_id", DESCENDING)])
            .limit(limit)
        )
        return [SourceInfo.model_validate(doc) for doc in docs]

    @guarded
    def delete_source(self, source_id: str) -> bool:
        return bool(self.sources.delete_one({"source_id": source_id}).deleted_count == 1)

    @guarded
    def missing_sources(self, source_ids: Sequence[str]) -> list[str]:
        if not source_ids:
            return []
        found = {
            doc["source_id"] for doc in self.sources.find({"source_id": {"$in": list(source_ids)}}, {"source_id": 1})
        }
        return [source_id for source_id in source_ids if source_id not in found]

    # -- profiles ---------------------------------------------------------------------
    @guarded
    def get_profile(self, kind: ProfileKind, name: str) -> Profile | None:
        doc = self.profiles[kind].find_one({"name": name}, {"_id": 0, "updated_at": 0})
        return None if doc is None else PROFILE_MODELS[kind].model_validate(doc)

    @guarded
    def list_profiles(self, kind: ProfileKind) -> list[Profile]:
        docs = self.profiles[kind].find({}, {"_id": 0, "updated_at": 0}).sort("name", ASCENDING)
        return [PROFILE_MODELS[kind].model_validate(doc) for doc in docs]

    @guarded
    def create_profile(self, profile: Profile, *, now: datetime) -> None:
        kind = profile_kind(profile)
        try:
            self.profiles[kind].insert_one({**profile.model_dump(mode="python"), "updated_at": now})
        except DuplicateKeyError:
            raise AlreadyExists(f"{kind} profile {profile.name!r} already exists") from None

    @guarded
    def update_profile(self, profile: Profile, *, now: datetime) -> None:
        kind = profile_kind(profile)
        doc = {**profile.model_dump(mode="python"), "updated_at": now}
        result = self.profiles[kind].replace_one({"name": profile.name}, doc)
        if result.matched_count == 0:
            raise ProfileNotFound(profile.name)

    @guarded
    def delete_profile(self, kind: ProfileKind, name: str) -> bool:
        return bool(self.profiles[kind].delete_one({"name": name}).deleted_count == 1)

    @guarded
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
