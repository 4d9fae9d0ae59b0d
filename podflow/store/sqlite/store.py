"""The embedded store: one SQLite file shared by the API, workers and scheduler."""

from __future__ import annotations

from pathlib import Path

from .catalog import SqliteCatalog
from .runs import SqliteRuns
from .telemetry import SqliteTelemetry

__all__ = ["SqliteStore"]


class SqliteStore(SqliteRuns, SqliteCatalog, SqliteTelemetry):
    """The embedded store (see :mod:`podflow.store.base` for the contract).

    Parameters:
      path: the database file; its directory is created if needed.
      heartbeat_timeout_s: a STARTED run silent this long may be re-claimed.
      max_attempts: no claim beyond this attempt.
      busy_timeout_s: how long a write waits for another process's lock.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        heartbeat_timeout_s: float = 120.0,
        max_attempts: int = 3,
        busy_timeout_s: float = 10.0,
    ) -> None:
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.max_attempts = max_attempts
        super().__init__(path, busy_timeout_s=busy_timeout_s)
