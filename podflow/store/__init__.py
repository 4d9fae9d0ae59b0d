"""Run stores: :class:`Store` is the contract; SQLite (default), PostgreSQL and MongoDB back it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Store

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = ["Store", "open_store"]


def open_store(settings: Settings) -> Store:
    """The store the settings name: ``PODFLOW_STORE_URL`` (postgresql://, sqlite:///,
    mongodb://), else MongoDB when ``MONGODB_URI`` is set, else SQLite under
    ``PODFLOW_DATA_DIR``.

    Raises:
      StoreUnavailable: the store cannot be opened or reached.
      StoreError: its schema is from a newer podflow.
    """
    timeout_s, attempts = settings.heartbeat_timeout_s, settings.max_attempts
    if settings.store_kind == "postgres":
        from .postgres import PostgresStore

        # a connection per worker thread, and two for heartbeats and the rest
        pool_size = settings.concurrency + 2
        return PostgresStore(
            settings.store_location, heartbeat_timeout_s=timeout_s, max_attempts=attempts, pool_size=pool_size
        )
    if settings.store_kind == "mongo":
        from .mongo import MongoStore

        return MongoStore(
            settings.store_location,
            database=settings.mongo_database,
            heartbeat_timeout_s=timeout_s,
            max_attempts=attempts,
        )
    from .sqlite import SqliteStore

    return SqliteStore(settings.sqlite_path, heartbeat_timeout_s=timeout_s, max_attempts=attempts)
