"""Flushing SQLite's write-ahead log for durable writes: one fdatasync for many commits.

A durable write (a new run, a start request, a cancellation: what a client is
told was accepted) returns only once the log holding its commit is on disk.
:class:`WalSync` is the group commit that makes that cheap:

* Every durable commit takes a *ticket* (:meth:`WalSync.ticket`) after it
  committed. A flush that *begins* after a ticket was taken covers its commit:
  the commit's frames were written to the log before the flush was asked for.
* :meth:`WalSync.wait` returns once a flush covering the ticket has finished.
  If none is under way, the caller flushes itself (no thread hop when writes
  come one at a time); if one is, the caller waits for it and, if it began too
  early to cover the ticket, for the next, which covers every ticket taken
  meanwhile. Concurrent durable writes (the API's requests) share flushes.
* :meth:`WalSync.start` begins a flush on a thread of its own and returns at
  once, so the caller can do something else while the disk works (the submit
  path sends the run to the broker) and :meth:`wait` later, usually finding it done.

The log is opened for each flush: a cached descriptor could outlive a log that
SQLite deleted and made anew. ``flush`` is a parameter so tests can hold it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

from ...errors import StoreUnavailable

__all__ = ["WalSync"]

#: what SQLite's own synchronous=FULL calls where it exists (Linux): the data and the
#: metadata needed to read it back (the size), without a journal commit for the mtime
_datasync = getattr(os, "fdatasync", os.fsync)


def flush_file(path: Path) -> None:
    """fdatasync ``path``. Raises: OSError."""
    fd = os.open(path, os.O_RDONLY)
    try:
        _datasync(fd)
    finally:
        os.close(fd)


class WalSync:
    """Group commit for one process's durable writes to ``<db>-wal`` (see the module).

    Parameters:
      wal: the write-ahead log's path.
      flush: makes it durable (raises OSError); :func:`flush_file` of ``wal`` by default.
    """

    def __init__(self, wal: Path, *, flush: Callable[[], None] | None = None) -> None:
        self.wal = wal
        self._flush = flush or (lambda: flush_file(self.wal))
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._cond = threading.Condition()
        self._taken = 0  # tickets taken so far
        self._synced = 0  # every ticket up to this one is durable
        self._flushing = False
        self._failed = 0  # the last flush failed: tickets up to this one may not be durable
        self._error: OSError | None = None
        self._wanted = 0  # the background flusher: flush at least up to this ticket
        self._thread: threading.Thread | None = None
        #: flushes done, for tests and the benchmark notes
        self.flushes = 0

    def _own(self) -> None:
        """After a fork, start afresh: the parent's threads and lock state are not ours."""
        if self._pid != os.getpid():
            self._reset()

    def ticket(self) -> int:
        """A ticket for a commit that has just been made (before any flush is asked for)."""
        self._own()
        with self._cond:
            self._taken += 1
            return self._taken

    def wait(self, ticket: int) -> None:
        """Return once the commit of ``ticket`` is on disk.

        Raises:
          StoreUnavailable: the flush that should have covered it failed.
        """
        self._own()
        with self._cond:
            while self._synced < ticket:
                if self._failed >= ticket:
                    raise StoreUnavailable(f"SQLite store: cannot flush {self.wal}: {self._error}")
                if self._flushing:
                    self._cond.wait()
                    continue
                self._flush_locked()

    def start(self, ticket: int) -> None:
        """Begin flushing up to ``ticket`` on the background thread; :meth:`wait` for it."""
        self._own()
        with self._cond:
            if self._synced >= ticket:
                return
            self._wanted = max(self._wanted, ticket)
            if self._thread is None:
                self._thread = threading.Thread(target=self._background, name="podflow-walsync", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def _flush_locked(self) -> None:
        """Flush, covering every ticket taken so far; called and returns holding the lock."""
        self._flushing = True
        covers = self._taken
        self._cond.release()
        error: OSError | None = None
        try:
            self._flush()
        except OSError as exc:
            error = exc
        finally:
            self._cond.acquire()
            self._flushing = False
            self.flushes += 1
            if error is None:
                self._synced = max(self._synced, covers)
            else:
                self._failed, self._error = max(self._failed, covers), error
            self._cond.notify_all()

    def _background(self) -> None:
        with self._cond:
            while True:
                if self._wanted > self._synced and self._wanted > self._failed and not self._flushing:
                    self._flush_locked()
                else:
                    self._cond.wait()
