"""The PostgreSQL store: several hosts on one database."""

from __future__ import annotations

from .catalog import PostgresCatalog
from .runs import PostgresRuns
from .telemetry import PostgresTelemetry

__all__ = ["PostgresStore"]


class PostgresStore(PostgresRuns, PostgresCatalog, PostgresTelemetry):
    """The PostgreSQL store (see :mod:`podflow.store.base` for the contract).

    Parameters:
      url: ``postgresql://user@host:port/database`` (or a libpq conninfo string).
      heartbeat_timeout_s: a STARTED run silent this long may be re-claimed.
      max_attempts: no claim beyond this attempt.
      pool_size: most connections this process keeps open.
      connect_timeout_s: how long an operation waits for a connection.

    Raises:
      StoreUnavailable: the server cannot be reached.
      StoreError: the database's schema is from a newer podflow.
    """

    def __init__(
        self,
        url: str,
        *,
        heartbeat_timeout_s: float = 120.0,
        max_attempts: int = 3,
        pool_size: int = 8,
        connect_timeout_s: float = 10.0,
    ) -> None:
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.max_attempts = max_attempts
        super().__init__(url, pool_size=pool_size, connect_timeout_s=connect_timeout_s)
