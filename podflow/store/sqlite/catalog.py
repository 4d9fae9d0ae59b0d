"""Sources and profiles on SQLite."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime

from ...errors import AlreadyExists, ProfileNotFound
from ...models import Source, SourceInfo
from ...timeutil import from_ms, to_ms
from ..base import PROFILE_MODELS, Profile, ProfileKind, profile_kind, profile_table
from .connection import SqliteConnection, guarded, writes
from .rows import SOURCE_INFO_COLUMNS, placeholders, source_info

__all__ = ["SqliteCatalog"]


class SqliteCatalog(SqliteConnection):
    # -- sources ----------------------------------------------------------------------
    @guarded
    @writes(durable=True)
    def add_source(self, source: Source) -> tuple[SourceInfo, bool]:
        conn = self._conn()
        row = conn.execute(
            "INSERT INTO sources (source_id, title, filename, content_type, byte_size, sha256, text, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (sha256) DO NOTHING RETURNING source_id",
            (
                source.source_id,
                source.title,
                source.filename,
                source.content_type,
                source.byte_size,
                source.sha256,
                source.text,
                to_ms(source.created_at),
            ),
        ).fetchone()
        if row is not None:
            return source.info(), True
        existing = conn.execute(
            f"SELECT {SOURCE_INFO_COLUMNS} FROM sources WHERE sha256 = ?", (source.sha256,)
        ).fetchone()
        if existing is None:  # deleted in between; try once more
            return self.add_source(source)
        return source_info(existing), False

    @guarded
    def get_source(self, source_id: str) -> Source | None:
        row = (
            self._conn()
            .execute(f"SELECT {SOURCE_INFO_COLUMNS}, text FROM sources WHERE source_id = ?", (source_id,))
            .fetchone()
        )
        return None if row is None else Source(**{**dict(row), "created_at": from_ms(row["created_at"])})

    @guarded
    def list_sources(self, *, limit: int = 100) -> list[SourceInfo]:
        rows = self._conn().execute(
            f"SELECT {SOURCE_INFO_COLUMNS} FROM sources ORDER BY created_at DESC, source_id DESC LIMIT ?", (limit,)
        )
        return [source_info(row) for row in rows]

    @guarded
    @writes(durable=True)
    def delete_source(self, source_id: str) -> bool:
        return self._conn().execute("DELETE FROM sources WHERE source_id = ?", (source_id,)).rowcount == 1

    @guarded
    def missing_sources(self, source_ids: Sequence[str]) -> list[str]:
        wanted = list(dict.fromkeys(source_ids))
        if not wanted:
            return []
        rows = self._conn().execute(
            f"SELECT source_id FROM sources WHERE source_id IN ({placeholders(len(wanted))})", wanted
        )
        found = {row["source_id"] for row in rows}
        return [source_id for source_id in source_ids if source_id not in found]

    # -- profiles ---------------------------------------------------------------------
    @guarded
    def get_profile(self, kind: ProfileKind, name: str) -> Profile | None:
        row = self._conn().execute(f"SELECT doc FROM {profile_table(kind)} WHERE name = ?", (name,)).fetchone()
        return None if row is None else PROFILE_MODELS[kind].model_validate_json(row["doc"])

    @guarded
    def list_profiles(self, kind: ProfileKind) -> list[Profile]:
        rows = self._conn().execute(f"SELECT doc FROM {profile_table(kind)} ORDER BY name").fetchall()
        return [PROFILE_MODELS[kind].model_validate_json(row["doc"]) for row in rows]

    @guarded
    @writes(durable=True)
    def create_profile(self, profile: Profile, *, now: datetime) -> None:
        kind = profile_kind(profile)
        try:
            self._conn().execute(
                f"INSERT INTO {profile_table(kind)} (name, doc, updated_at) VALUES (?, ?, ?)",
                (profile.name, profile.model_dump_json(), to_ms(now)),
            )
        except sqlite3.IntegrityError:
            raise AlreadyExists(f"{kind} profile {profile.name!r} already exists") from None

    @guarded
    @writes(durable=True)
    def update_profile(self, profile: Profile, *, now: datetime) -> None:
        kind = profile_kind(profile)
        cur = self._conn().execute(
            f"UPDATE {profile_table(kind)} SET doc = ?, updated_at = ? WHERE name = ?",
            (profile.model_dump_json(), to_ms(now), profile.name),
        )
        if cur.rowcount == 0:
            raise ProfileNotFound(profile.name)

    @guarded
    @writes(durable=True)
    def delete_profile(self, kind: ProfileKind, name: str) -> bool:
        return self._conn().execute(f"DELETE FROM {profile_table(kind)} WHERE name = ?", (name,)).rowcount == 1

    @guarded
    @writes(durable=True)
    def seed_profiles(self, profiles: Sequence[Profile], *, now: datetime) -> list[str]:
        inserted = []
        with self._transaction() as conn:
            for profile in profiles:
                kind = profile_kind(profile)
                first_time = conn.execute(
                    "INSERT OR IGNORE INTO seeded (kind, name) VALUES (?, ?)", (kind, profile.name)
                ).rowcount
                if first_time and conn.execute(
                    f"INSERT OR IGNORE INTO {profile_table(kind)} (name, doc, updated_at) VALUES (?, ?, ?)",
                    (profile.name, profile.model_dump_json(), to_ms(now)),
                ).rowcount:
                    inserted.append(profile.name)
        return inserted
