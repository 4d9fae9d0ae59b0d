"""Sources and profiles on PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import psycopg
from psycopg.types.json import Jsonb

from ...errors import AlreadyExists, ProfileNotFound
from ...models import Source, SourceInfo
from ..base import PROFILE_MODELS, Profile, ProfileKind, profile_kind, profile_table
from .connection import PostgresConnection, guarded
from .rows import SOURCE_INFO_COLUMNS, source_info

__all__ = ["PostgresCatalog"]


class PostgresCatalog(PostgresConnection):
    # -- sources ----------------------------------------------------------------------
    @guarded
    def add_source(self, source: Source) -> tuple[SourceInfo, bool]:
        while True:
            row = self._one(
                "INSERT INTO sources (source_id, title, filename, content_type, byte_size, sha256, text, created_at)"
                " VALUES (%(source_id)s, %(title)s, %(filename)s, %(content_type)s, %(byte_size)s, %(sha256)s,"
                " %(text)s, %(created_at)s) ON CONFLICT (sha256) DO NOTHING RETURNING source_id",
                source.model_dump(mode="python"),
            )
            if row is not None:
                return source.info(), True
            existing = self._one(f"SELECT {SOURCE_INFO_COLUMNS} FROM sources WHERE sha256 = %s", (source.sha256,))
            if existing is not None:  # else deleted in between: try again
                return source_info(existing), False

    @guarded
    def get_source(self, source_id: str) -> Source | None:
        row = self._one(f"SELECT {SOURCE_INFO_COLUMNS}, text FROM sources WHERE source_id = %s", (source_id,))
        return None if row is None else Source.model_validate(row)

    @guarded
    def list_sources(self, *, limit: int = 100) -> list[SourceInfo]:
        rows = self._all(
            f"SELECT {SOURCE_INFO_COLUMNS} FROM sources ORDER BY created_at DESC, source_id DESC LIMIT %s", (limit,)
        )
        return [source_info(row) for row in rows]

    @guarded
    def delete_source(self, source_id: str) -> bool:
        return self._one("DELETE FROM sources WHERE source_id = %s RETURNING 1", (source_id,)) is not None

    @guarded
    def missing_sources(self, source_ids: Sequence[str]) -> list[str]:
        if not source_ids:
            return []
        rows = self._all("SELECT source_id FROM sources WHERE source_id = ANY(%s)", (list(source_ids),))
        found = {row["source_id"] for row in rows}
        return [source_id for source_id in source_ids if source_id not in found]

    # -- profiles ---------------------------------------------------------------------
    @guarded
    def get_profile(self, kind: ProfileKind, name: str) -> Profile | None:
        row = self._one(f"SELECT doc FROM {profile_table(kind)} WHERE name = %s", (name,))
        return None if row is None else PROFILE_MODELS[kind].model_validate(row["doc"])

    @guarded
    def list_profiles(self, kind: ProfileKind) -> list[Profile]:
        rows = self._all(f"SELECT doc FROM {profile_table(kind)} ORDER BY name COLLATE \"C\"")
        return [PROFILE_MODELS[kind].model_validate(row["doc"]) for row in rows]

    @guarded
    def create_profile(self, profile: Profile, *, now: datetime) -> None:
        kind = profile_kind(profile)
        try:
            self._one(
                f"INSERT INTO {profile_table(kind)} (name, doc, updated_at) VALUES (%s, %s, %s)",
                (profile.name, Jsonb(profile.model_dump(mode="json")), now),
            )
        except psycopg.errors.UniqueViolation:
            raise AlreadyExists(f"{kind} profile {profile.name!r} already exists") from None

    @guarded
    def update_profile(self, profile: Profile, *, now: datetime) -> None:
        kind = profile_kind(profile)
        row = self._one(
            f"UPDATE {profile_table(kind)} SET doc = %s, updated_at = %s WHERE name = %s RETURNING 1",
            (Jsonb(profile.model_dump(mode="json")), now, profile.name),
        )
        if row is None:
            raise ProfileNotFound(profile.name)

    @guarded
    def delete_profile(self, kind: ProfileKind, name: str) -> bool:
        return self._one(f"DELETE FROM {profile_table(kind)} WHERE name = %s RETURNING 1", (name,)) is not None

    @guarded
    def seed_profiles(self, profiles: Sequence[Profile], *, now: datetime) -> list[str]:
        inserted = []
        with self._conn() as conn, conn.transaction():
            for profile in profiles:
                kind = profile_kind(profile)
                first_time = conn.execute(
                    "INSERT INTO seeded (kind, name) VALUES (%s, %s) ON CONFLICT DO NOTHING RETURNING 1",
                    (kind, profile.name),
                ).fetchone()
                if first_time and conn.execute(
                    f"INSERT INTO {profile_table(kind)} (name, doc, updated_at) VALUES (%s, %s, %s)"
                    " ON CONFLICT DO NOTHING RETURNING 1",
                    (profile.name, Jsonb(profile.model_dump(mode="json")), now),
                ).fetchone():
                    inserted.append(profile.name)
        return inserted
