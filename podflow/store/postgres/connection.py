"""PostgreSQL connections: a psycopg_pool pool per process, and error translation.

Every connection is in autocommit mode: each store method is one statement
(so one transaction), or opens an explicit transaction. Sessions run in UTC.
A forked child (a Dramatiq worker process) opens its own pool on first use:
connections are never shared across processes.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Concatenate, ParamSpec, TypeVar

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from ...errors import StoreError, StoreUnavailable
from .migrations import migrate, read_store_id, schema_version

__all__ = ["PostgresConnection", "guarded", "redacted"]

P = ParamSpec("P")
T = TypeVar("T")
S = TypeVar("S")


def redacted(url: str) -> str:
    """``url`` without its password (for messages)."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    host, dbname = info.get("host", ""), info.get("dbname", "")
    return f"postgresql://{info.get('user', '')}@{host}:{info.get('port', 5432)}/{dbname}"


def guarded(method: Callable[Concatenate[S, P], T]) -> Callable[Concatenate[S, P], T]:
    """Translate psycopg's errors into podflow's."""

    @functools.wraps(method)
    def wrapper(store: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return method(store, *args, **kwargs)
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise StoreUnavailable(f"PostgreSQL unavailable: {exc}") from exc
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL error: {exc}") from exc

    return wrapper


class PostgresConnection:
    """A pool of connections to one database.

    Parameters:
      url: a libpq connection string or ``postgresql://`` URL.
      pool_size: most connections this process keeps open (one per busy thread).
      connect_timeout_s: how long an operation waits for a connection.
    """

    def __init__(self, url: str, *, pool_size: int = 8, connect_timeout_s: float = 10.0) -> None:
        self.url = url
        self.pool_size = pool_size
        self.connect_timeout_s = connect_timeout_s
        self._pool_lock = threading.Lock()
        self._pool_obj: ConnectionPool[Any] | None = None
        self._pool_pid = 0
        self._inherited: list[ConnectionPool[Any]] = []
        self._closed = False
        self.store_id = ""
        try:
            self._migrate()
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"{type(self).__name__}({redacted(self.url)!r})"

    def _pool(self) -> ConnectionPool[Any]:
        if self._pool_obj is None or self._pool_pid != os.getpid():
            with self._pool_lock:
                if self._closed:
                    raise StoreUnavailable("the store is closed")
                if self._pool_obj is None or self._pool_pid != os.getpid():
                    # a forked child never touches the parent's connections, nor lets
                    # them be collected (which would close them under the parent)
                    if self._pool_obj is not None:
                        self._inherited.append(self._pool_obj)
                    self._pool_obj = ConnectionPool(
                        self.url,
                        min_size=1,
                        max_size=self.pool_size,
                        timeout=self.connect_timeout_s,
                        kwargs={
                            "autocommit": True,
                            "row_factory": dict_row,
                            "options": "-c TimeZone=UTC",
                            "connect_timeout": max(1, round(self.connect_timeout_s)),
                        },
                        name="podflow",
                        open=True,
                    )
                    self._pool_pid = os.getpid()
        return self._pool_obj

    @contextmanager
    def _conn(self) -> Iterator[Any]:
        """A connection of this process's pool, for one statement or transaction."""
        with self._pool().connection() as conn:
            yield conn

    def _one(self, query: str, params: Any = None) -> Any:
        """The first row of ``query`` (None without rows, or for a statement that returns none)."""
        with self._conn() as conn:
            cur = conn.execute(query, params)
            return cur.fetchone() if cur.description else None

    def _all(self, query: str, params: Any = None) -> list[Any]:
        with self._conn() as conn:
            return list(conn.execute(query, params).fetchall())

    @guarded
    def _migrate(self) -> None:
        with self._conn() as conn:
            migrate(conn, where=redacted(self.url))
            self.store_id = read_store_id(conn)

    @guarded
    def schema_version(self) -> int:
        with self._conn() as conn:
            return schema_version(conn)

    @guarded
    def ping(self) -> None:
        self._one("SELECT 1")

    def close(self) -> None:
        with self._pool_lock:
            self._closed = True
            pool, self._pool_obj = self._pool_obj, None
        if pool is not None and self._pool_pid == os.getpid():
            pool.close()


