"""The transition table rendered as SQL, for SQLite and PostgreSQL alike.

Each :class:`~podflow.store.transitions.Write` becomes ONE statement::

    UPDATE runs SET <sets>, history = <history + entry>
    WHERE <run_id = ? AND status IN (...) AND fence>
    RETURNING <what the write returns>

A bulk write picks its batch in a sub-query (on PostgreSQL a materialized
CTE with ``FOR UPDATE SKIP LOCKED``, so two sweeps never wait on each other's
rows) and repeats the condition outside it, so a row changed since is left alone.
What differs between the two databases -- placeholders, JSON functions, how
times and JSON travel -- is a :class:`Dialect`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from ..timeutil import to_ms
from . import transitions as t

__all__ = ["POSTGRES", "SQLITE", "Dialect", "encode", "heartbeat_many_sql", "returning", "update_sql"]

#: what each kind of RETURNING clause selects (RUN: the backend's full column list)
_RETURNING = {
    t.Returning.NOTHING: "run_id",
    t.Returning.ATTEMPT: "attempt",
    t.Returning.REF: "run_id, attempt, mode, message_id",
    t.Returning.RUN_ID: "run_id",
}


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one database spells what the table needs."""

    name: str
    #: a named placeholder for a parameter of that kind
    placeholder: Callable[[str, t.ParamKind], str]
    #: the JSON object for a history entry from SQL expressions status, at, attempt, reason
    entry: Callable[[str, str, str, str], str]
    #: ``history`` with that object appended
    append: Callable[[str], str]
    #: after the bulk sub-query's LIMIT
    bulk_lock: str
    #: a time parameter as the database stores it
    time: Callable[[datetime], Any]


SQLITE = Dialect(
    name="sqlite",
    placeholder=lambda name, kind: f":{name}",
    entry=lambda s, at, a, r: f"json_object('status', {s}, 'at', {at}, 'attempt', {a}, 'reason', {r})",
    append=lambda obj: f"json_insert(history, '$[#]', {obj})",
    bulk_lock="",
    time=to_ms,
)

_PG_TYPES = {"text": "text", "int": "integer", "time": "timestamptz", "json": "jsonb"}

POSTGRES = Dialect(
    name="postgres",
    placeholder=lambda name, kind: f"%({name})s::{_PG_TYPES[kind]}",
    entry=lambda s, at, a, r: f"jsonb_build_object('status', {s}, 'at', {at}, 'attempt', {a}, 'reason', {r})",
    append=lambda obj: f"history || jsonb_build_array({obj})",
    bulk_lock=" FOR UPDATE SKIP LOCKED",
    time=lambda dt: dt,
)


def _literal(value: str | bool | None) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    return "'" + value.replace("'", "''") + "'"


def _expr(expr: t.Expr, d: Dialect) -> str:
    match expr:
        case t.Field(name):
            return name
        case t.Param(name, kind):
            return d.placeholder(name, kind)
        case t.Lit(value):
            return _literal(value)
        case t.Inc(name):
            return f"{name} + 1"
        case t.Coalesce(name, default):
            return f"coalesce({name}, {_expr(default, d)})"
        case t.Case(branches, default):
            whens = " ".join(f"WHEN {cond(c, d)} THEN {_literal(v.value)}" for c, v in branches)
            return f"CASE {whens} ELSE {_literal(default.value)} END"
    raise TypeError(f"not an expression: {expr!r}")


def cond(c: t.Cond, d: Dialect) -> str:
    """``c`` as a SQL boolean expression."""
    match c:
        case t.Eq(name, value):
            return f"{name} = {_expr(value, d)}"
        case t.Lt(name, value):
            return f"{name} < {_expr(value, d)}"
        case t.Ge(name, value):
            return f"{name} >= {_expr(value, d)}"
        case t.In(name, statuses):
            return f"{name} IN ({', '.join(_literal(str(s)) for s in statuses)})"
        case t.Truthy(name, value):
            return name if value else f"NOT {name}"
        case t.And(conds):
            return "(" + " AND ".join(cond(x, d) for x in conds) + ")"
        case t.Or(conds):
            return "(" + " OR ".join(cond(x, d) for x in conds) + ")"
    raise TypeError(f"not a condition: {c!r}")


def _sets(write: t.Write, d: Dialect) -> str:
    parts = [f"{column} = {_expr(value, d)}" for column, value in write.sets.items()]
    if write.entry is not None:
        e = write.entry
        obj = d.entry(_expr(e.status, d), _expr(t.Param("now", "time"), d), _expr(e.attempt, d), _expr(e.reason, d))
        parts.append(f"history = {d.append(obj)}")
    return ", ".join(parts)


def returning(write: t.Write, run_columns: str) -> str:
    return run_columns if write.returning is t.Returning.RUN else _RETURNING[write.returning]


@cache
def _update_sql(write: t.Write, d: Dialect, run_columns: str) -> str:
    where = cond(write.where, d)
    update = f"UPDATE runs SET {_sets(write, d)} WHERE {{}} RETURNING {returning(write, run_columns)}"
    if not write.bulk:
        return update.format(where)
    batch = f"SELECT run_id FROM runs WHERE {where} LIMIT {d.placeholder('limit', 'int')}"
    if d.bulk_lock:
        # a CTE, materialized: an IN sub-query may be scanned again, and locking
        # rows as it goes, would then take more than its LIMIT
        return f"WITH batch AS MATERIALIZED ({batch}{d.bulk_lock}) " + update.format(
            f"run_id IN (SELECT run_id FROM batch) AND {where}"
        )
    return update.format(f"run_id IN ({batch}) AND {where}")


def update_sql(write: t.Write, d: Dialect, run_columns: str) -> str:
    """The one statement that performs ``write`` (bulk writes take a ``limit`` parameter)."""
    return _update_sql(write, d, run_columns)


def encode(write: t.Write, d: Dialect, args: Mapping[str, Any], limit: int | None = None) -> dict[str, Any]:
    """The statement's parameters from the write's arguments."""
    params: dict[str, Any] = {}
    for name, kind in write.param_kinds().items():
        value = args[name]
        if value is None:
            params[name] = None
        elif kind == "time":
            params[name] = d.time(value)
        elif kind == "json":
            params[name] = value.model_dump_json() if hasattr(value, "model_dump_json") else json.dumps(value)
        else:
            params[name] = value
    if limit is not None:
        params["limit"] = limit
    return params


def heartbeat_many_sql(pairs: int, d: Dialect) -> str:
    """:data:`transitions.HEARTBEAT` for ``pairs`` (run_id, attempt) at once: its
    fence, with the pair matched as a row value. Parameters: now, then the pairs."""
    if d is SQLITE:
        now, pair = "?", "(?, ?)"
    else:
        now, pair = "%s::timestamptz", "(%s::text, %s::integer)"
    sets = ", ".join(f"{column} = {now}" for column in t.HEARTBEAT.sets)
    statuses = ", ".join(_literal(str(s)) for s in t.HEARTBEAT.sources)
    return (
        f"UPDATE runs SET {sets} WHERE status IN ({statuses}) AND NOT released"
        f" AND (run_id, attempt) IN (VALUES {', '.join([pair] * pairs)}) RETURNING run_id"
    )
