"""The PostgreSQL store (psycopg 3 and its pool), by concern -- the shape of
:mod:`podflow.store.sqlite`.

===============  ==========================================================
``connection``   the per-process pool, error translation
``migrations``   the schema as forward migrations, under an advisory lock;
                 the counters' triggers
``rows``         runs and sources as rows
``runs``         run records, the outbox marks, the transition table rendered
``catalog``      sources and profiles
``telemetry``    counters, throughput, leases
``store``        :class:`PostgresStore`, all of the above
===============  ==========================================================
"""

from __future__ import annotations

from .migrations import MIGRATIONS
from .store import PostgresStore

__all__ = ["MIGRATIONS", "PostgresStore"]
