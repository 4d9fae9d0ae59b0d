"""The embedded SQLite store, by concern.

===============  ==========================================================
``connection``   per-thread connections, error translation, the write queue,
                 durability
``migrations``   the schema as forward migrations (``PRAGMA user_version``)
``rows``         runs and sources as rows
``runs``         run records, the outbox marks, the transition table rendered
``catalog``      sources and profiles
``telemetry``    counters, throughput, leases
``store``        :class:`SqliteStore`, all of the above
===============  ==========================================================

Safe across processes: WAL journal, a queue of writers, and every status
change is one ``UPDATE ... WHERE <precondition> RETURNING`` statement.
"""

from __future__ import annotations

from .migrations import MIGRATIONS
from .store import SqliteStore

__all__ = ["MIGRATIONS", "SqliteStore"]
