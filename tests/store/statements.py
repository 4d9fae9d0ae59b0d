"""Counting what a store sends its database, per backend, at the driver.

SQLite: the connection's trace callback (every statement SQLite runs for the
calling thread's connection; transaction control left out). PostgreSQL: every
``psycopg.Cursor.execute``. MongoDB (mongomock or pymongo): every call of a
collection's read or write method, each one round trip to a server.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from podflow.store.base import Store

__all__ = ["count_statements"]

_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "PRAGMA")
_MONGO_CALLS = (
    "find", "find_one", "find_one_and_update", "update_one", "update_many", "bulk_write",
    "insert_one", "insert_many", "delete_one", "delete_many", "aggregate", "count_documents",
)  # fmt: skip


@contextlib.contextmanager
def count_statements(store: Store, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The statements (SQL text, or ``collection.method``) ``store`` sends inside the
    block."""
    seen: list[str] = []
    active = [True]  # the patches stay until the test ends; counting stops with the block
    kind = type(store).__name__
    if kind == "SqliteStore":
        conn = store._conn()  # type: ignore[attr-defined]

        def traced(statement: str) -> None:
            if not statement.lstrip().upper().startswith(_CONTROL):
                seen.append(statement)

        conn.set_trace_callback(traced)
        try:
            yield seen
        finally:
            conn.set_trace_callback(None)
        return
    if kind == "PostgresStore":
        import psycopg

        original = psycopg.Cursor.execute

        def execute(cursor: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            if active[0]:
                seen.append(str(query))
            return original(cursor, query, *args, **kwargs)

        monkeypatch.setattr(psycopg.Cursor, "execute", execute)
        try:
            yield seen
        finally:
            active[0] = False
        return
    collection = type(store.runs)  # type: ignore[attr-defined]
    depth = [0]  # a call counts once, not the calls it makes itself (mongomock's find_one finds)
    for name in _MONGO_CALLS:
        original = getattr(collection, name)

        def call(self: Any, *args: Any, _name: str = name, _original: Any = original, **kwargs: Any) -> Any:
            if depth[0] == 0 and active[0]:
                seen.append(f"{self.name}.{_name}")
            depth[0] += 1
            try:
                return _original(self, *args, **kwargs)
            finally:
                depth[0] -= 1

        monkeypatch.setattr(collection, name, call)
    try:
        yield seen
    finally:
        active[0] = False
