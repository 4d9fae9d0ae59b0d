"""Counting the statements a store sends: SQLite's trace callback, psycopg's cursors.

:func:`counting` yields a :class:`Statements` that records every statement the
store sends from the calling thread (reads and writes, with their text) while
the block runs; the bench's statement counts (:mod:`bench.profile`) and the
tests that bound them (``tests/test_store_ops.py``) both use it.

- SQLite: the trace callback of the store's connection for this thread. A
  statement that fires triggers is traced again for each trigger program with
  the same (outer) text: it is counted once.
- PostgreSQL: ``psycopg.Cursor.execute`` wrapped for the block (every store
  method sends its statements through a cursor; ``BEGIN``/``COMMIT`` of an
  explicit transaction go through psycopg's own command path and are not
  counted, as SQLite's are not either).

MongoDB has no counter here: mongomock has no command listeners (a real server's
client would take a ``pymongo.monitoring.CommandListener``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from podflow.store.base import Store

__all__ = ["Statements", "counting", "verb"]

_READS = ("SELECT", "WITH")
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


def verb(statement: str) -> str:
    """``read``, ``write`` or ``other`` (PRAGMA, BEGIN...). A ``WITH`` that updates is a write."""
    text = statement.lstrip().upper()
    first = text.split(None, 1)[0] if text else ""
    if first in _WRITES or (first == "WITH" and any(f" {w} " in f" {text} " for w in _WRITES)):
        return "write"
    return "read" if first in _READS else "other"


@dataclass
class Statements:
    """What a store sent during a :func:`counting` block."""

    texts: list[str] = field(default_factory=list)

    def add(self, statement: str) -> None:
        self.texts.append(" ".join(statement.split()))

    @property
    def reads(self) -> int:
        return sum(verb(s) == "read" for s in self.texts)

    @property
    def writes(self) -> int:
        return sum(verb(s) == "write" for s in self.texts)

    def as_dict(self) -> dict[str, int]:
        return {"reads": self.reads, "writes": self.writes}

    def __str__(self) -> str:
        return "\n".join(f"  {verb(s)}: {s[:160]}" for s in self.texts if verb(s) != "other")


@contextmanager
def counting(store: Store) -> Iterator[Statements]:
    """Count what ``store`` sends from this thread while the block runs."""
    found = Statements()
    kind = type(store).__module__
    if ".sqlite" in kind:
        with _sqlite(store, found):
            yield found
    elif ".postgres" in kind:
        with _postgres(found):
            yield found
    else:
        raise NotImplementedError(f"no statement counter for {type(store).__name__}")


@contextmanager
def _sqlite(store: Any, found: Statements) -> Iterator[None]:
    previous = ""

    def trace(statement: str) -> None:
        nonlocal previous
        if statement != previous:  # a trigger program is traced with the outer statement's text
            found.add(statement)
        previous = statement

    conn = store._conn()  # the store's connection for this thread: the only way to see its statements
    conn.set_trace_callback(trace)
    try:
        yield
    finally:
        conn.set_trace_callback(None)


_patch_lock = threading.Lock()


@contextmanager
def _postgres(found: Statements) -> Iterator[None]:
    import psycopg

    thread = threading.get_ident()
    with _patch_lock:
        original = psycopg.Cursor.execute

        def execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() == thread:
                found.add(query if isinstance(query, str) else query.as_string(self.connection))
            return original(self, query, *args, **kwargs)

        psycopg.Cursor.execute = execute  # type: ignore[method-assign]
        try:
            yield
        finally:
            psycopg.Cursor.execute = original  # type: ignore[method-assign]


class NullDispatcher:
    """A durable queue-mode dispatcher that sends nothing: only the store's statements count."""

    mode = "queue"
    durable = True

    def __init__(self) -> None:
        self._n = 0

    def new_message_id(self) -> str:
        self._n += 1
        return f"msg-{self._n}"

    def send(self, run_id: str, message_id: str | None, **options: object) -> None:
        return None

    def missing(self, refs: object) -> None:
        return None

    def requeue_orphans(self) -> None:
        return None


def noop_runs(store: Store, data_dir: Path, *, runs: int = 1, warm: bool = True) -> dict[str, Statements]:
    """The statements ``runs`` no-op runs cost ``store``: submitted with the production
    :func:`~podflow.lifecycle.submit` (their confirmations batched by an
    :class:`~podflow.dispatch.outbox.EnqueueMarks`, flushed once at the end, as the
    API does), then executed by a :class:`~podflow.runner.Runner` with a generator
    that returns at once, one after another in this thread.
    ``{"submit": ..., "execute": ...}``; the store must hold
    :func:`tests.execution.seed`'s profiles and source. ``warm``: one run first,
    uncounted, as a process that has already met the profiles."""
    from podflow.dispatch.outbox import EnqueueMarks
    from podflow.generation.base import GenerationResult
    from podflow.heartbeat import HeartbeatMonitor
    from podflow.lifecycle import submit
    from podflow.runner import Runner
    from podflow.timeutil import utcnow
    from tests.execution import request

    def noop(*_: object) -> GenerationResult:  # no files: only podflow's bookkeeping is counted
        return GenerationResult()

    monitor = HeartbeatMonitor(store=store, interval_s=3600)  # never ticks during the count
    runner = Runner(store=store, generator=noop, monitor=monitor, data_dir=data_dir)
    dispatcher = NullDispatcher()

    def execute(run_ids: list[str]) -> None:
        for run_id in run_ids:
            outcome = runner.execute(run_id)
            if outcome.kind != "succeeded":
                raise AssertionError(f"the counted run did not succeed: {outcome}")

    if warm:
        execute([submit(store, dispatcher, request("warm-up"), now=utcnow()).run.run_id])
    marks = EnqueueMarks(store, delay_s=3600, batch=runs + 1)  # only the explicit flush below writes
    try:
        with counting(store) as submitted:
            run_ids = [submit(store, dispatcher, request("noop"), now=utcnow(), marks=marks).run.run_id
                       for _ in range(runs)]
            marks.flush()
    finally:
        marks.close()
    with counting(store) as executed:
        execute(run_ids)
    return {"submit": submitted, "execute": executed}
