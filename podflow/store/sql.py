"""The transition table rendered as SQL, for SQLite and PostgreSQL alike.

Each :class:`~podflow.store.transitions.Write` becomes ONE statement::

    UPDATE runs SET <sets>, history = <history + entry>
    WHERE <run_id = ? AND status IN (...) AND fence>
    RETURNING <what the write returns>

A bulk write picks its batch in a sub-query (on PostgreSQL a materialized
CTE with ``FOR UPDATE SKIP LOCKED``, so two sweeps never wait on each other's
rows, looked up by primary key) and repeats the condition outside it, so a row
changed since is left alone.
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

from ..models import Run, RunRef, Source
from ..states import TERMINAL
from ..timeutil import from_ms, to_ms
from . import expressions as e
from . import transitions as t
from .base import Claimed

__all__ = [
    "POSTGRES",
    "RUN_COLUMNS",
    "SOURCE_COLUMNS",
    "SOURCE_INFO_COLUMNS",
    "SQLITE",
    "Dialect",
    "claim_sql",
    "claimed",
    "delete_ended_sql",
    "encode",
    "enqueued_many_sql",
    "beat_params",
    "beat_sql",
    "ended_before_sql",
    "names_exist_params",
    "names_exist_sql",
    "page_params",
    "page_sql",
    "ref_of",
    "returned",
    "returning",
    "update_sql",
]

#: the columns of ``runs`` (the same in both databases), in the order rows are built from
RUN_COLUMNS = (
    "run_id, status, episode_profile, speaker_profile, episode_name, source_ids, briefing_suffix, mode,"
    " attempt, created_at, updated_at, started_at, finished_at, heartbeat_at, released, message_id,"
    " outbox_at, enqueued_at, enqueue_error, progress, error, result, history, idempotency_key,"
    " request_hash, retry_of, current_message_id, callback_url, webhook_due_at, webhook_attempts, webhook,"
    " priority, start_at, attempts_counted"
)
SOURCE_INFO_COLUMNS = "source_id, title, filename, content_type, byte_size, sha256, created_at"
SOURCE_COLUMNS = f"{SOURCE_INFO_COLUMNS}, text"

#: what each kind of RETURNING clause selects (RUN: the backend's full column list)
_RETURNING = {
    t.Returning.NOTHING: "run_id",
    t.Returning.ATTEMPT: "attempt",
    t.Returning.REF: ", ".join(t.REF_FIELDS),
    t.Returning.RUN_ID: "run_id",
}


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one database spells what the table needs."""

    name: str
    #: a named placeholder for a parameter of that kind
    placeholder: Callable[[str, e.ParamKind], str]
    #: the JSON object for a history entry from SQL expressions status, at, attempt, reason
    entry: Callable[[str, str, str, str], str]
    #: ``history`` with that object appended
    append: Callable[[str], str]
    #: after the bulk sub-query's LIMIT
    bulk_lock: str
    #: a time parameter as the database stores it
    time: Callable[[datetime], Any]
    #: a text column compared in code point order (a prefix range)
    binary: Callable[[str], str] = lambda column: column
    #: the text of a key of a JSON column
    json_text: Callable[[str, str], str] = lambda column, key: f"json_extract({column}, '$.{key}')"
    #: ``column`` is one of the strings of a JSON array (a column or a ``json`` parameter)
    in_json: Callable[[str, str], str] = lambda column, array: f"{column} IN (SELECT value FROM json_each({array}))"
    #: a JSON object from (key, SQL expression) pairs, and the JSON array of a sub-query's objects
    json_object: str = "json_object"
    json_array_agg: str = "json_group_array"
    #: the JSON text a parameter of kind ``json`` is sent as
    json_param: Callable[[Any], Any] = json.dumps
    #: a time column's value as a datetime (None stays None)
    read_time: Callable[[Any], datetime | None] = lambda value: value
    #: a time column as a sort key that no index provides (so the planner reads the
    #: index of the WHERE clause and sorts, rather than walking the time's index)
    sort_only: Callable[[str], str] = lambda column: column


SQLITE = Dialect(
    name="sqlite",
    placeholder=lambda name, kind: f":{name}",
    entry=lambda s, at, a, r: f"json_object('status', {s}, 'at', {at}, 'attempt', {a}, 'reason', {r})",
    append=lambda obj: f"json_insert(history, '$[#]', {obj})",
    bulk_lock="",
    time=to_ms,
    read_time=lambda ms: None if ms is None else from_ms(ms),
)

_PG_TYPES = {"text": "text", "int": "integer", "time": "timestamptz", "json": "jsonb"}

POSTGRES = Dialect(
    name="postgres",
    placeholder=lambda name, kind: f"%({name})s::{_PG_TYPES[kind]}",
    entry=lambda s, at, a, r: f"jsonb_build_object('status', {s}, 'at', {at}, 'attempt', {a}, 'reason', {r})",
    append=lambda obj: f"history || jsonb_build_array({obj})",
    bulk_lock=" FOR UPDATE SKIP LOCKED",
    time=lambda dt: dt,
    binary=lambda column: f'{column} COLLATE "C"',
    json_text=lambda column, key: f"{column} ->> '{key}'",
    in_json=lambda column, array: f"{column} IN (SELECT jsonb_array_elements_text({array}))",
    json_object="json_build_object",
    json_array_agg="json_agg",
    sort_only=lambda column: f"({column} + interval '0 s')",
)


def _literal(value: str | bool | None) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    return "'" + value.replace("'", "''") + "'"


def _expr(expr: e.Expr, d: Dialect) -> str:
    match expr:
        case e.Field(name):
            return name
        case e.Param(name, kind):
            return d.placeholder(name, kind)
        case e.Lit(value):
            return _literal(value)
        case e.Inc(name):
            return f"{name} + 1"
        case e.Dec(name):
            return f"{name} - 1"
        case e.Coalesce(name, default):
            return f"coalesce({name}, {_expr(default, d)})"
        case e.Case(branches, default):
            whens = " ".join(f"WHEN {cond(c, d)} THEN {_expr(v, d)}" for c, v in branches)
            return f"CASE {whens} ELSE {_expr(default, d)} END"
    raise TypeError(f"not an expression: {expr!r}")


def cond(c: e.Cond, d: Dialect) -> str:
    """``c`` as a SQL boolean expression."""
    match c:
        case e.Eq(name, e.Lit(None)):
            return f"{name} IS NULL"
        case e.Eq(name, value):
            return f"{name} = {_expr(value, d)}"
        case e.Lt(name, value):
            return f"{name} < {_expr(value, d)}"
        case e.Ge(name, value):
            return f"{name} >= {_expr(value, d)}"
        case e.In(name, statuses):
            return f"{name} IN ({', '.join(_literal(str(s)) for s in statuses)})"
        case e.Truthy(name, value):
            return name if value else f"NOT {name}"
        case e.And(conds):
            return "(" + " AND ".join(cond(x, d) for x in conds) + ")"
        case e.Or(conds):
            return "(" + " OR ".join(cond(x, d) for x in conds) + ")"
    raise TypeError(f"not a condition: {c!r}")


def _sets(write: t.Write, d: Dialect) -> str:
    parts = [f"{column} = {_expr(value, d)}" for column, value in write.sets.items()]
    if write.entry is not None:
        spec, now = write.entry, e.Param("now", "time")
        obj = d.entry(_expr(spec.status, d), _expr(now, d), _expr(spec.attempt, d), _expr(spec.reason, d))
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
        # The batch is taken once, in a materialized CTE (an IN sub-query may be
        # scanned again, locking more rows than its LIMIT as it goes), then looked
        # up by primary key as one array: a join would let the planner, misled by
        # the cutoff's selectivity, rescan the batch for every candidate row.
        return f"WITH batch AS MATERIALIZED ({batch}{d.bulk_lock}) " + update.format(
            f"run_id = ANY(ARRAY(SELECT run_id FROM batch)) AND {where}"
        )
    return update.format(f"run_id IN ({batch}) AND {where}")


def update_sql(write: t.Write, d: Dialect, run_columns: str) -> str:
    """The one statement that performs ``write`` (bulk writes take a ``limit`` parameter)."""
    return _update_sql(write, d, run_columns)


def ref_of(row: Mapping[str, Any], d: Dialect, **extra: Any) -> RunRef:
    """The RunRef of a row selecting :data:`~podflow.store.transitions.REF_FIELDS`."""
    return RunRef(**{**{k: row[k] for k in t.REF_FIELDS}, "start_at": d.read_time(row["start_at"]), **extra})


#: what a claim gives back besides the run: the profiles and sources it names (see :func:`claim_sql`)
_CLAIMED = ("claimed_episode_profile", "claimed_speaker_profile", "claimed_sources")


@cache
def claim_sql(d: Dialect, run_columns: str) -> str:
    """:data:`transitions.CLAIM_RUN`, with the run's profiles (as stored) and its
    sources (a JSON array of objects) in its RETURNING clause: one statement gives
    the runner everything it needs. Parameters: those of the claim."""
    profiles = [
        f"(SELECT doc FROM {kind}_profiles WHERE name = runs.{kind}_profile) AS {name}"
        for kind, name in zip(("episode", "speaker"), _CLAIMED, strict=False)
    ]
    fields = ", ".join(f"'{c.strip()}', {c.strip()}" for c in SOURCE_COLUMNS.split(","))
    sources = (
        f"(SELECT {d.json_array_agg}({d.json_object}({fields})) FROM sources"
        f" WHERE {d.in_json('source_id', 'runs.source_ids')}) AS {_CLAIMED[2]}"
    )
    return update_sql(t.CLAIM_RUN, d, ", ".join([run_columns, *profiles, sources]))


def claimed(row: Mapping[str, Any], run_of: Callable[[Any], Run], source_of: Callable[[Any], Source]) -> Claimed:
    """The :class:`~podflow.store.base.Claimed` of one row :func:`claim_sql` returned
    (``source_of`` builds a source from one object of the array)."""
    # a dict row (PostgreSQL's) is validated whole: without the extra columns; SQLite's is read by name
    run = run_of({k: v for k, v in row.items() if k not in _CLAIMED} if isinstance(row, dict) else row)
    found = row[_CLAIMED[2]] or []
    by_id = {s.source_id: s for s in map(source_of, json.loads(found) if isinstance(found, str) else found)}
    return Claimed(
        run=run,
        profiles={"episode": row[_CLAIMED[0]], "speaker": row[_CLAIMED[1]]},
        sources=tuple(by_id[i] for i in dict.fromkeys(run.source_ids) if i in by_id),
    )


def names_exist_sql(d: Dialect) -> str:
    """The condition of a checked insert (``create_run(check_names=True)``): the
    profiles and every source the run names exist. Parameters:
    :func:`names_exist_params`'s."""
    p = d.placeholder
    return (
        f"EXISTS (SELECT 1 FROM episode_profiles WHERE name = {p('episode_profile', 'text')})"
        f" AND EXISTS (SELECT 1 FROM speaker_profiles WHERE name = {p('speaker_profile', 'text')})"
        f" AND (SELECT count(*) FROM sources WHERE {d.in_json('source_id', p('named_sources', 'json'))})"
        f" = {p('named_source_count', 'int')}"
    )


def names_exist_params(run: Run, d: Dialect) -> dict[str, Any]:
    wanted = list(dict.fromkeys(run.source_ids))
    return {
        "episode_profile": run.episode_profile,
        "speaker_profile": run.speaker_profile,
        "named_sources": d.json_param(wanted),
        "named_source_count": len(wanted),
    }


def enqueued_many_sql(d: Dialect) -> str:
    """``mark_enqueued_many`` as one statement: every run of ``sent`` (a JSON object
    run_id -> the message id sent, or null for any) whose current message is that one
    (or none), looked up by primary key. Parameters: ``sent`` and ``now``."""
    sent, now = d.placeholder("sent", "json"), d.placeholder("now", "time")
    each = f"json_each({sent})" if d is SQLITE else f"jsonb_each_text({sent})"
    same = "IS" if d is SQLITE else "IS NOT DISTINCT FROM"
    return (
        f"UPDATE runs SET enqueued_at = coalesce(enqueued_at, {now}), outbox_at = NULL, enqueue_error = NULL"
        f" FROM (SELECT key AS id, value AS message FROM {each}) AS sent"
        f" WHERE runs.run_id = sent.id"
        # a run with no current message yet (older rows) was never sent again: any message is its own
        f" AND coalesce(runs.current_message_id, sent.message) {same} coalesce(sent.message, runs.current_message_id)"
        " RETURNING runs.run_id"
    )


def returned(write: t.Write, row: Mapping[str, Any], run_of: Callable[[Any], Run], d: Dialect) -> Any:
    """What ``write`` gives back for one RETURNING row (``run_of`` builds a whole run)."""
    match write.returning:
        case t.Returning.RUN:
            return run_of(row)
        case t.Returning.REF:
            return ref_of(row, d)
        case t.Returning.ATTEMPT:
            return int(row["attempt"])
        case t.Returning.RUN_ID:
            return row["run_id"]
    return True


def encode(write: t.Write, d: Dialect, args: Mapping[str, Any], limit: int | None = None) -> dict[str, Any]:
    """The statement's parameters from the write's arguments."""
    return _encoded(write.param_kinds(), d, args, limit)


def _encoded(
    kinds: Mapping[str, e.ParamKind], d: Dialect, args: Mapping[str, Any], limit: int | None
) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, kind in kinds.items():
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


def page_sql(where: e.Cond, order: str, d: Dialect) -> str:
    """The RunRefs of the runs matching ``where``, with ``order`` (a time column) as
    ``waiting_since``, in (order, run_id) order strictly after a cursor.
    Parameters: those of ``where``, ``after_at``, ``after_id`` and ``limit``."""
    at, run_id = d.placeholder("after_at", "time"), d.placeholder("after_id", "text")
    limit = d.placeholder("limit", "int")
    return (
        f"SELECT {', '.join(t.REF_FIELDS)}, {order} AS waiting_since FROM runs WHERE {cond(where, d)}"
        f" AND ({order}, run_id) > ({at}, {run_id}) ORDER BY {order}, run_id LIMIT {limit}"
    )


def page_params(
    where: e.Cond, d: Dialect, args: Mapping[str, Any], after: tuple[datetime, str], limit: int
) -> dict[str, Any]:
    """:func:`page_sql`'s parameters."""
    kinds = {p.name: p.kind for p in e.params_of(where)}
    params = _encoded(kinds, d, args, limit)
    params.update(after_at=d.time(after[0]), after_id=after[1])
    return params


#: the batch of a beat as rows ``b(run_id, attempt, progress)`` from one JSON
#: parameter, whatever its size; materialized, so each run is then looked up by
#: its run_id (SQLite would otherwise scan every STARTED run once per batch row)
_BEATS = {
    "sqlite": "WITH b(run_id, attempt, progress) AS MATERIALIZED (SELECT json_extract(value, '$.run_id'),"
    " json_extract(value, '$.attempt'), json_extract(value, '$.progress') FROM json_each(:beats))",
    "postgres": "WITH b AS MATERIALIZED (SELECT * FROM jsonb_to_recordset(%(beats)s::jsonb)"
    " AS r(run_id text, attempt integer, progress jsonb))",
}


@cache
def beat_sql(d: Dialect) -> str:
    """:data:`transitions.HEARTBEAT` for a batch of runs, with
    :data:`transitions.PROGRESS` for those of them that carry a progress: ONE
    statement for the batch, each run matched by its own (run_id, attempt) and
    the writes' shared precondition (the fence). Parameters (named): ``now`` and
    ``beats``, a JSON array of ``{run_id, attempt, progress}`` (:func:`beat_params`).
    Returns the run_id of each run it wrote."""
    beat, progress = t.HEARTBEAT, t.PROGRESS
    # one precondition for both (the attempt comes from the batch's row), and
    # PROGRESS writes everything HEARTBEAT does and more
    assert beat.where == progress.where and beat.sources == progress.sources
    assert isinstance(beat.guard, e.And) and set(beat.sets) <= set(progress.sets)
    carried = "b.progress IS NOT NULL"

    def value(expr: e.Expr) -> str:
        return f"b.{expr.name}" if isinstance(expr, e.Param) and expr.kind == "json" else _expr(expr, d)

    sets = []
    for name, expr in progress.sets.items():
        if name in beat.sets:
            sets.append(f"{name} = {value(beat.sets[name])}")
        else:
            sets.append(f"{name} = CASE WHEN {carried} THEN {value(expr)} ELSE runs.{name} END")
    rest = [c for c in beat.guard.conds if not (isinstance(c, e.Eq) and c.field == "attempt")]
    where = " AND ".join(
        [
            "runs.run_id = b.run_id",
            "runs.attempt = b.attempt",
            cond(e.In("status", beat.sources), d),
            *(cond(c, d) for c in rest),
        ]
    )
    return f"{_BEATS[d.name]} UPDATE runs SET {', '.join(sets)} FROM b WHERE {where} RETURNING runs.run_id"


def beat_params(
    leases: Mapping[str, int], progress: Mapping[str, Any], d: Dialect, *, now: datetime
) -> dict[str, Any]:
    """:func:`beat_sql`'s parameters: every run of ``leases`` (run_id -> attempt),
    with its ``progress`` (a Progress) when it has one."""
    beats = [
        {
            "run_id": run_id,
            "attempt": attempt,
            "progress": progress[run_id].model_dump(mode="json") if run_id in progress else None,
        }
        for run_id, attempt in leases.items()
    ]
    return {"now": d.time(now), "beats": json.dumps(beats)}


#: the terminal statuses as a SQL list: a run in one of them never changes again
_ENDED = "(" + ", ".join(_literal(str(s)) for s in sorted(TERMINAL)) + ")"


def ended_before_sql(d: Dialect) -> str:
    """The ids of terminal runs finished before ``before``, oldest first, at most
    ``limit``: a range of the ``runs_finished`` index (``finished_at`` is set by the
    terminal transitions alone, so that index holds exactly the ended runs), read
    as far as the batch goes, whatever the table holds. A run whose completion
    webhook is still due is kept until it is delivered or given up."""
    before, limit = d.placeholder("before", "time"), d.placeholder("limit", "int")
    # the status check is an expression, which no index serves: SQLite without
    # statistics would otherwise read the (status, ...) index of nearly every run and sort
    return (
        f"SELECT run_id FROM runs WHERE finished_at < {before} AND (status || '') IN {_ENDED}"
        f" AND webhook_due_at IS NULL ORDER BY finished_at LIMIT {limit}"
    )


def delete_ended_sql(count: int, d: Dialect) -> str:
    """Delete ``count`` runs by id (positional parameters), those that are terminal
    only, with no completion webhook due (any other is left alone); RETURNING the ids deleted."""
    marks = ", ".join(["?" if d is SQLITE else "%s"] * count)
    return (
        f"DELETE FROM runs WHERE run_id IN ({marks}) AND status IN {_ENDED} AND webhook_due_at IS NULL"
        " RETURNING run_id"
    )
