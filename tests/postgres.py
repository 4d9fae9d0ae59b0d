"""PostgreSQL for tests: a database of its own per user, uniquely named, always dropped.

The server is ``PODFLOW_TEST_POSTGRES_URL`` (a URL of any database on it, used
only to create and drop ours), else the one ``make test`` makes sure of at
127.0.0.1:5432. Tests never touch a database they did not create.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

__all__ = ["SERVER_URL", "TABLES", "database_url", "scratch_database", "truncate"]

SERVER_URL = os.environ.get("PODFLOW_TEST_POSTGRES_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
#: every table a store writes, emptied between tests that share a database
TABLES = ("runs", "sources", "episode_profiles", "speaker_profiles", "seeded", "leases", "stats")


def database_url(name: str) -> str:
    """SERVER_URL (a postgresql:// URL) pointing at database ``name`` instead."""
    parts = urlsplit(SERVER_URL)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _admin() -> psycopg.Connection[tuple[object, ...]]:
    try:
        return psycopg.connect(SERVER_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        raise RuntimeError(
            f"no PostgreSQL answers at {SERVER_URL!r} ({exc}); `make test` starts one, "
            "or point PODFLOW_TEST_POSTGRES_URL at a server"
        ) from None


@contextmanager
def scratch_database(label: str = "t") -> Iterator[str]:
    """A new, empty database named ``podflow_test_<label>_<pid>_<random>``; its URL. Dropped afterwards."""
    name = f"podflow_test_{label}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with _admin() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield database_url(name)
    finally:
        with _admin() as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def truncate(url: str) -> None:
    """Empty every store table of the database at ``url`` (the schema stays)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(sql.Identifier(t) for t in TABLES)))
