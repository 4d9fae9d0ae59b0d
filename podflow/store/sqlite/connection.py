"""SQLite connections: one per thread, error translation, and the write queue.

Durability: what a client is told was accepted -- a new run, a start
request, a cancellation, sources and profiles -- survives a power cut: the
write-ahead log is fsynced before the method returns (``durable`` writes; the
guarantee of ``synchronous=FULL``, but flushed after the write lock is
released, so other writers never wait for this one's disk; concurrent durable
writes share one flush, see :mod:`.walsync`). The execution
path (claims, heartbeats, progress, finishes, enqueue marks, sweep writes)
commits with ``synchronous=NORMAL``: still atomic, safe from corruption and
durable across process crashes, but a power cut may roll back its last
fraction of a second -- which fencing and the sweep already handle (a
rolled-back finish re-executes the run as a new attempt; a rolled-back
enqueue mark is re-sent from the outbox). An fsync per execution write would
cost more than the rest of podflow's bookkeeping.
"""

from __future__ import annotations

import fcntl
import functools
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from ...errors import StoreError, StoreUnavailable
from .migrations import migrate, read_store_id
from .walsync import WalSync

__all__ = ["SqliteConnection", "guarded", "writes"]

P = ParamSpec("P")
T = TypeVar("T")
S = TypeVar("S", bound="SqliteConnection")

#: waiting for another process's write lock: first pause, and the longest.
#: SQLite's own busy handler sleeps 1, 2, 5, 10... ms, far longer than a write
#: holds the lock (tens of microseconds), so podflow waits in finer steps.
_BUSY_FIRST_S = 0.00005
_BUSY_MAX_S = 0.002


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY or "locked" in str(exc)


def guarded(method: Callable[Concatenate[S, P], T]) -> Callable[Concatenate[S, P], T]:
    """Translate sqlite3's errors into podflow's, retrying while the file is
    locked by another process (for up to ``busy_timeout_s``).

    Retrying the whole method is safe: SQLite refuses a statement that cannot
    take the lock before it changes anything, every method is one statement or
    one transaction, and the few that issue two repeat idempotent writes.
    """

    @functools.wraps(method)
    def wrapper(store: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        deadline: float | None = None
        pause = _BUSY_FIRST_S
        while True:
            try:
                return method(store, *args, **kwargs)
            except sqlite3.OperationalError as exc:  # locked too long, unreadable file, full disk...
                if _is_busy(exc):
                    now = time.monotonic()
                    if deadline is None:
                        deadline = now + store.busy_timeout_s
                    if now < deadline:
                        time.sleep(pause)
                        pause = min(pause * 2, _BUSY_MAX_S)
                        continue
                raise StoreUnavailable(f"SQLite store unavailable: {exc}") from exc
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"SQLite store error: {exc}") from exc

    return wrapper


def writes(
    *, durable: bool = False
) -> Callable[[Callable[Concatenate[S, P], T]], Callable[Concatenate[S, P], T]]:
    """A method that writes: run it in :meth:`SqliteConnection.writing`."""

    def decorate(method: Callable[Concatenate[S, P], T]) -> Callable[Concatenate[S, P], T]:
        @functools.wraps(method)
        def wrapper(store: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
            with store.writing(durable=durable):
                return method(store, *args, **kwargs)

        return wrapper

    return decorate


class SqliteConnection:
    """The file, its per-thread connections and its cross-process write lock.

    Parameters:
      path: the database file; its directory is created if needed.
      busy_timeout_s: how long a write waits for another process's lock.
    """

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 10.0) -> None:
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._write_lock = threading.RLock()  # re-entered by create_run and add_source retries
        self._lock_fd: int | None = None
        self._lock_pid = 0
        self._closed = False
        self.store_id = ""
        self._wal_sync = WalSync(Path(f"{self.path}-wal"))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(f"cannot create {self.path.parent}: {exc}") from exc
        self._migrate()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    @contextmanager
    def writing(self, *, durable: bool = False) -> Iterator[None]:
        """Writers queue instead of polling SQLite's lock: threads of one process
        on a lock, processes on an ``flock`` of a sidecar file (``<db>.lock``),
        which the kernel hands to the next waiter the moment it is released.
        SQLite's own locking still guards the file (and writers that are not
        podflow). If ``durable``, the write-ahead log is fsynced after the locks
        are released, so other writers never wait for this one's disk flush.
        Keep the work inside small: build models from returned rows after it."""
        with self._write_lock, self._file_lock():
            yield
        if durable:
            ticket = self._wal_sync.ticket()
            deferred: list[int] | None = getattr(self._local, "deferred", None)
            if deferred is None:
                self._wal_sync.wait(ticket)
            else:
                deferred.append(ticket)
                self._wal_sync.start(ticket)

    @contextmanager
    def deferred_sync(self) -> Iterator[None]:
        """Durable writes of this thread inside the block return once committed,
        their flush begun on another thread; leaving the block waits until it is
        done, so what the caller does meanwhile (a broker send) overlaps the disk
        flush. What the block returns is as durable as ever; a reader may see the
        rows before they are on disk (a power cut would take them and anything
        after them together). Re-entrant.

        Raises:
          StoreUnavailable: on leaving, a flush failed.
        """
        if getattr(self._local, "deferred", None) is not None:
            yield
            return
        tickets: list[int] = []
        self._local.deferred = tickets
        try:
            yield
        finally:
            self._local.deferred = None
            if tickets:
                self._wal_sync.wait(max(tickets))

    @contextmanager
    def _file_lock(self) -> Iterator[None]:
        if self._lock_fd is None or self._lock_pid != os.getpid():  # first use, or a forked child
            if self._closed:
                raise StoreUnavailable("the store is closed")
            self._lock_fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o660)
            self._lock_pid = os.getpid()
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise StoreUnavailable("the store is closed")
            # timeout=0: a locked file raises at once and guarded() waits in fine steps
            conn = sqlite3.connect(self.path, timeout=0, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA synchronous = NORMAL")  # see the module docstring
            conn.execute("PRAGMA foreign_keys = OFF")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction taken up front (no lock upgrade, so no SQLITE_BUSY deadlock)."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @guarded
    def _migrate(self) -> None:
        conn = self._conn()
        # WAL cannot be switched inside a transaction; it is persistent once set.
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise StoreError(f"{self.path}: cannot use WAL journal (got {mode!r})")
        with self._transaction():
            migrate(conn, where=str(self.path))
        self.store_id = read_store_id(conn)

    def schema_version(self) -> int:
        return int(self._conn().execute("PRAGMA user_version").fetchone()[0])

    @guarded
    def ping(self) -> None:
        self._conn().execute("SELECT 1").fetchone()

    def close(self) -> None:
        self._closed = True
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        with self._write_lock:
            if self._lock_fd is not None and self._lock_pid == os.getpid():
                os.close(self._lock_fd)
            self._lock_fd = None
        self._local = threading.local()
