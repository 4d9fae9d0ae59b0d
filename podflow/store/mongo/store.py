"""The MongoDB store: the design's production store."""

from __future__ import annotations

from typing import Any

from .catalog import MongoCatalog
from .migrations import MongoMigrations
from .runs import MongoRuns
from .telemetry import MongoTelemetry

__all__ = ["MongoStore"]


class MongoStore(MongoRuns, MongoCatalog, MongoTelemetry, MongoMigrations):
    """The MongoDB store (see :mod:`podflow.store.base` for the contract).

    Parameters:
      uri, database, client, server_selection_timeout_ms: see
        :class:`~podflow.store.mongo.connection.MongoConnection`.
      heartbeat_timeout_s, max_attempts: execution policy (see the protocol).
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
        super().__init__(uri, database=database, client=client, server_selection_timeout_ms=server_selection_timeout_ms)
        try:
            self.ensure_indexes()
            self.ensure_name_keys()
            self.ensure_counters()
            self.ensure_current_message_ids()
            self.ensure_priorities()
            self.ensure_attempts_counted()
            self.store_id = self.ensure_store_id()
        except BaseException:
            self.close()
            raise
