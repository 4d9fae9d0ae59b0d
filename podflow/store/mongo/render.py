"""The transition table rendered for MongoDB.

A :class:`~podflow.store.transitions.Write`'s precondition becomes a filter
and its sets and history entry a ``$set``/``$push`` update. Values that depend
on the row (``attempt + 1``, the entry's attempt, the claim's reason) are
computed from the row as read; a field the precondition pins (``attempt =
:attempt``) is known without reading. Where something must be read, the write
is a compare-and-set: the filter also pins every value read, so a concurrent
writer makes it match nothing, and it is tried again on a fresh read.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from .. import expressions as e
from .. import transitions as t

__all__ = ["entry", "mongo_filter", "needed_reads", "pinned", "sets", "update"]


def _value(value: e.Param | e.Lit, args: Mapping[str, Any]) -> Any:
    return encode(args[value.name]) if isinstance(value, e.Param) else value.value


def encode(value: Any) -> Any:
    """A model as a nested document; anything else as it is."""
    return value.model_dump(mode="python") if hasattr(value, "model_dump") else value


def mongo_filter(cond: e.Cond, args: Mapping[str, Any]) -> dict[str, Any]:
    """``cond`` as a query filter."""
    match cond:
        case e.Eq(name, value):
            return {name: _value(value, args)}
        case e.Lt(name, value):
            return {name: {"$lt": args[value.name]}}
        case e.Ge(name, value):
            return {name: {"$gte": args[value.name]}}
        case e.In(name, statuses):
            return {name: {"$in": [str(s) for s in statuses]}}
        case e.Truthy(name, value):
            return {name: value}
        case e.And(conds):
            parts = [mongo_filter(c, args) for c in conds]
            keys = [k for part in parts for k in part]
            if len(keys) == len(set(keys)):  # disjoint: one plain document reads (and plans) best
                return {k: v for part in parts for k, v in part.items()}
            return {"$and": parts}
        case e.Or(conds):
            return {"$or": [mongo_filter(c, args) for c in conds]}
    raise TypeError(f"not a condition: {cond!r}")


def pinned(write: t.Write, args: Mapping[str, Any]) -> dict[str, Any]:
    """Fields whose value the precondition fixes (top-level equalities)."""
    top = write.where.conds if isinstance(write.where, e.And) else (write.where,)
    return {c.field: _value(c.value, args) for c in top if isinstance(c, e.Eq)}


def needed_reads(write: t.Write) -> tuple[str, ...]:
    """The fields the write's values read that the precondition does not fix."""
    fixed = {c.field for c in (write.where.conds if isinstance(write.where, e.And) else ()) if isinstance(c, e.Eq)}
    return tuple(f for f in write.reads() if f not in fixed)


def sets(write: t.Write, row: Mapping[str, Any], args: Mapping[str, Any]) -> dict[str, Any]:
    """The ``$set`` document for ``row`` (as read before the write)."""
    return {column: encode(e.evaluate(expr, row, args)) for column, expr in write.sets.items()}


def entry(write: t.Write, row: Mapping[str, Any], args: Mapping[str, Any], now: datetime) -> dict[str, Any] | None:
    spec = write.entry
    if spec is None:
        return None
    return {
        "status": e.evaluate(spec.status, row, args),
        "at": now,
        "attempt": e.evaluate(spec.attempt, row, args),
        "reason": e.evaluate(spec.reason, row, args),
    }


def update(write: t.Write, row: Mapping[str, Any], args: Mapping[str, Any]) -> dict[str, Any]:
    """The whole update document for ``row``."""
    doc: dict[str, Any] = {"$set": sets(write, row, args)}
    appended = None if write.entry is None else entry(write, row, args, args["now"])
    if appended is not None:
        doc["$push"] = {"history": appended}
    return doc
