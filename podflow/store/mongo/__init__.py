"""The MongoDB store, by concern (the same shape as :mod:`podflow.store.sqlite`).

===============  ==========================================================
``connection``   the client, the collections, error translation
``migrations``   indexes (idempotent, on open) and the counters document
``documents``    runs as documents
``render``       the transition table as filters and updates
``runs``         run records, the outbox marks, the transition table applied
``catalog``      sources and profiles
``telemetry``    counters, throughput, leases
``store``        :class:`MongoStore`, all of the above
===============  ==========================================================
"""

from __future__ import annotations

from .store import MongoStore

__all__ = ["MongoStore"]
