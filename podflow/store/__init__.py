"""Run stores: :class:`Store` is the contract; SQLite (default) and MongoDB back it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Store

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = ["Store", "open_store"]


def open_store(settings: Settings) -> Store:
    """The store the settings name: MongoDB when MONGODB_URI is set, else SQLite
    under PODFLOW_DATA_DIR.

    Raises:
      StoreUnavailable: the store cannot be opened or reached.
    """
    if settings.store_kind == "mongo":
        from .mongo import MongoStore

        return MongoStore(
            settings.mongodb_uri,
            database=settings.mongodb_database,
            heartbeat_timeout_s=settings.heartbeat_timeout_s,
            max_attempts=settings.max_attempts,
        )
    from .sqlite import SqliteStore

    return SqliteStore(
        settings.sqlite_path,
        heartbeat_timeout_s=settings.heartbeat_timeout_s,
        max_attempts=settings.max_attempts,
    )
