"""Helpers the operator commands share: the store and dispatcher they open, and output."""

from __future__ import annotations

import contextlib
import json
import re
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from ..dispatch import Dispatcher
from ..dispatch.outbox import OutboxDispatcher
from ..dispatch.queue import QueueDispatcher
from ..settings import Settings
from ..store import open_store
from ..store.base import Store
from ..worker.broker import build_broker

__all__ = ["api_address", "confirm", "dispatcher_for", "duration", "print_json", "redact", "store_for", "table"]

_PASSWORD = re.compile(r"(//[^:/@]*):[^@/]*@")


@contextlib.contextmanager
def store_for(settings: Settings) -> Iterator[Store]:
    """The configured store, closed afterwards. Raises: StoreUnavailable."""
    store = open_store(settings)
    try:
        yield store
    finally:
        store.close()


@contextlib.contextmanager
def dispatcher_for(settings: Settings) -> Iterator[Dispatcher]:
    """Queue mode: sends to the broker. Thread mode: leaves the run in the
    outbox, for the API process's executor to pick up at its next sweep."""
    if settings.mode == "thread":
        yield OutboxDispatcher(mode="thread")
        return
    broker = build_broker(settings, role="cli")
    try:
        yield QueueDispatcher(broker=broker, queue_name=settings.queue_name)
    finally:
        broker.close()


def api_address(settings: Settings) -> str:
    """The URL clients reach the API at, from PODFLOW_API_HOST and PODFLOW_API_PORT
    (a wildcard bind address becomes this host's loopback address)."""
    host = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(settings.api_host, settings.api_host)
    host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{host}:{settings.api_port}/"


def redact(url: str) -> str:
    """``url`` with its password, if any, hidden."""
    return _PASSWORD.sub(r"\1:***@", url)


def duration(seconds: float) -> str:
    """A short human duration: ``0.4 s``, ``42 s``, ``3 min 5 s``, ``2 h 10 min``, ``3 d 4 h``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    for unit, size, sub, sub_size in (("d", 86400, "h", 3600), ("h", 3600, "min", 60), ("min", 60, "s", 1)):
        if whole >= size:
            rest = (whole % size) // sub_size
            return f"{whole // size} {unit}" + (f" {rest} {sub}" if rest else "")
    return f"{whole} s"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, indent: str = "") -> str:
    """Left-aligned columns; numbers right-aligned."""
    cells = [[str(h) for h in headers], *[["" if v is None else str(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = [all(isinstance(row[i], int | float) for row in rows) and bool(rows) for i in range(len(headers))]
    lines = []
    for row in cells:
        parts = [cell.rjust(w) if num else cell.ljust(w) for cell, w, num in zip(row, widths, numeric, strict=True)]
        lines.append(indent + "  ".join(parts).rstrip())
    return "\n".join(lines)


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def confirm(question: str, *, assume_yes: bool) -> bool:
    """Ask ``question`` on the terminal (y/N). Without a terminal only ``--yes`` confirms:
    a script must say so."""
    if assume_yes:
        return True
    if not sys.stdin.isatty():
        print(f"podflow: {question} Not confirmed: no terminal to ask on; pass --yes", file=sys.stderr)
        return False
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    confirmed = sys.stdin.readline().strip().lower() in ("y", "yes")
    if not confirmed:
        print("podflow: not confirmed; nothing done", file=sys.stderr)
    return confirmed
