"""What every log line carries: the run it is about, and the format (PODFLOW_LOG_FORMAT).

A line is *about a run* when it is logged while the run is bound
(:func:`run_context`: the runner binds the run it executes, the worker binds
each message it processes, so Dramatiq's own lines about it count too) or
when it passes the run as ``extra=run_fields(...)``. :class:`RunFields`, a
filter on the process's handlers, puts ``run_id``, ``attempt`` and
``message_id`` on every such record.

``json`` writes one JSON object per line with python-json-logger, a maintained
formatter (escaping, exceptions, extra fields) rather than hand-made JSON::

    {"time": "2026-12-01T10:00:00.123000+00:00", "level": "INFO", "logger": "podflow.runner",
     "message": "run run_3f…: attempt 1 succeeded", "run_id": "run_3f…", "attempt": 1, "message_id": "…"}

Lines that are about no run carry none of the three keys.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any, Literal

__all__ = [
    "FIELDS",
    "LogFormat",
    "RunFields",
    "bind_run",
    "install",
    "run_context",
    "run_fields",
    "set_attempt",
    "unbind_run",
]

LogFormat = Literal["text", "json"]

#: the keys a line about a run carries
FIELDS = ("run_id", "attempt", "message_id")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@dataclass(frozen=True, slots=True)
class _Bound:
    run_id: str
    attempt: int | None = None
    message_id: str | None = None


_RUN: ContextVar[_Bound | None] = ContextVar("podflow_run", default=None)


def bind_run(run_id: str, *, attempt: int | None = None, message_id: str | None = None) -> None:
    """Lines logged from here on in this thread (or task) are about ``run_id``.
    A message id already bound for the same run is kept."""
    current = _RUN.get()
    if current is not None and current.run_id == run_id:
        message_id = message_id or current.message_id
        attempt = attempt if attempt is not None else current.attempt
    _RUN.set(_Bound(run_id, attempt, message_id))


def set_attempt(attempt: int) -> None:
    """The bound run's attempt is now ``attempt`` (once claimed)."""
    current = _RUN.get()
    if current is not None:
        _RUN.set(replace(current, attempt=attempt))


def unbind_run() -> None:
    _RUN.set(None)


@contextlib.contextmanager
def run_context(run_id: str, *, attempt: int | None = None, message_id: str | None = None) -> Iterator[None]:
    """Bind ``run_id`` for the block, then put back what was bound before."""
    token = _RUN.set(_RUN.get())
    bind_run(run_id, attempt=attempt, message_id=message_id)
    try:
        yield
    finally:
        _RUN.reset(token)


def run_fields(run_id: str, *, attempt: int | None = None, message_id: str | None = None) -> dict[str, Any]:
    """``extra=`` for one line about a run logged outside its context (the sweep, the outbox)."""
    return {"run_id": run_id, "attempt": attempt, "message_id": message_id}


class RunFields(logging.Filter):
    """Puts the bound run's ``run_id``, ``attempt`` and ``message_id`` on each record
    that does not carry them already (``extra=run_fields(...)``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        bound = _RUN.get()
        if bound is not None and not hasattr(record, "run_id"):
            record.run_id, record.attempt, record.message_id = bound.run_id, bound.attempt, bound.message_id
        return True


#: extra record fields left out of the JSON: uvicorn's ``color_message``, the message
#: again with terminal colour codes
_DROPPED = ("color_message",)


def _json_formatter() -> logging.Formatter:
    from pythonjsonlogger.core import RESERVED_ATTRS
    from pythonjsonlogger.json import JsonFormatter

    return JsonFormatter(
        ["levelname", "name", "message"],
        reserved_attrs=[*RESERVED_ATTRS, *_DROPPED],
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",
        json_ensure_ascii=False,  # Chinese episode names stay readable
    )


def install(handlers: list[logging.Handler], fmt: LogFormat) -> None:
    """Give ``handlers`` podflow's format and the run fields (idempotent)."""
    for handler in handlers:
        if fmt == "json":
            handler.setFormatter(_json_formatter())
        if not any(isinstance(f, RunFields) for f in handler.filters):
            handler.addFilter(RunFields())
