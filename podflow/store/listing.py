"""The run listing (``GET /runs``, ``podflow runs list``) as SQL, for SQLite and PostgreSQL alike.

Newest first, ``(created_at, run_id)`` descending, in keyset pages (the cursor
is the last run shown). Without a search every condition is an equality or a
range on one of the listing's indexes, and the order is the index's own
(``runs_created``, or ``runs_status_created`` / the profile indexes for their
filters): a page reads about ``limit`` index entries, at any depth, in a
store of any size.

A search (:attr:`RunFilter.search`) is two prefix ranges -- of ``name_key`` on
``runs_name``, of ``run_id`` on its primary key -- and a range of many keys is
not in ``created_at`` order. Each range, a *leg*, is read on its own and the two
are merged:

- a leg with fewer than :data:`SEARCH_PROBE` index entries (counted first,
  reading at most that many from the index alone) is read off its own index
  and sorted -- the page's ids first, from the index alone where it holds every
  column the conditions name (``runs_name`` does for a plain name search), then
  those rows;
- a larger leg is common enough that walking the listing's order and keeping
  the matches finds a page soon (about ``limit x stored / matches`` rows, under
  ``limit x stored / SEARCH_PROBE``): the range is written so that its index is
  not used (``name_key || ''``) and the planner takes the order's index
  (PostgreSQL, which cannot estimate that expression, is told to avoid a
  sort for that one statement: :data:`podflow.store.postgres.runs.WALK`).

The probe is what an OR of the two ranges could not give the planner: one
plan per leg, chosen on the number that decides it. (A common prefix whose
runs are all old is the case this leaves slow: the walk passes every newer run
first.)
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from ..models import Run
from .base import RunFilter, prefix_range
from .sql import Dialect

__all__ = ["SEARCH_LEGS", "SEARCH_PROBE", "SearchLeg", "listing_params", "listing_sql", "probe_sql", "search_page"]

SearchLeg = Literal["name", "id"]
#: what a search compares, each on its own index: the folded episode name, the run id
SEARCH_LEGS: tuple[SearchLeg, ...] = ("name", "id")
_LEG_COLUMNS: dict[SearchLeg, str] = {"name": "name_key", "id": "run_id"}
#: a search leg with this many index entries or more walks the listing's order
SEARCH_PROBE = 50_000


def _leg_range(leg: SearchLeg, d: Dialect, *, walk: bool) -> str:
    column = d.binary(_LEG_COLUMNS[leg])
    if walk:  # an expression no index is built on: the order's index serves instead
        column = f"({column} || '')"
    return f"{column} >= {d.placeholder(f'{leg}_lo', 'text')} AND {column} < {d.placeholder(f'{leg}_hi', 'text')}"


def listing_sql(
    where: RunFilter,
    after: tuple[datetime, str] | None,
    d: Dialect,
    run_columns: str,
    *,
    leg: SearchLeg | None = None,
    walk: bool = False,
) -> str:
    """The listing's SELECT (newest first, ``LIMIT`` the ``limit`` parameter) for
    :func:`listing_params`; with a search, of one ``leg`` of it (``walk``: read in
    the listing's order, see above).

    Raises:
      ValueError: a search without a leg.
    """
    p = d.placeholder
    conds: list[str] = []
    if where.status is not None:
        conds.append(f"status = {p('status', 'text')}")
    if where.search_key is not None:
        if leg is None:
            raise ValueError("a search is listed one leg at a time (search_page)")
        conds.append(_leg_range(leg, d, walk=walk))
    for column in ("episode_profile", "speaker_profile", "retry_of"):
        if getattr(where, column) is not None:
            conds.append(f"{column} = {p(column, 'text')}")
    if where.error_type is not None:
        conds.append(f"{d.json_text('error', 'type')} = {p('error_type', 'text')}")
    if where.created_after is not None:
        conds.append(f"created_at >= {p('created_after', 'time')}")
    if where.created_before is not None:
        conds.append(f"created_at < {p('created_before', 'time')}")
    if after is not None:
        at, run_id = p("after_at", "time"), p("after_id", "text")
        # a row value: one range of the (…, created_at, run_id) index, where an OR would
        # be a filter on every row newer than the cursor (a deep page read them all)
        conds.append(f"(created_at, run_id) < ({at}, {run_id})")
    order = "ORDER BY created_at DESC, run_id DESC"
    if leg is not None and not walk:
        # the page's ids first, off the leg's index alone where it covers the conditions
        # (runs_name holds created_at and run_id), then only those rows
        # (PostgreSQL would rather walk runs_created, filtering, than sort the range it is given)
        by_time = f"ORDER BY {d.sort_only('created_at')} DESC, run_id DESC"
        ids = f"SELECT run_id FROM runs WHERE {' AND '.join(conds)} {by_time} LIMIT {p('limit', 'int')}"
        return f"SELECT {run_columns} FROM runs WHERE run_id IN ({ids}) {order}"
    query = f"SELECT {run_columns} FROM runs"
    if conds:
        query += " WHERE " + " AND ".join(conds)
    return query + f" {order} LIMIT {p('limit', 'int')}"


def _leg_params(where: RunFilter, leg: SearchLeg) -> dict[str, str]:
    term = where.search_key if leg == "name" else where.search_id
    assert term is not None
    low, high = prefix_range(term)
    return {f"{leg}_lo": low, f"{leg}_hi": high}


def listing_params(
    where: RunFilter, after: tuple[datetime, str] | None, d: Dialect, limit: int, *, leg: SearchLeg | None = None
) -> dict[str, Any]:
    """The parameters of :func:`listing_sql`."""
    params: dict[str, Any] = {"limit": limit}
    if where.status is not None:
        params["status"] = str(where.status)
    if where.search_key is not None and leg is not None:
        params.update(_leg_params(where, leg))
    for column in ("episode_profile", "speaker_profile", "retry_of", "error_type"):
        if getattr(where, column) is not None:
            params[column] = getattr(where, column)
    for column in ("created_after", "created_before"):
        if getattr(where, column) is not None:
            params[column] = d.time(getattr(where, column))
    if after is not None:
        params["after_at"], params["after_id"] = d.time(after[0]), after[1]
    return params


def probe_sql(leg: SearchLeg, d: Dialect) -> str:
    """How many index entries a leg's range holds, counting to :data:`SEARCH_PROBE` at
    most (column ``n``; parameters: the leg's range)."""
    inner = f"SELECT 1 FROM runs WHERE {_leg_range(leg, d, walk=False)} LIMIT {SEARCH_PROBE}"
    return f"SELECT count(*) AS n FROM ({inner}) AS leg"


def search_page(
    where: RunFilter,
    after: tuple[datetime, str] | None,
    d: Dialect,
    run_columns: str,
    limit: int,
    *,
    count: Callable[[str, dict[str, Any]], int],
    select: Callable[[str, dict[str, Any], bool], list[Run]],
) -> list[Run]:
    """A page of a search: each leg probed (``count`` runs a query returning one
    number), read its own way (``select(query, params, walk)`` runs a query
    returning runs; ``walk``: a planner that can be told so must keep to the
    listing's order), then merged newest first."""
    found: dict[str, Run] = {}
    for leg in SEARCH_LEGS:
        walk = count(probe_sql(leg, d), _leg_params(where, leg)) >= SEARCH_PROBE
        query = listing_sql(where, after, d, run_columns, leg=leg, walk=walk)
        for run in select(query, listing_params(where, after, d, limit, leg=leg), walk):
            found[run.run_id] = run
    return sorted(found.values(), key=lambda run: (run.created_at, run.run_id), reverse=True)[:limit]
